/**
 * Where jobs run, as elements: the System panel's cluster section (executor, scheduler,
 * problem, the workers with their resources and jobs, the queued tasks) and a remote
 * job's "runs on" fact.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import { Cluster, formatResources, placement, showCluster, workerLabel } from '../model/cluster';
import { formatBytes } from '../model/format';
import { Job } from '../model/types';
import { fill, h } from './dom';

type Trans = Pick<TranslationBundle, '__'>;

const fact = (label: string, value: Node | string | number, cls = '') =>
  h('span', { class: `nb-fact ${cls}`.trim() }, h('b', {}, label), ' ', value);

/** Fill the cluster section; hidden while jobs run locally and nothing is wrong.
 * `jobName` gives a job's name from its id (the id itself when unknown). */
export function renderCluster(
  box: HTMLElement,
  trans: Trans,
  cluster: Cluster | null,
  jobName: (id: string) => string = id => id
): void {
  box.hidden = !showCluster(cluster);
  if (!cluster || box.hidden) {
    fill(box);
    return;
  }
  const workers = cluster.workers ?? [];
  fill(
    box,
    h('h3', {}, trans.__('Cluster')),
    h('div', { class: 'nb-facts' },
      fact(trans.__('executor'), cluster.executor, 'nb-cluster-executor'),
      cluster.scheduler
        ? fact(trans.__('scheduler'), h('bdi', {}, cluster.scheduler), 'nb-cluster-scheduler')
        : null,
      fact(trans.__('queued tasks'), cluster.queued ?? 0, 'nb-cluster-queued')),
    cluster.problem
      ? h('p', { class: 'nb-job-error nb-cluster-problem', role: 'alert' }, cluster.problem)
      : null,
    workers.length
      ? h('table', { class: 'nb-table nb-cluster-workers' },
          h('thead', {}, h('tr', {},
            h('th', {}, trans.__('Worker')),
            h('th', { class: 'nb-num' }, trans.__('Threads')),
            h('th', { class: 'nb-num' }, trans.__('Memory')),
            h('th', {}, trans.__('Resources')),
            h('th', {}, trans.__('Jobs')),
            h('th', { class: 'nb-num' }, trans.__('Dask tasks')))),
          h('tbody', {}, workers.map(worker => {
            const label = workerLabel(worker);
            return h('tr', { class: 'nb-cluster-worker', dataset: { address: worker.address } },
              h('td', { title: worker.address },
                h('bdi', {}, label),
                worker.host && worker.host !== label ? [' (', h('bdi', {}, worker.host), ')'] : null),
              h('td', { class: 'nb-num' }, worker.threads ?? '–'),
              h('td', { class: 'nb-num' }, formatBytes(worker.memory_limit)),
              h('td', { class: 'nb-cluster-resources' }, formatResources(worker.resources)),
              h('td', { class: 'nb-cluster-jobs' },
                worker.jobs.length
                  ? worker.jobs.flatMap((id, i) => [i ? ', ' : '', h('span', { title: id }, jobName(id))])
                  : '–'),
              h('td', { class: 'nb-num' }, worker.tasks ?? worker.jobs.length));
          })))
      : h('p', { class: 'nb-empty' }, trans.__('No workers connected.'))
  );
}

/** A remote job's "runs on <host>" fact (with its GPUs' UUIDs); null for a local job. */
export function runsOnFact(trans: Trans, job: Job): HTMLElement | null {
  const where = placement(job);
  if (!where) {
    return null;
  }
  return h('span', { class: 'nb-fact nb-runs-on', title: where.worker ?? undefined },
    trans.__('runs on %1', where.where),
    where.gpus.length
      ? h('span', { class: 'nb-runs-on-gpus' }, ' · ', trans.__('GPUs: %1', where.gpus.join(', ')))
      : null);
}
