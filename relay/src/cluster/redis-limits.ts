// Rate limits shared by every relay node through Redis: sign-in failures per key in a sliding window, and token
// buckets per key (a device's socket events, an address's sign-ups). Each check is one Lua script (atomic in Redis).
// While Redis cannot answer — it refuses, it is away, or it is silent past a deadline — the node falls back to its own
// in-process limits, so an outage neither blocks sign-ins and sends nor lifts the limits.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { FailureLimiter, TokenBuckets } from '../service/rate-limit.js';
import type { EventLimiter, SigninAdmission, SigninLimiter } from '../service/rate-limit.js';
import { RedisDeadline, SILENT, Script } from './scripts.js';
import type { RedisClient } from './scripts.js';

/** Keys hold a hash of username and address, not the values. */
const keyHash = (key: string): string => createHash('sha256').update(key, 'utf8').digest('base64url');

// KEYS: failures zset, in-flight counter. ARGV: now, window ms, max failures, in-flight ttl ms.
// Answers {1} when admitted, else {0, oldest counted failure (or '')}.
const ADMIT = new Script(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local failures = redis.call('ZCARD', KEYS[1])
local pending = tonumber(redis.call('GET', KEYS[2]) or '0')
if failures + pending >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, oldest[2] or ''}
end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1}
`);

// KEYS: failures zset, in-flight counter. ARGV: 'fail', 'succeed' or 'cancel', now, member, window ms.
const SETTLE = new Script(`
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
if ARGV[1] == 'fail' then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
elseif ARGV[1] == 'succeed' then
  redis.call('DEL', KEYS[1])
end
return 1
`);

// KEYS: bucket hash. ARGV: burst, per second, now. Answers 1 when a token was taken.
const TAKE = new Script(`
local burst, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok
`);

/** An attempt in flight is forgotten after this long even if its node died before settling it. */
const IN_FLIGHT_TTL_MS = 60_000;

export class RedisSigninLimiter implements SigninLimiter {
  private readonly local: FailureLimiter;

  constructor(
    private readonly client: RedisClient,
    private readonly maxFailures: number,
    private readonly windowMs: number,
    private readonly log: Logger,
    /** Names this limiter's keys apart from another's (failures per username and address, or per address). */
    private readonly prefix = 'wc:signin',
    private readonly deadline = new RedisDeadline(log),
  ) {
    this.local = new FailureLimiter(maxFailures, windowMs);
  }

  async admit(key: string, now: number): Promise<SigninAdmission> {
    if (this.deadline.silent(now)) return this.local.admit(key, now);
    const h = keyHash(key);
    const keys = [`${this.prefix}:f:${h}`, `${this.prefix}:p:${h}`];
    let answer: [number, string?] | typeof SILENT;
    try {
      answer = await this.deadline.answer(
        ADMIT.run<[number, string?]>(this.client, keys, [now, this.windowMs, this.maxFailures, IN_FLIGHT_TTL_MS]),
        now,
      );
    } catch (err) {
      this.log.warn({ err }, 'Redis sign-in limit unavailable; limiting in this process');
      return this.local.admit(key, now);
    }
    if (answer === SILENT) return this.local.admit(key, now);
    if (Number(answer[0]) !== 1) {
      const oldest = Number(answer[1]);
      const waitMs = Number.isFinite(oldest) && answer[1] !== '' ? oldest + this.windowMs - now : 1000;
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    }
    const settle = (outcome: 'fail' | 'succeed' | 'cancel', at: number): void => {
      const member = `${at}:${randomBytes(4).toString('hex')}`;
      SETTLE.run(this.client, keys, [outcome, at, member, this.windowMs]).catch((err: unknown) =>
        this.log.warn({ err }, 'Redis sign-in limit could not record an attempt'),
      );
    };
    return {
      ok: true,
      slot: {
        fail: (at) => settle('fail', at),
        succeed: () => settle('succeed', now),
        cancel: () => settle('cancel', now),
      },
    };
  }

  prune(now: number): void {
    this.local.prune(now); // Redis keys expire by themselves
  }
}

export class RedisEventLimiter implements EventLimiter {
  private readonly local: TokenBuckets;

  constructor(
    private readonly client: RedisClient,
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly deadline = new RedisDeadline(null),
  ) {
    this.local = new TokenBuckets(burst, perSecond);
  }

  async take(key: string, now: number): Promise<boolean> {
    if (!this.client.isReady || this.deadline.silent(now)) return this.local.take(key, now);
    try {
      const answer = await this.deadline.answer(
        TAKE.run<number>(this.client, [`wc:bucket:${key}`], [this.burst, this.perSecond, now]),
        now,
      );
      return answer === SILENT ? this.local.take(key, now) : answer === 1;
    } catch {
      return this.local.take(key, now);
    }
  }

  prune(now: number): void {
    this.local.prune(now);
  }
}
