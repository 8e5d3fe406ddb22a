import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/stream/backoff';

describe('Backoff', () => {
  it('doubles per failure up to the cap, and restarts after success', () => {
    const backoff = new Backoff(1000, 5000, () => 0.5);
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([
      1000, 2000, 4000, 5000
    ]);
    backoff.succeed();
    expect(backoff.next()).toBe(1000);
  });

  it('jitters within 20 %', () => {
    expect(new Backoff(1000, 5000, () => 0).next()).toBe(800);
    expect(new Backoff(1000, 5000, () => 0.999999).next()).toBe(1200);
  });
});
