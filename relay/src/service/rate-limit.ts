// Rate limits: failed sign-ins per key in a sliding window, and token buckets for socket events. The classes here
// keep their counts in this process; with REDIS_URL the relay shares them through Redis (cluster/redis-limits.ts),
// falling back to these while Redis is unreachable.
import { isIPv6 } from 'node:net';

/** One admitted sign-in attempt: exactly one of fail(), succeed() or cancel() follows. */
export interface SigninSlot {
  /** The attempt failed: it counts in the window. */
  fail(now: number): void;
  /** The attempt succeeded: the key's failures are forgotten. */
  succeed(): void;
  /** The attempt was never judged (an internal error, a refusal further on): it counts for nothing either way. */
  cancel(): void;
}

export type SigninAdmission = { ok: true; slot: SigninSlot } | { ok: false; retryAfterSeconds: number };

/** Failed sign-ins per key (username + address); attempts in flight count as failures. */
export interface SigninLimiter {
  /** Reserves an attempt before any expensive check, or answers how many seconds to wait. */
  admit(key: string, now: number): Promise<SigninAdmission>;
  /** Forgets windows that have passed (called by the periodic sweep). */
  prune(now: number): void;
}

/** Token buckets per key (a device): every socket event takes one token. */
export interface EventLimiter {
  /** Takes one token; false when the bucket is empty. */
  take(key: string, now: number): boolean | Promise<boolean>;
  prune(now: number): void;
}

/** Counts failures per key (username + address) in a sliding window; attempts in flight count as failures. */
export class FailureLimiter implements SigninLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly inFlight = new Map<string, number>();

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  /**
   * Reserves an attempt, or answers how many seconds to wait. Call before any expensive check, then exactly one
   * of fail() or succeed().
   */
  begin(key: string, now: number): { ok: true } | { ok: false; retryAfterSeconds: number } {
    const recent = this.recent(key, now);
    const pending = this.inFlight.get(key) ?? 0;
    if (recent.length + pending >= this.maxFailures) {
      const oldest = recent[0];
      const waitMs = oldest === undefined ? 1000 : oldest + this.windowMs - now;
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    }
    this.inFlight.set(key, pending + 1);
    return { ok: true };
  }

  admit(key: string, now: number): Promise<SigninAdmission> {
    const begun = this.begin(key, now);
    if (!begun.ok) return Promise.resolve(begun);
    return Promise.resolve({
      ok: true,
      slot: {
        fail: (at: number) => this.fail(key, at),
        succeed: () => this.succeed(key),
        cancel: () => this.release(key),
      },
    });
  }

  fail(key: string, now: number): void {
    this.release(key);
    const recent = this.recent(key, now);
    recent.push(now);
    this.failures.set(key, recent);
  }

  succeed(key: string): void {
    this.release(key);
    this.failures.delete(key);
  }

  /** Forgets windows that have passed (called by the periodic sweep). */
  prune(now: number): void {
    for (const key of this.failures.keys()) {
      if (this.recent(key, now).length === 0) this.failures.delete(key);
    }
  }

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (list.length > 0) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  private release(key: string): void {
    const pending = (this.inFlight.get(key) ?? 1) - 1;
    if (pending > 0) this.inFlight.set(key, pending);
    else this.inFlight.delete(key);
  }
}

/** One token bucket per key: `burst` tokens, refilled at `perSecond`. */
export class TokenBuckets implements EventLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {}

  /** Takes one token; false when the bucket is empty. */
  take(key: string, now: number): boolean {
    const bucket = this.refilled(key, now);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Whether at least one token is left (none is taken: charge() takes them once the cost is known). */
  has(key: string, now: number): boolean {
    return this.refilled(key, now).tokens >= 1;
  }

  /**
   * Takes `cost` tokens, owing what is not there (down to one burst): a cost learned only after the work, such as a
   * send's fan-out, is paid by waiting before the next one.
   */
  charge(key: string, now: number, cost: number): void {
    const bucket = this.refilled(key, now);
    bucket.tokens = Math.max(-this.burst, bucket.tokens - cost);
  }

  private refilled(key: string, now: number): { tokens: number; at: number } {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    return bucket;
  }

  /** Drops buckets that have refilled completely: they behave exactly like new ones. */
  prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(key);
    }
  }
}

/**
 * The part of a client address that limits count per address: an IPv4 address whole, an IPv6 address by its /64
 * (one customer usually holds a whole /64, so limits per /128 would be free to dodge). IPv4-mapped IPv6 is IPv4.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
