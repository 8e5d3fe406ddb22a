import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  Cluster,
  ClusterFeed,
  formatResources,
  placement,
  showCluster,
  workerLabel
} from '../src/model/cluster';
import { renderCluster, runsOnFact } from '../src/ui/cluster';
import { h } from '../src/ui/dom';
import { Job } from '../src/model/types';
import { fakeTrans, FakeElement, installDom } from './dom';

const LOCAL: Cluster = { executor: 'local', problem: null, queued: 0, workers: [] };

function dask(fields: Partial<Cluster> = {}): Cluster {
  return {
    executor: 'dask',
    problem: null,
    scheduler: 'tcp://10.0.0.1:8786',
    queued: 2,
    workers: [
      { address: 'tcp://10.0.0.2:4000', host: 'gpu-node-1', name: 'gpu-a', threads: 4,
        memory_limit: 8 * 2 ** 30, resources: { GPU: 1 }, jobs: ['j-1', 'j-2'], tasks: 2 },
      { address: 'tcp://10.0.0.3:4000', host: 'cpu-node', name: 'tcp://10.0.0.3:4000', threads: 8,
        memory_limit: null, resources: {}, jobs: [], tasks: 0 }
    ],
    ...fields
  };
}

function job(processes: Record<string, Record<string, unknown>> | undefined): Job {
  return {
    id: 'j-1', kind: 'papermill', name: 'run', state: 'running', reason: null, template: null,
    notebook: { path: 'a.ipynb' }, parameters: {}, created: 1, started: 1, ended: null,
    updated: 1, duration: 0, progress: {}, latest_metrics: {}, error: null, model: null,
    processes
  };
}

const REMOTE_RUNNER = {
  pid: null, executor: 'dask', worker: 'tcp://10.0.0.2:4000', host: 'gpu-node-1',
  gpu_uuids: ['GPU-aaaa', 'GPU-bbbb']
};

describe('cluster model', () => {
  it('shows a cluster for a remote executor or a problem, never for a quiet local one', () => {
    expect(showCluster(null)).toBe(false);
    expect(showCluster(LOCAL)).toBe(false);
    expect(showCluster({ ...LOCAL, problem: 'no scheduler' })).toBe(true);
    expect(showCluster(dask())).toBe(true);
  });

  it('names a worker by its name, else its host, else its address', () => {
    const [named, unnamed] = dask().workers;
    expect(workerLabel(named)).toBe('gpu-a');
    expect(workerLabel(unnamed)).toBe('cpu-node');
    expect(workerLabel({ ...unnamed, host: null })).toBe('tcp://10.0.0.3:4000');
    expect(workerLabel({ ...unnamed, name: 0 })).toBe('0');
  });

  it('lists resources by name', () => {
    expect(formatResources({ MEM: 2, GPU: 1 })).toBe('GPU 1, MEM 2');
    expect(formatResources({})).toBe('–');
  });

  it('places a remote job on its host with its GPUs; a local or unplaced one nowhere', () => {
    expect(placement(job({ runner: REMOTE_RUNNER }))).toEqual({
      where: 'gpu-node-1', worker: 'tcp://10.0.0.2:4000', gpus: ['GPU-aaaa', 'GPU-bbbb']
    });
    expect(placement(job({ runner: { ...REMOTE_RUNNER, host: undefined, gpu_uuids: undefined } })))
      .toEqual({ where: 'tcp://10.0.0.2:4000', worker: 'tcp://10.0.0.2:4000', gpus: [] });
    expect(placement(job({ runner: { pid: null, executor: 'dask' } }))).toBeNull();
    // the runner's own record (pid, no executor) with the worker's report merged in
    expect(placement(job({ runner: { pid: 7, worker: 'tcp://10.0.0.2:4000', host: 'gpu-node-1' } })))
      .toEqual({ where: 'gpu-node-1', worker: 'tcp://10.0.0.2:4000', gpus: [] });
    expect(placement(job({ runner: { pid: 12, host: 'here' } }))).toBeNull();
    expect(placement(job(undefined))).toBeNull();
  });
});

describe('ClusterFeed', () => {
  it('re-reads a cluster at most once per interval', async () => {
    let now = 0;
    const answers: Cluster[] = [dask({ queued: 1 }), dask({ queued: 5 })];
    const read = vi.fn(async () => answers.shift()!);
    const feed = new ClusterFeed(read, 5000, () => now);
    expect(await feed.load()).toBe(true);
    expect(feed.cluster!.queued).toBe(1);
    now = 4999;
    expect(await feed.tick()).toBe(false);
    now = 5000;
    expect(await feed.tick()).toBe(true);
    expect(feed.cluster!.queued).toBe(5);
    expect(read).toHaveBeenCalledTimes(2);
  });

  it('stops following a local executor and a server without the route until loaded again', async () => {
    let now = 0;
    const read = vi.fn(async (): Promise<Cluster> => LOCAL);
    const feed = new ClusterFeed(read, 1000, () => now);
    await feed.load();
    now = 10_000;
    expect(feed.follows).toBe(false);
    expect(await feed.tick()).toBe(false);
    expect(read).toHaveBeenCalledTimes(1);

    const refused = new ClusterFeed(async () => {
      throw Object.assign(new Error('404'), { permanent: true });
    }, 1000, () => now);
    expect(await refused.load()).toBe(false);
    now = 20_000;
    expect(refused.follows).toBe(false);
    const flaky = new ClusterFeed(async () => {
      throw Object.assign(new Error('network'), { permanent: false });
    }, 1000, () => now);
    await flaky.load();
    expect(flaky.follows).toBe(true); // a passing failure: read again on the next tick
  });
});

describe('cluster rendering', () => {
  beforeEach(() => installDom());
  afterEach(() => vi.unstubAllGlobals());

  const box = () => h('section', { hidden: true }) as unknown as FakeElement;

  it('hides the section for a local executor', () => {
    const section = box();
    renderCluster(section as unknown as HTMLElement, fakeTrans, LOCAL);
    expect(section.hidden).toBe(true);
    expect(section.childNodes).toEqual([]);
  });

  it('shows the executor, scheduler, queued tasks and a row per worker', () => {
    const section = box();
    const names: Record<string, string> = { 'j-1': 'resnet lr=0.1' };
    renderCluster(section as unknown as HTMLElement, fakeTrans, dask(), id => names[id] ?? id);
    expect(section.hidden).toBe(false);
    expect(section.querySelector('h3')!.textContent).toBe('«Cluster»');
    expect(section.querySelector('.nb-cluster-executor')!.textContent).toBe('«executor» dask');
    expect(section.querySelector('.nb-cluster-scheduler')!.textContent)
      .toBe('«scheduler» tcp://10.0.0.1:8786');
    expect(section.querySelector('.nb-cluster-queued')!.textContent).toBe('«queued tasks» 2');
    expect(section.querySelector('.nb-cluster-problem')).toBeNull();
    expect(section.querySelectorAll('th').map(th => th.textContent)).toEqual(
      ['«Worker»', '«Threads»', '«Memory»', '«Resources»', '«Jobs»', '«Dask tasks»']);
    const rows = section.querySelectorAll('.nb-cluster-worker');
    expect(rows.map(r => r.dataset.address)).toEqual(['tcp://10.0.0.2:4000', 'tcp://10.0.0.3:4000']);
    expect(rows[0].querySelectorAll('td').map(td => td.textContent)).toEqual(
      ['gpu-a (gpu-node-1)', '4', '8.0 GiB', 'GPU 1', 'resnet lr=0.1, j-2', '2']);
    expect(rows[0].querySelector('td')!.getAttribute('title')).toBe('tcp://10.0.0.2:4000');
    expect(rows[1].querySelectorAll('td').map(td => td.textContent)).toEqual(
      ['cpu-node', '8', '–', '–', '–', '0']);
  });

  it('tells a problem, and that no worker is connected', () => {
    const section = box();
    renderCluster(section as unknown as HTMLElement, fakeTrans,
      dask({ problem: 'cannot reach the Dask scheduler: timeout', workers: [], queued: 0 }));
    expect(section.hidden).toBe(false);
    expect(section.querySelector('.nb-cluster-problem')!.textContent)
      .toBe('cannot reach the Dask scheduler: timeout');
    expect(section.querySelector('table')).toBeNull();
    expect(section.querySelector('.nb-empty')!.textContent).toBe('«No workers connected.»');
    // back to local: the section empties and hides
    renderCluster(section as unknown as HTMLElement, fakeTrans, LOCAL);
    expect(section.hidden).toBe(true);
    expect(section.textContent).toBe('');
  });

  it('says where a remote job runs, with its GPUs; nothing for a local job', () => {
    const fact = runsOnFact(fakeTrans, job({ runner: REMOTE_RUNNER })) as unknown as FakeElement;
    expect(fact.textContent).toBe('«runs on gpu-node-1» · «GPUs: GPU-aaaa, GPU-bbbb»');
    expect(fact.getAttribute('title')).toBe('tcp://10.0.0.2:4000');
    const cpuOnly = runsOnFact(fakeTrans, job({ runner: { ...REMOTE_RUNNER, gpu_uuids: [] } }));
    expect((cpuOnly as unknown as FakeElement).textContent).toBe('«runs on gpu-node-1»');
    expect(runsOnFact(fakeTrans, job({ runner: { pid: 42 } }))).toBeNull();
  });
});
