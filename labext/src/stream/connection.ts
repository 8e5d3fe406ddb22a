/**
 * One live connection to `notebench/api/stream?topics=...`, reconnecting on its own.
 *
 * A browser `EventSource` cannot set `Last-Event-ID` on a new connection and gives up after
 * one non-2xx answer, so the stream is read with `fetch` (through the server connection's
 * settings: base URL, token) and parsed here; each reconnect sends `?last_event_id=`.
 */
import { Backoff } from './backoff';
import { SseParser } from './parser';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** An event as the server encodes it in `data:`. */
export interface StreamEvent {
  id: number | null;
  topic: string;
  type: string;
  ts: number;
  data: any;
}

export interface ConnectionOptions {
  /** Open the stream; `query` is the part after `stream?`. */
  open(query: string, signal: AbortSignal): Promise<Response>;
  onEvent(event: StreamEvent): void;
  onState(state: ConnectionState, detail?: string): void;
  /** Coalesce deliveries to at most this many a second (server side). */
  maxHz?: number | null;
  /** Reconnect when nothing (not even a heartbeat) arrived for this long. */
  stallMs?: number;
  backoff?: Backoff;
}

export class StreamConnection {
  lastEventId: number | null = null;
  private topics: string[] = [];
  private running = false;
  private controller: AbortController | null = null;
  private switching = false;
  private wake: (() => void) | null = null;
  private parser = new SseParser();
  private backoff: Backoff;
  private state: ConnectionState = 'closed';

  constructor(private options: ConnectionOptions) {
    this.backoff = options.backoff ?? new Backoff();
  }

  get currentTopics(): string[] {
    return this.topics;
  }

  get currentState(): ConnectionState {
    return this.state;
  }

  start(topics: string[], lastEventId: number | null): void {
    this.topics = normalize(topics);
    this.lastEventId = lastEventId;
    if (this.running) {
      this.restart();
      return;
    }
    this.running = true;
    void this.loop();
  }

  /** Stream other topics: reconnect at once, from the last event id (nothing is lost). */
  setTopics(topics: string[]): void {
    const next = normalize(topics);
    if (next.join(',') === this.topics.join(',')) {
      return;
    }
    this.topics = next;
    if (this.running) {
      this.restart();
    }
  }

  /** Reconnect now (e.g. the network came back), without waiting for the backoff. */
  retryNow(): void {
    this.wake?.();
  }

  stop(): void {
    this.running = false;
    this.controller?.abort();
    this.wake?.();
    this.setState('closed');
  }

  private restart(): void {
    this.switching = true;
    this.controller?.abort();
    this.wake?.();
  }

  private query(): string {
    const parts = [`topics=${encodeURIComponent(this.topics.join(','))}`];
    if (this.lastEventId !== null) {
      parts.push(`last_event_id=${this.lastEventId}`);
    }
    if (this.options.maxHz) {
      parts.push(`max_hz=${this.options.maxHz}`);
    }
    return parts.join('&');
  }

  private setState(state: ConnectionState, detail?: string): void {
    if (state !== this.state) {
      this.state = state;
      this.options.onState(state, detail);
    }
  }

  private async loop(): Promise<void> {
    let attempted = false;
    while (this.running) {
      if (!this.topics.length) {
        await this.sleep(60_000);
        continue;
      }
      const switched = this.switching;
      this.switching = false;
      const controller = new AbortController();
      this.controller = controller;
      if (!switched) {
        this.setState(attempted ? 'reconnecting' : 'connecting');
      }
      let failure = '';
      attempted = true;
      try {
        const response = await this.options.open(this.query(), controller.signal);
        if (!response.ok || !response.body) {
          failure = `HTTP ${response.status}`;
          // read the error body so the connection can be reused
          await response.text().catch(() => undefined);
        } else {
          await this.read(response.body, controller);
          failure = 'the stream ended';
        }
      } catch (error) {
        failure = String((error as Error)?.message ?? error);
      }
      if (!this.running) {
        break;
      }
      if (this.switching) {
        continue; // new topics: reconnect at once
      }
      this.setState('reconnecting', failure);
      await this.sleep(this.backoff.next());
    }
  }

  private async read(body: ReadableStream<Uint8Array>, controller: AbortController): Promise<void> {
    const reader = body.getReader();
    // aborting (new topics, a stall, stop) ends the read even where fetch would not
    const cancel = () => reader.cancel().catch(() => undefined);
    controller.signal.addEventListener('abort', cancel);
    this.parser.reset();
    const stallMs = this.options.stallMs ?? 45_000;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const arm = () => {
      if (timer !== null) {
        clearTimeout(timer);
      }
      timer = setTimeout(() => controller.abort(), stallMs);
    };
    arm();
    try {
      let first = true;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          return;
        }
        arm();
        const found = this.parser.feed(value);
        if (found.retry !== null) {
          this.backoff.baseMs = Math.max(100, found.retry);
        }
        if (first) {
          // the server answers `retry:` at once: the stream is established
          first = false;
          this.backoff.succeed();
          this.state = 'open';
          this.options.onState('open'); // also after a switch of topics: they are live now
        }
        for (const message of found.messages) {
          this.dispatch(message.id, message.data);
        }
      }
    } finally {
      if (timer !== null) {
        clearTimeout(timer);
      }
      controller.signal.removeEventListener('abort', cancel);
      void cancel();
    }
  }

  private dispatch(id: string | null, data: string): void {
    let event: StreamEvent;
    try {
      event = JSON.parse(data) as StreamEvent;
    } catch {
      return;
    }
    if (id !== null && /^\d+$/.test(id)) {
      const value = parseInt(id, 10);
      event.id = value;
      this.lastEventId = value;
    }
    this.options.onEvent(event);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise(resolve => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }
}

function normalize(topics: string[]): string[] {
  return [...new Set(topics)].sort();
}
