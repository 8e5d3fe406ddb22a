import { afterEach, describe, expect, it, vi } from 'vitest';
import { headlineMetric, JobsModel, progressFraction, runLabels } from '../src/model/jobs';
import { formatBytes, formatDuration, formatMetric, textDirection } from '../src/model/format';
import { changedValues, initialText, parseValue, recommendationValues } from '../src/model/params';
import { groupMetrics, SeriesSet } from '../src/model/series';
import { chunkRanges, uploadFile, UploadTransport } from '../src/model/upload';
import { Job, Parameter } from '../src/model/types';

function job(id: string, fields: Partial<Job> = {}): Job {
  return {
    id, kind: 'papermill', name: id, state: 'running', reason: null, template: null,
    notebook: { path: 'a.ipynb' }, parameters: {}, created: 1, started: 1, ended: null,
    updated: 1, duration: 0, progress: {}, latest_metrics: {}, error: null, model: null,
    ...fields
  };
}

const ev = (type: string, data: unknown) => ({ id: 1, topic: 'jobs', type, ts: 0, data });

afterEach(() => vi.useRealTimers());

describe('JobsModel', () => {
  it('applies state events, progress and removals, newest first', () => {
    const model = new JobsModel(async () => null);
    const seen: string[][] = [];
    model.onChange(jobs => seen.push(jobs.map(j => `${j.id}:${j.state}`)));
    model.reset([job('a', { created: 1 }), job('b', { created: 2 })]);
    model.apply(ev('state', { job_id: 'a', job: job('a', { state: 'paused', updated: 2 }) }));
    expect(model.get('a')!.state).toBe('paused');
    // a late, older snapshot does not undo a newer one
    model.upsert(job('a', { state: 'running', updated: 1 }));
    expect(model.get('a')!.state).toBe('paused');
    model.apply(ev('trashed', { job_id: 'b', job: job('b') }));
    expect(seen[seen.length - 1]).toEqual(['a:paused']);
    model.dispose();
  });

  it('merges progress at once and reads the job again at most once per interval', async () => {
    vi.useFakeTimers();
    const reads: string[] = [];
    let n = 0;
    const model = new JobsModel(async id => {
      reads.push(id);
      n += 1;
      return job(id, { updated: 10 + n, latest_metrics: { loss: 1 / n } });
    }, 1000);
    model.reset([job('a')]);
    model.apply(ev('progress', { job_id: 'a', progress: { step: 3, total_steps: 10 } }));
    expect(model.get('a')!.progress.step).toBe(3);
    model.apply(ev('progress', { job_id: 'a', progress: { step: 4 } }));
    await vi.advanceTimersByTimeAsync(0);
    expect(reads).toEqual(['a']);
    model.apply(ev('progress', { job_id: 'a', progress: { step: 5 } }));
    await vi.advanceTimersByTimeAsync(500);
    expect(reads).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(600);
    expect(reads).toEqual(['a', 'a']);
    expect(model.get('a')!.latest_metrics.loss).toBe(0.5);
    model.dispose();
  });

  it('shows the headline metrics the server chose, computing none', () => {
    const headline = { loss: { name: 'val_loss', value: 0.7 }, accuracy: null };
    const chosen = job('a', { latest_metrics: { loss: 0.5, val_loss: 0.7, acc: 0.9 }, headline });
    expect(headlineMetric(chosen, 'loss')).toEqual({ name: 'val_loss', value: 0.7 });
    expect(headlineMetric(chosen, 'accuracy')).toBeNull();
    expect(headlineMetric(job('a', { latest_metrics: { loss: 0.5 } }), 'loss')).toBeNull();
  });

  it('shows the progress fraction the server derived', () => {
    expect(progressFraction(job('a', { progress: { step: 4, total_steps: 10, fraction: 0.4 } }))).toBe(0.4);
    expect(progressFraction(job('a', { progress: { step: 4, total_steps: 10 } }))).toBeNull();
    expect(progressFraction(job('a', { state: 'succeeded', progress: { fraction: 1 } }))).toBe(1);
    expect(progressFraction(job('a', { progress: { fraction: null } }))).toBeNull();
    expect(progressFraction(job('a'))).toBeNull();
  });

  it('keeps the fraction of the latest progress event', () => {
    const model = new JobsModel(async () => null, 60_000);
    model.reset([job('a', { progress: { step: 1, total_steps: 4, fraction: 0.25 } })]);
    model.apply(ev('progress', { job_id: 'a', progress: { step: 2, total_steps: 4, fraction: 0.5 } }));
    expect(progressFraction(model.get('a')!)).toBe(0.5);
    model.dispose();
  });
});

describe('runLabels', () => {
  it('adds the start of the id only where names repeat', () => {
    const labels = runLabels([
      { id: 'aaaaaaaa1111', name: 'steps' }, { id: 'bbbbbbbb2222', name: 'steps' },
      { id: 'cccccccc3333', name: 'other' }, { id: 'dddddddd4444', name: null }
    ]);
    expect([...labels.values()]).toEqual(
      ['steps · aaaaaaaa', 'steps · bbbbbbbb', 'other', 'dddddddd4444']);
  });
});

describe('format', () => {
  it('tells the writing direction of a language code', () => {
    expect(textDirection('ar-SA')).toBe('rtl');
    expect(textDirection('fa_IR')).toBe('rtl');
    expect(textDirection('he')).toBe('rtl');
    expect(textDirection('en')).toBe('ltr');
    expect(textDirection('fr-FR')).toBe('ltr');
    expect(textDirection('')).toBe('ltr');
    expect(textDirection(undefined)).toBe('ltr');
  });
  it('formats durations, bytes and metrics', () => {
    expect(formatDuration(65)).toBe('1:05');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(null)).toBe('–');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(300 * 1024 * 1024)).toBe('300 MiB');
    expect(formatMetric(0.123456)).toBe('0.1235');
    expect(formatMetric(0.00001234)).toBe('1.23e-5');
    expect(formatMetric({ nonfinite: 'nan' })).toBe('nan');
  });
});

const param = (name: string, types: string[], dflt: unknown, extra = {}): Parameter => ({
  name, type: types.join(' | '), types, default: dflt, required: false, help: '',
  asset: null, ...extra
});

describe('parameters', () => {
  it('parses text into the parameter types', () => {
    expect(parseValue(param('epochs', ['int'], 30), ' 3 ')).toBe(3);
    expect(parseValue(param('lr', ['float'], 0.1), '1e-3')).toBe(0.001);
    expect(parseValue(param('bs', ['int', 'str'], 'auto'), 'auto')).toBe('auto');
    expect(parseValue(param('bs', ['int', 'str'], 'auto'), '64')).toBe(64);
    expect(parseValue(param('flag', ['bool'], false), 'True')).toBe(true);
    expect(parseValue(param('xs', ['list'], []), '[1, 2]')).toEqual([1, 2]);
    expect(parseValue(param('any', ['any'], null), '{"a": 1}')).toEqual({ a: 1 });
    expect(() => parseValue(param('epochs', ['int'], 30), 'three')).toThrow(/epochs/);
  });

  it('sends only changed values (and required ones)', () => {
    const params = [
      param('epochs', ['int'], 30),
      param('lr', ['float'], 0.01),
      param('name', ['str'], null, { required: true })
    ];
    expect(changedValues(params, { epochs: '2', lr: '0.01', name: 'x' })).toEqual({
      epochs: 2,
      name: 'x'
    });
  });

  it('prefills auto parameters with the recommendations', () => {
    const recs = recommendationValues({
      settings: { device: { value: 'cpu', reason: 'no GPU' }, num_workers: { value: 2 } }
    });
    expect(recs).toEqual({ device: 'cpu', num_workers: 2 });
    expect(initialText(param('device', ['str'], 'auto'), recs.device)).toBe('cpu');
    expect(initialText(param('epochs', ['int'], 30), 5)).toBe('30');
    expect(initialText(param('f', ['any'], null, { default_source: 'foo()' }))).toBe('foo()');
  });
});

describe('series', () => {
  it('aligns buckets and stream points on one x axis', () => {
    const set = new SeriesSet();
    set.addBuckets([
      { name: 'loss', count: 2, buckets: [
        { x: 0, x_last: 0, count: 1, min: 1, max: 1, mean: 1, last: 1 },
        { x: 1, x_last: 1, count: 1, min: 0.5, max: 0.5, mean: 0.5, last: 0.5 }
      ] }
    ]);
    const counters = new Map<string, number>([['loss', 2]]);
    set.addStreamPoints([{ step: 2, t: 0, metrics: { loss: 0.25, acc: 0.8 } }], counters);
    const cols = set.columns(['acc', 'loss']);
    expect(cols.data).toEqual([[0, 1, 2], [null, null, 0.8], [1, 0.5, 0.25]]);
    expect(counters.get('acc')).toBe(1);
  });

  it('groups losses and accuracies into shared charts', () => {
    expect(groupMetrics(['loss', 'val_loss', 'acc', 'val_acc', 'lr', 'epoch'])).toEqual([
      ['loss', 'val_loss'],
      ['acc', 'val_acc'],
      ['lr']
    ]);
  });
});

describe('upload', () => {
  it('plans chunks from an offset', () => {
    expect(chunkRanges(10, 0, 4)).toEqual([[0, 4], [4, 8], [8, 10]]);
    expect(chunkRanges(10, 8, 4)).toEqual([[8, 10]]);
    expect(chunkRanges(0, 0, 4)).toEqual([]);
  });

  it('resumes from the offset the server reports after a failed chunk', async () => {
    const stored: number[] = [];
    let failOnce = true;
    const calls: string[] = [];
    const transport: UploadTransport = {
      create: async body => {
        calls.push(`create ${body.name} ${body.size}`);
        return { id: 'u1' };
      },
      send: async (_id, offset, chunk) => {
        const bytes = new Uint8Array(await chunk.arrayBuffer());
        if (offset === 4 && failOnce) {
          failOnce = false;
          stored.push(...bytes.slice(0, 2)); // half arrived before the cut
          throw new Error('network');
        }
        if (offset !== stored.length) {
          throw new Error(`bad offset ${offset}`);
        }
        stored.push(...bytes);
        return { offset: stored.length };
      },
      offset: async () => stored.length,
      complete: async () => ({ id: 'asset', size: stored.length }),
      abort: async () => {
        calls.push('abort');
      }
    };
    const data = new Uint8Array([...Array(10).keys()]);
    const progress: number[] = [];
    const file = Object.assign(new Blob([data]), { name: 'x.bin' });
    const asset = await uploadFile(transport, 'datasets', file, {
      chunkBytes: 4,
      onProgress: sent => progress.push(sent),
      sleep: async () => undefined
    });
    expect(asset).toEqual({ id: 'asset', size: 10 });
    expect(stored).toEqual([...data]);
    expect(progress[progress.length - 1]).toBe(10);
    expect(calls).toEqual(['create x.bin 10']);
  });

  it('aborts the upload when it cannot go on', async () => {
    const calls: string[] = [];
    const transport: UploadTransport = {
      create: async () => ({ id: 'u2' }),
      send: async () => {
        throw Object.assign(new Error('too large'), { permanent: true });
      },
      offset: async () => 0,
      complete: async () => ({}),
      abort: async id => {
        calls.push(`abort ${id}`);
      }
    };
    const file = Object.assign(new Blob([new Uint8Array(3)]), { name: 'y' });
    await expect(uploadFile(transport, 'models', file)).rejects.toThrow('too large');
    expect(calls).toEqual(['abort u2']);
  });
});
