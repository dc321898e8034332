// The token buckets behind the socket limits: one token per event, and a cost charged after the work (a send's
// fan-out), owed at most one burst deep so that an account that overdrew waits a bounded time.
import { describe, expect, it } from 'vitest';
import { TokenBuckets } from '../src/service/rate-limit.js';

describe('token buckets', () => {
  it('take one token per event and refill at the rate, up to the burst', () => {
    const buckets = new TokenBuckets(2, 1);
    expect([buckets.take('a', 0), buckets.take('a', 0), buckets.take('a', 0)]).toEqual([true, true, false]);
    expect(buckets.take('b', 0)).toBe(true); // a key's bucket is its own
    expect(buckets.take('a', 999)).toBe(false);
    expect(buckets.take('a', 1000)).toBe(true);
  });

  it('let a charge overdraw, refuse while owing, and owe at most one burst', () => {
    const buckets = new TokenBuckets(10, 1);
    expect(buckets.has('a', 0)).toBe(true);
    buckets.charge('a', 0, 1000); // a cost known only afterwards: far more than is left
    expect(buckets.has('a', 10_999)).toBe(false);
    expect(buckets.has('a', 11_000)).toBe(true); // from -10, eleven seconds at one a second
    expect(buckets.has('b', 0)).toBe(true);
  });
});
