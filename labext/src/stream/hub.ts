/**
 * The event hub: every panel of every tab of this browser shares one stream connection.
 *
 * One tab (elected, see `election.ts`) holds the connection for the union of the topics
 * all tabs want, and relays each event over a BroadcastChannel; the others only listen.
 * Every tab follows the last event id, so a tab that takes over continues from it. A
 * `reset` event (the id is older than the server's kept log) and a first delivery of
 * newly wanted topics make subscribers refetch over REST.
 */
import { ConnectionState, StreamEvent } from './connection';
import { Election, ElectionMessage } from './election';

export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: any }) => void) | null;
  close(): void;
}

export interface Subscriber {
  onEvent(event: StreamEvent): void;
  /** Read the current state over REST (after a reset, or once the topics are live). */
  refetch?(): void;
}

/** What the hub needs of a connection (the real one, or a test double). */
export interface ConnectionLike {
  lastEventId: number | null;
  readonly currentTopics: string[];
  start(topics: string[], lastEventId: number | null): void;
  setTopics(topics: string[]): void;
  stop(): void;
}

export interface HubOptions {
  tabId: string;
  channel: ChannelLike | null;
  /** Make the connection; it calls back `onEvent`/`onState`. */
  connect(
    onEvent: (event: StreamEvent) => void,
    onState: (state: ConnectionState, detail?: string) => void
  ): ConnectionLike;
  /** The event id to replay from when this browser connects first (what it saw last). */
  initialEventId?: number | null;
  now?: () => number;
  tickMs?: number;
}

type HubMessage =
  | ElectionMessage
  | { kind: 'want'; id: string; topics: string[] }
  | { kind: 'event'; event: StreamEvent }
  | { kind: 'state'; state: ConnectionState; topics: string[] };

interface Subscription {
  topics: Set<string>;
  subscriber: Subscriber;
  live: boolean;
}

export class EventHub {
  lastEventId: number | null;
  private subscriptions = new Set<Subscription>();
  private election: Election | null = null;
  private connection: ConnectionLike | null = null;
  private others = new Map<string, { topics: string[]; seen: number }>();
  private liveTopics = new Set<string>();
  private state: ConnectionState = 'connecting';
  private stateListeners = new Set<(state: ConnectionState) => void>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private updateTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly now: () => number;

  constructor(private options: HubOptions) {
    this.now = options.now ?? Date.now;
    this.lastEventId = options.initialEventId ?? null;
    const channel = options.channel;
    if (channel) {
      channel.onmessage = ev => this.receive(ev.data as HubMessage);
      this.election = new Election(
        options.tabId,
        message => channel.postMessage(message),
        isOwner => this.ownerChanged(isOwner),
        this.now
      );
      this.timer = setInterval(() => this.tick(), options.tickMs ?? 500);
      this.election.tick();
    } else {
      this.ownerChanged(true); // no channel: this tab is alone
    }
  }

  get isOwner(): boolean {
    return this.election ? this.election.isOwner : this.connection !== null;
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** Follow topics; returns a function that stops following. */
  subscribe(topics: string[], subscriber: Subscriber): () => void {
    const subscription: Subscription = { topics: new Set(topics), subscriber, live: false };
    this.subscriptions.add(subscription);
    this.markLive(subscription);
    this.topicsChanged();
    return () => {
      this.subscriptions.delete(subscription);
      this.topicsChanged();
    };
  }

  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** The topics of this tab's subscriptions. */
  wantedTopics(): string[] {
    const topics = new Set<string>();
    for (const s of this.subscriptions) {
      s.topics.forEach(t => topics.add(t));
    }
    return [...topics].sort();
  }

  dispose(): void {
    if (this.timer !== null) {
      clearInterval(this.timer);
    }
    if (this.updateTimer !== null) {
      clearTimeout(this.updateTimer);
    }
    this.election?.resign();
    this.connection?.stop();
    this.connection = null;
    if (this.options.channel) {
      this.options.channel.onmessage = null;
      this.options.channel.close();
    }
    this.subscriptions.clear();
  }

  // -- owner side -----------------------------------------------------------------------

  private ownerChanged(isOwner: boolean): void {
    if (isOwner && !this.connection) {
      this.connection = this.options.connect(
        event => this.ownerEvent(event),
        (state, _detail) => this.ownerState(state)
      );
      this.connection.start(this.unionTopics(), this.lastEventId);
    } else if (!isOwner && this.connection) {
      this.connection.stop();
      this.connection = null;
      this.liveTopics = new Set();
    }
  }

  private unionTopics(): string[] {
    const topics = new Set(this.wantedTopics());
    const cutoff = this.now() - 5000;
    for (const [id, other] of this.others) {
      if (other.seen < cutoff) {
        this.others.delete(id);
      } else {
        other.topics.forEach(t => topics.add(t));
      }
    }
    return [...topics].sort();
  }

  private ownerEvent(event: StreamEvent): void {
    this.post({ kind: 'event', event });
    this.deliver(event);
  }

  private ownerState(state: ConnectionState): void {
    const topics = this.connection ? this.connection.currentTopics : [];
    this.post({ kind: 'state', state, topics });
    this.applyState(state, topics);
  }

  // -- every tab ------------------------------------------------------------------------

  private receive(message: HubMessage): void {
    switch (message.kind) {
      case 'owner':
      case 'resign':
      case 'query':
        this.election?.receive(message);
        if (message.kind === 'owner' && !this.isOwner) {
          this.sendWant(); // the (new) owner learns what this tab follows
        }
        break;
      case 'want': {
        const known = this.others.has(message.id);
        this.others.set(message.id, { topics: message.topics, seen: this.now() });
        if (this.isOwner) {
          this.scheduleUpdate();
          if (!known && this.connection) {
            // a tab that just joined learns the connection's state (and its live topics)
            this.post({ kind: 'state', state: this.state, topics: this.connection.currentTopics });
          }
        }
        break;
      }
      case 'event':
        if (!this.isOwner) {
          this.deliver(message.event);
        }
        break;
      case 'state':
        if (!this.isOwner) {
          this.applyState(message.state, message.topics);
        }
        break;
    }
  }

  private deliver(event: StreamEvent): void {
    if (event.id !== null && event.id !== undefined) {
      this.lastEventId = event.id;
    }
    if (event.type === 'reset') {
      for (const s of this.subscriptions) {
        s.subscriber.refetch?.();
      }
      return;
    }
    for (const s of this.subscriptions) {
      if (s.topics.has(event.topic)) {
        s.subscriber.onEvent(event);
      }
    }
  }

  private applyState(state: ConnectionState, topics: string[]): void {
    const changed = state !== this.state;
    this.state = state;
    if (state === 'open') {
      // after a reconnect the replay covers the gap; a first delivery needs a REST read
      this.liveTopics = new Set(topics);
      this.subscriptions.forEach(s => this.markLive(s));
    }
    if (changed) {
      this.stateListeners.forEach(listener => listener(state));
    }
  }

  private markLive(s: Subscription): void {
    if (s.live || this.state !== 'open') {
      return;
    }
    if ([...s.topics].every(t => this.liveTopics.has(t))) {
      s.live = true;
      s.subscriber.refetch?.();
    }
  }

  private topicsChanged(): void {
    if (this.isOwner) {
      this.scheduleUpdate();
    } else {
      this.sendWant();
    }
  }

  private scheduleUpdate(): void {
    if (this.updateTimer !== null) {
      return;
    }
    // topics asked for together (panels restoring at start) make one reconnect
    this.updateTimer = setTimeout(() => {
      this.updateTimer = null;
      if (this.connection) {
        this.connection.setTopics(this.unionTopics());
      }
    }, 50);
  }

  private sendWant(): void {
    if (this.election) {
      this.post({ kind: 'want', id: this.election.id, topics: this.wantedTopics() });
    }
  }

  private tick(): void {
    this.election?.tick();
    if (!this.isOwner) {
      this.sendWant();
    } else if (this.connection) {
      const union = this.unionTopics();
      if (union.join(',') !== this.connection.currentTopics.join(',')) {
        this.scheduleUpdate();
      }
    }
  }

  private post(message: HubMessage): void {
    this.options.channel?.postMessage(message);
  }
}
