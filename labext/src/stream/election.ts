/**
 * Which tab of this browser owns the one stream connection.
 *
 * Tabs talk over a BroadcastChannel. The owner announces itself every `heartbeatMs`; a tab
 * that has heard no owner for `timeoutMs` (or, at start, for `graceMs`) claims ownership.
 * When two tabs claim at once the smaller id wins and the other steps down. An owner that
 * closes resigns, so another tab takes over at once. A new tab asks (`query`) and the owner
 * answers at once, so a tab joining never claims over a living owner.
 */

export interface ElectionMessage {
  kind: 'owner' | 'resign' | 'query';
  id: string;
}

export interface ElectionOptions {
  heartbeatMs?: number;
  timeoutMs?: number;
  graceMs?: number;
}

export class Election {
  ownerId: string | null = null;
  private ownerSeen = -Infinity;
  private readonly started: number;
  private readonly heartbeatMs: number;
  private readonly timeoutMs: number;
  private readonly graceMs: number;
  private lastBeat = -Infinity;

  constructor(
    readonly id: string,
    private send: (message: ElectionMessage) => void,
    private onChange: (isOwner: boolean) => void,
    private now: () => number = Date.now,
    options: ElectionOptions = {}
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 3500;
    this.graceMs = options.graceMs ?? 400;
    this.started = now();
    send({ kind: 'query', id });
  }

  get isOwner(): boolean {
    return this.ownerId === this.id;
  }

  /** Handle a message from another tab. */
  receive(message: ElectionMessage): void {
    if (message.kind === 'query') {
      if (this.isOwner) {
        this.beat();
      }
      return;
    }
    if (message.kind === 'resign') {
      if (this.ownerId === message.id) {
        this.ownerId = null;
        this.ownerSeen = -Infinity;
        this.tick(true);
      }
      return;
    }
    if (this.isOwner && message.id > this.id) {
      this.beat(); // the smaller id wins a double claim: tell the other claimant at once
      return;
    }
    this.ownerSeen = this.now();
    this.setOwner(message.id);
  }

  /** Call regularly (every `heartbeatMs / 2` or so). */
  tick(force = false): void {
    const now = this.now();
    if (this.isOwner) {
      if (force || now - this.lastBeat >= this.heartbeatMs) {
        this.beat();
      }
      return;
    }
    const silentFor = now - this.ownerSeen;
    const waited = now - this.started >= this.graceMs;
    if (waited && (this.ownerId === null || silentFor >= this.timeoutMs)) {
      this.setOwner(this.id);
      this.beat();
    }
  }

  /** Leave: another tab takes over at once. */
  resign(): void {
    if (this.isOwner) {
      this.send({ kind: 'resign', id: this.id });
      this.setOwner(null);
    }
  }

  private beat(): void {
    this.lastBeat = this.now();
    this.send({ kind: 'owner', id: this.id });
  }

  private setOwner(id: string | null): void {
    const was = this.isOwner;
    this.ownerId = id;
    if (was !== this.isOwner) {
      this.onChange(this.isOwner);
    }
  }
}
