/**
 * Chart data: series of buckets from REST and points from the stream, as aligned columns.
 */
import { Series } from './types';

export interface Columns {
  names: string[];
  /** x values, then one column per name (null where a series has no value at that x). */
  data: (number | null)[][];
}

/** Points of one chart: name -> (x -> value), kept sorted on output. */
export class SeriesSet {
  private series = new Map<string, Map<number, number>>();

  constructor(private maxPoints = 5000) {}

  get names(): string[] {
    return [...this.series.keys()].sort();
  }

  clear(): void {
    this.series.clear();
  }

  /** Buckets from `GET .../metrics` (the last value of each bucket at its x). */
  addBuckets(series: Series[]): void {
    for (const s of series) {
      for (const b of s.buckets) {
        const value = b.last ?? b.mean;
        if (value !== null && value !== undefined) {
          this.add(s.name, b.x_last ?? b.x, value);
        }
      }
    }
  }

  add(name: string, x: number, value: number): void {
    if (typeof value !== 'number' || !isFinite(value)) {
      return;
    }
    let points = this.series.get(name);
    if (!points) {
      points = new Map();
      this.series.set(name, points);
    }
    points.set(x, value);
    if (points.size > this.maxPoints) {
      // drop every other old point: a coarser past, a full-resolution present
      const xs = [...points.keys()].sort((a, b) => a - b);
      for (let i = 0; i < xs.length / 2; i += 2) {
        points.delete(xs[i]);
      }
    }
  }

  /** Points of a `metrics` stream event: `{points: [{step, t, metrics}]}`. */
  addStreamPoints(points: { step: number | null; t: number; metrics: Record<string, any> }[],
                  counters: Map<string, number>): void {
    for (const point of points) {
      for (const [name, value] of Object.entries(point.metrics ?? {})) {
        const index = counters.get(name) ?? 0;
        counters.set(name, index + 1);
        if (typeof value === 'number') {
          this.add(name, point.step ?? index, value);
        }
      }
    }
  }

  columns(names: string[] = this.names): Columns {
    const xs = new Set<number>();
    for (const name of names) {
      this.series.get(name)?.forEach((_v, x) => xs.add(x));
    }
    const sorted = [...xs].sort((a, b) => a - b);
    const data: (number | null)[][] = [sorted];
    for (const name of names) {
      const points = this.series.get(name);
      data.push(sorted.map(x => points?.get(x) ?? null));
    }
    return { names, data };
  }
}

/** Group metric names into charts: losses together, accuracies together, the rest alone. */
export function groupMetrics(names: string[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const name of names) {
    if (name === 'epoch' || name === 'step') {
      continue;
    }
    const key = /loss/i.test(name) ? 'loss' : /acc/i.test(name) ? 'acc' : name;
    groups.set(key, [...(groups.get(key) ?? []), name]);
  }
  return [...groups.values()];
}
