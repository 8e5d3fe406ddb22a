import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConnectionState, StreamEvent } from '../src/stream/connection';
import { ConnectionLike, EventHub } from '../src/stream/hub';
import { ChannelNetwork } from './fakes';

class FakeConnection implements ConnectionLike {
  lastEventId: number | null = null;
  currentTopics: string[] = [];
  started: { topics: string[]; last: number | null }[] = [];
  stopped = false;
  constructor(
    readonly emit: (event: StreamEvent) => void,
    readonly state: (state: ConnectionState) => void
  ) {}
  start(topics: string[], last: number | null): void {
    this.currentTopics = [...topics].sort();
    this.lastEventId = last;
    this.started.push({ topics: this.currentTopics, last });
  }
  setTopics(topics: string[]): void {
    this.start(topics, this.lastEventId);
  }
  stop(): void {
    this.stopped = true;
  }
  open(): void {
    this.state('open');
  }
  send(id: number | null, topic: string, type = 't', data: unknown = {}): void {
    if (id !== null) {
      this.lastEventId = id;
    }
    this.emit({ id, topic, type, ts: 0, data });
  }
}

function makeHub(network: ChannelNetwork, tabId: string, connections: FakeConnection[]) {
  return new EventHub({
    tabId,
    channel: network.channel(),
    connect: (onEvent, onState) => {
      const c = new FakeConnection(onEvent, onState);
      connections.push(c);
      return c;
    }
  });
}

function recorder() {
  const events: StreamEvent[] = [];
  let refetches = 0;
  return {
    events,
    get refetches() {
      return refetches;
    },
    subscriber: { onEvent: (e: StreamEvent) => events.push(e), refetch: () => (refetches += 1) }
  };
}

const hubs: EventHub[] = [];
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  hubs.splice(0).forEach(h => h.dispose());
  vi.useRealTimers();
});

describe('EventHub', () => {
  it('opens one connection for two tabs, with the union of their topics', async () => {
    const network = new ChannelNetwork();
    const connections: FakeConnection[] = [];
    const a = makeHub(network, 'a', connections);
    hubs.push(a);
    await vi.advanceTimersByTimeAsync(600);
    const b = makeHub(network, 'b', connections);
    hubs.push(b);
    const ra = recorder();
    const rb = recorder();
    a.subscribe(['jobs'], ra.subscriber);
    b.subscribe(['monitoring'], rb.subscriber);
    await vi.advanceTimersByTimeAsync(2000);
    expect(connections.length).toBe(1);
    expect(a.isOwner).toBe(true);
    expect(b.isOwner).toBe(false);
    const conn = connections[0];
    expect(conn.currentTopics).toEqual(['jobs', 'monitoring']);
    conn.open();
    await vi.advanceTimersByTimeAsync(10);
    expect([ra.refetches, rb.refetches]).toEqual([1, 1]);
    expect(b.connectionState).toBe('open');
    conn.send(3, 'jobs');
    conn.send(null, 'monitoring');
    await vi.advanceTimersByTimeAsync(10);
    expect(ra.events.map(e => e.topic)).toEqual(['jobs']);
    expect(rb.events.map(e => e.topic)).toEqual(['monitoring']);
    expect(b.lastEventId).toBe(3);
  });

  it('tells a tab that joins later the state, so its subscribers read and go live', async () => {
    const network = new ChannelNetwork();
    const connections: FakeConnection[] = [];
    const a = makeHub(network, 'a', connections);
    hubs.push(a);
    a.subscribe(['jobs'], recorder().subscriber);
    await vi.advanceTimersByTimeAsync(600);
    connections[0].open();
    await vi.advanceTimersByTimeAsync(10);
    const b = makeHub(network, 'b', connections);
    hubs.push(b);
    const rb = recorder();
    b.subscribe(['jobs'], rb.subscriber);
    await vi.advanceTimersByTimeAsync(100);
    expect(b.connectionState).toBe('open');
    expect(rb.refetches).toBe(1);
    expect(connections.length).toBe(1);
  });

  it('hands the connection to another tab, which continues from the last id', async () => {
    const network = new ChannelNetwork();
    const connections: FakeConnection[] = [];
    const a = makeHub(network, 'a', connections);
    await vi.advanceTimersByTimeAsync(600);
    const b = makeHub(network, 'b', connections);
    hubs.push(b);
    const rb = recorder();
    b.subscribe(['jobs'], rb.subscriber);
    await vi.advanceTimersByTimeAsync(1500);
    connections[0].open();
    connections[0].send(17, 'jobs');
    await vi.advanceTimersByTimeAsync(10);
    a.dispose(); // the owner's tab closes: it resigns
    await vi.advanceTimersByTimeAsync(600);
    expect(b.isOwner).toBe(true);
    expect(connections.length).toBe(2);
    expect(connections[0].stopped).toBe(true);
    expect(connections[1].started[0]).toEqual({ topics: ['jobs'], last: 17 });
  });

  it('takes over when the owner goes silent', async () => {
    const network = new ChannelNetwork();
    const connections: FakeConnection[] = [];
    const a = makeHub(network, 'a', connections);
    await vi.advanceTimersByTimeAsync(600);
    const b = makeHub(network, 'b', connections);
    hubs.push(b);
    await vi.advanceTimersByTimeAsync(1000);
    expect(b.isOwner).toBe(false);
    // the owner's tab freezes: no more heartbeats, nothing said
    (a as any).options.channel.onmessage = null;
    network.members.delete((a as any).options.channel);
    clearInterval((a as any).timer);
    await vi.advanceTimersByTimeAsync(5000);
    expect(b.isOwner).toBe(true);
  });

  it('settles two simultaneous claims on one owner', async () => {
    const network = new ChannelNetwork();
    const connections: FakeConnection[] = [];
    const a = makeHub(network, 'b-tab', connections);
    const b = makeHub(network, 'a-tab', connections);
    hubs.push(a, b);
    await vi.advanceTimersByTimeAsync(3000);
    expect([a.isOwner, b.isOwner].filter(Boolean).length).toBe(1);
    expect(b.isOwner).toBe(true);
    expect(connections.filter(c => !c.stopped).length).toBe(1);
  });

  it('asks every subscriber to refetch on reset, and new topics to read once live', async () => {
    const connections: FakeConnection[] = [];
    const hub = new EventHub({
      tabId: 'solo',
      channel: null,
      connect: (onEvent, onState) => {
        const c = new FakeConnection(onEvent, onState);
        connections.push(c);
        return c;
      },
      initialEventId: 5
    });
    hubs.push(hub);
    const jobs = recorder();
    hub.subscribe(['jobs'], jobs.subscriber);
    await vi.advanceTimersByTimeAsync(100);
    const conn = connections[0];
    expect(conn.started[0].last).toBe(5);
    conn.open();
    expect(jobs.refetches).toBe(1);
    conn.open(); // a reconnect: the replay covers the gap
    expect(jobs.refetches).toBe(1);
    const view = recorder();
    hub.subscribe(['job:j-1'], view.subscriber);
    expect(view.refetches).toBe(0); // not streamed yet
    await vi.advanceTimersByTimeAsync(100);
    expect(conn.currentTopics).toEqual(['job:j-1', 'jobs']);
    conn.open();
    expect(view.refetches).toBe(1);
    conn.send(99, '', 'reset');
    expect([jobs.refetches, view.refetches]).toEqual([2, 2]);
    expect(hub.lastEventId).toBe(99);
  });
});
