import { afterEach, describe, expect, it } from 'vitest';
import { Backoff } from '../src/stream/backoff';
import { ConnectionState, StreamConnection, StreamEvent } from '../src/stream/connection';
import { frame, streamResponse, tick, until } from './fakes';

function setup(answers: (() => Response | Promise<Response>)[]) {
  const queries: string[] = [];
  const events: StreamEvent[] = [];
  const states: ConnectionState[] = [];
  const connection = new StreamConnection({
    open: async (query, signal) => {
      queries.push(query);
      const next = answers.shift();
      if (!next) {
        return new Promise<Response>((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted')))
        );
      }
      return next();
    },
    onEvent: event => events.push(event),
    onState: state => states.push(state),
    backoff: new Backoff(5, 20, () => 0.5)
  });
  return { connection, queries, events, states };
}

let stopMe: StreamConnection | null = null;
afterEach(() => stopMe?.stop());

describe('StreamConnection', () => {
  it('reconnects with the last event id after the stream ends', async () => {
    const first = streamResponse();
    const second = streamResponse();
    const { connection, queries, events, states } = setup([
      () => first.response,
      () => second.response
    ]);
    stopMe = connection;
    connection.start(['jobs', 'alerts'], null);
    await tick();
    first.write(': hello\n\n' + frame(41, 'jobs', 'state', { job_id: 'a' }));
    first.write(frame(null, 'monitoring', 'sample', { cpu: 1 }));
    await tick(5);
    expect(states).toEqual(['connecting', 'open']);
    expect(events.map(e => [e.id, e.type])).toEqual([
      [41, 'state'],
      [null, 'sample']
    ]);
    first.end();
    await until(() => queries.length === 2);
    expect(queries).toEqual(['topics=alerts%2Cjobs', 'topics=alerts%2Cjobs&last_event_id=41']);
    expect(states).toContain('reconnecting');
    second.write(': hello\n\n');
    await until(() => states[states.length - 1] === 'open');
  });

  it('keeps trying after non-2xx answers and network errors', async () => {
    const ok = streamResponse();
    const { connection, queries, states } = setup([
      () => new Response('{"error":{}}', { status: 503 }),
      () => Promise.reject(new TypeError('Failed to fetch')),
      () => ok.response
    ]);
    stopMe = connection;
    connection.lastEventId = null;
    connection.start(['jobs'], 9);
    await until(() => queries.length === 3);
    ok.write(': hello\n\n');
    await until(() => states.includes('open'));
    expect(queries.length).toBe(3);
    expect(queries.every(q => q.endsWith('last_event_id=9'))).toBe(true);
    expect(states).toEqual(['connecting', 'reconnecting', 'open']);
  });

  it('switches topics by reconnecting at once from the last id', async () => {
    const first = streamResponse();
    const second = streamResponse();
    const { connection, queries, states } = setup([() => first.response, () => second.response]);
    stopMe = connection;
    connection.start(['jobs'], null);
    await tick();
    first.write('retry: 5000\n\n' + frame(5, 'jobs', 'state', {}));
    await tick(5);
    connection.setTopics(['jobs', 'job:j-0123456789ab']);
    await tick(5);
    expect(queries[1]).toBe('topics=job%3Aj-0123456789ab%2Cjobs&last_event_id=5');
    expect(states).not.toContain('reconnecting');
    connection.setTopics(['job:j-0123456789ab', 'jobs']); // same set: nothing happens
    await tick(5);
    expect(queries.length).toBe(2);
  });

  it('reconnects when the stream stalls', async () => {
    const first = streamResponse();
    const answers = [() => first.response];
    const queries: string[] = [];
    const connection = new StreamConnection({
      open: async query => {
        queries.push(query);
        return (answers.shift() ?? (() => streamResponse().response))();
      },
      onEvent: () => undefined,
      onState: () => undefined,
      stallMs: 30,
      backoff: new Backoff(5, 5, () => 0.5)
    });
    stopMe = connection;
    connection.start(['jobs'], null);
    await tick();
    first.write(': hello\n\n');
    await until(() => queries.length >= 2);
  });

  it('passes max_hz and stops for good on stop()', async () => {
    const queries: string[] = [];
    const connection = new StreamConnection({
      open: async query => {
        queries.push(query);
        return streamResponse().response;
      },
      onEvent: () => undefined,
      onState: () => undefined,
      maxHz: 2
    });
    connection.start(['monitoring'], null);
    await tick();
    connection.stop();
    await tick(20);
    expect(queries).toEqual(['topics=monitoring&max_hz=2']);
    expect(connection.currentState).toBe('closed');
  });
});
