/**
 * Where jobs run: `GET lifecycle/cluster` (the executor, a Dask cluster's workers, their
 * resources and jobs, the queued tasks) and a remote job's placement (worker, host, GPUs).
 */
import { Job } from './types';

export interface ClusterWorker {
  address: string;
  host?: string | null;
  name?: string | number | null;
  threads?: number | null;
  memory_limit?: number | null;
  resources: Record<string, number>;
  jobs: string[];
  tasks?: number;
}

export interface Cluster {
  /** `local` or `dask` */
  executor: string;
  /** why jobs cannot start now */
  problem?: string | null;
  scheduler?: string;
  queued: number;
  workers: ClusterWorker[];
}

/** Whether there is a cluster to show: a remote executor, or a problem to tell. */
export function showCluster(cluster: Cluster | null): boolean {
  return !!cluster && (cluster.executor !== 'local' || !!cluster.problem);
}

/** A worker as people know it: its name (when it is not its address), else its host. */
export function workerLabel(worker: ClusterWorker): string {
  const name = worker.name === null || worker.name === undefined ? '' : String(worker.name);
  if (name && name !== worker.address) {
    return name;
  }
  return worker.host || worker.address;
}

/** `{GPU: 1, MEM: 2}` -> `GPU 1, MEM 2`; none -> `–`. */
export function formatResources(resources: Record<string, number> | null | undefined): string {
  const entries = Object.entries(resources ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(', ') : '–';
}

export interface Placement {
  /** the host (else the worker's address) the job runs on */
  where: string;
  /** the worker's address, when known */
  worker: string | null;
  gpus: string[];
}

/** Where a remote job runs (`processes.runner` of a job on a Dask cluster); null for a
 * local job or one that has not reached a worker yet. A running job's runner record may
 * lack `executor` (its runner's own record replaces the launch's): a worker marks it remote. */
export function placement(job: Pick<Job, 'processes'> | null | undefined): Placement | null {
  const runner = (job?.processes as Record<string, any> | undefined)?.runner;
  const worker = typeof runner?.worker === 'string' && runner.worker ? runner.worker : null;
  if (!runner || (runner.executor !== 'dask' && !worker)) {
    return null;
  }
  const where = (typeof runner.host === 'string' && runner.host) || worker;
  if (!where) {
    return null;
  }
  const gpus = Array.isArray(runner.gpu_uuids) ? runner.gpu_uuids.map(String) : [];
  return { where, worker, gpus };
}

/**
 * The cluster as last read, re-read at most once per `minIntervalMs` when asked (`tick`),
 * and only while there is a cluster to follow: a local executor is read once (and again
 * on `load`, such as after a reconnection).
 */
export class ClusterFeed {
  cluster: Cluster | null = null;
  private lastRead = -Infinity;
  private reading = false;
  private refused = false;

  constructor(
    private read: () => Promise<Cluster>,
    public minIntervalMs = 5000,
    private now: () => number = Date.now
  ) {}

  /** Whether ticks re-read: nothing read yet, or a cluster (or a problem) to follow. */
  get follows(): boolean {
    return !this.refused && (this.cluster === null || showCluster(this.cluster));
  }

  /** Read now; true when an answer came. */
  async load(): Promise<boolean> {
    if (this.reading) {
      return false;
    }
    this.reading = true;
    this.lastRead = this.now();
    try {
      this.cluster = await this.read();
      this.refused = false;
      return true;
    } catch (error) {
      // a server without the route (or a refusal) is not asked again until `load`
      this.refused = (error as { permanent?: boolean })?.permanent === true;
      return false;
    } finally {
      this.reading = false;
    }
  }

  /** Read again when following and the last read is `minIntervalMs` old. */
  tick(): Promise<boolean> {
    if (!this.follows || this.now() - this.lastRead < this.minIntervalMs) {
      return Promise.resolve(false);
    }
    return this.load();
  }
}
