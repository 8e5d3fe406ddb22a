/** Reconnection delays: the server's `retry:` first, doubled per failure, capped, jittered. */
export class Backoff {
  private failures = 0;

  constructor(
    public baseMs = 1000,
    public maxMs = 10000,
    private random: () => number = Math.random
  ) {}

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const exp = Math.min(this.maxMs, this.baseMs * 2 ** this.failures);
    this.failures += 1;
    // +-20 % so that many tabs or browsers do not reconnect in lockstep
    const jitter = 1 + (this.random() * 0.4 - 0.2);
    return Math.max(50, Math.round(exp * jitter));
  }

  /** A connection worked: start again from the base delay. */
  succeed(): void {
    this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}
