/**
 * The job list as the panels see it: REST snapshots plus the `jobs` topic's events.
 *
 * `state` events carry the whole job; `progress` events only its progress (the rest,
 * such as the latest metrics, is read again over REST, at most once per `refreshMs` per
 * job); `trashed`/`purged` remove a job.
 */
import { Job } from './types';
import { StreamEvent } from '../stream/connection';

export type JobsListener = (jobs: Job[]) => void;

export class JobsModel {
  private jobs = new Map<string, Job>();
  private listeners = new Set<JobsListener>();
  private pending = new Map<string, ReturnType<typeof setTimeout>>();
  private lastRead = new Map<string, number>();

  constructor(
    private fetchJob: (id: string) => Promise<Job | null>,
    public refreshMs = 1500,
    private now: () => number = Date.now
  ) {}

  /** Jobs, newest first. */
  list(): Job[] {
    return [...this.jobs.values()].sort((a, b) => b.created - a.created);
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** Replace everything with a REST snapshot. */
  reset(jobs: Job[]): void {
    this.jobs = new Map(jobs.map(job => [job.id, job]));
    this.emit();
  }

  upsert(job: Job): void {
    const known = this.jobs.get(job.id);
    if (known && known.updated > job.updated) {
      return; // an older snapshot arriving late
    }
    this.jobs.set(job.id, job);
    this.emit();
  }

  /** Apply one event of the `jobs` topic; true when the list changed. */
  apply(event: StreamEvent): boolean {
    const data = event.data ?? {};
    const id: string | undefined = data.job_id ?? data.job?.id;
    switch (event.type) {
      case 'state':
      case 'updated':
      case 'restored':
      case 'created':
        if (data.job) {
          this.upsert(data.job as Job);
          return true;
        }
        return false;
      case 'progress': {
        const job = id ? this.jobs.get(id) : undefined;
        if (!job) {
          if (id) {
            this.scheduleRead(id);
          }
          return false;
        }
        this.jobs.set(job.id, { ...job, progress: { ...job.progress, ...data.progress } });
        this.scheduleRead(job.id);
        this.emit();
        return true;
      }
      case 'trashed':
      case 'purged':
        if (id && this.jobs.delete(id)) {
          this.emit();
          return true;
        }
        return false;
      default:
        return false;
    }
  }

  onChange(listener: JobsListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispose(): void {
    this.pending.forEach(timer => clearTimeout(timer));
    this.pending.clear();
    this.listeners.clear();
  }

  /** Read one job again, at most once per `refreshMs`. */
  private scheduleRead(id: string): void {
    if (this.pending.has(id)) {
      return;
    }
    const since = this.now() - (this.lastRead.get(id) ?? -Infinity);
    const wait = Math.max(0, this.refreshMs - since);
    this.pending.set(
      id,
      setTimeout(() => {
        this.pending.delete(id);
        this.lastRead.set(id, this.now());
        this.fetchJob(id)
          .then(job => job && this.upsert(job))
          .catch(() => undefined);
      }, wait)
    );
  }

  private emit(): void {
    const jobs = this.list();
    this.listeners.forEach(listener => listener(jobs));
  }
}

/** The latest value of the first metric whose name matches `pattern`. */
export function pickMetric(
  metrics: Record<string, any> | null | undefined,
  pattern: RegExp
): { name: string; value: number } | null {
  if (!metrics) {
    return null;
  }
  const names = Object.keys(metrics).filter(n => pattern.test(n));
  // prefer validation metrics, then the shortest name (loss before loss_scale)
  names.sort((a, b) => Number(/^val/.test(b)) - Number(/^val/.test(a)) || a.length - b.length);
  for (const name of names) {
    const value = metrics[name];
    if (typeof value === 'number') {
      return { name, value };
    }
  }
  return null;
}

/** Seconds of a job's active time now: the stored duration plus time since it was read. */
export function liveDuration(job: Job, readAt: number, now: number): number {
  if (job.state !== 'running') {
    return job.duration;
  }
  return job.duration + Math.max(0, (now - readAt) / 1000);
}

/** Progress as a fraction 0..1, or null when unknown. */
export function progressFraction(job: Job): number | null {
  const p = job.progress ?? {};
  if (job.state === 'succeeded') {
    return 1;
  }
  if (typeof p.fraction_steps === 'number') {
    return p.fraction_steps;
  }
  if (typeof p.step === 'number' && typeof p.total_steps === 'number' && p.total_steps > 0) {
    return Math.min(1, (p.step + 1) / p.total_steps);
  }
  if (typeof p.fraction_cells === 'number') {
    return p.fraction_cells;
  }
  return null;
}

/**
 * A label per run that tells the runs apart: the name, with the start of the id added
 * where two runs share a name (a sweep, a clone, the same notebook twice).
 */
export function runLabels(runs: { id: string; name?: string | null }[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const run of runs) {
    const name = run.name || run.id;
    count.set(name, (count.get(name) ?? 0) + 1);
  }
  return new Map(runs.map(run => {
    const name = run.name || run.id;
    return [run.id, (count.get(name) ?? 0) > 1 ? `${name} · ${run.id.slice(0, 8)}` : name];
  }));
}
