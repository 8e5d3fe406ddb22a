/**
 * The job list as the panels see it: REST snapshots plus the `jobs` topic's events.
 *
 * `state` events carry the whole job; `progress` events only its progress, with the
 * server's `fraction` (the rest, such as the headline metrics, is read again over REST, at
 * most once per `refreshMs` per job); `trashed`/`purged` remove a job. What is shown is
 * what the server derived (`progress.fraction`, `headline`): nothing is computed here.
 */
import { Headline, HeadlineMetric, Job } from './types';
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

/** The server's headline metric of a kind (it chooses which metric), or null. */
export function headlineMetric(job: Job, kind: keyof Headline): HeadlineMetric | null {
  return job.headline?.[kind] ?? null;
}

/** Seconds of a job's active time now: the stored duration plus time since it was read. */
export function liveDuration(job: Job, readAt: number, now: number): number {
  if (job.state !== 'running') {
    return job.duration;
  }
  return job.duration + Math.max(0, (now - readAt) / 1000);
}

/** The server's progress fraction 0..1 (`progress.fraction`), or null when unknown. */
export function progressFraction(job: Job): number | null {
  const fraction = job.progress?.fraction;
  return typeof fraction === 'number' ? fraction : null;
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
