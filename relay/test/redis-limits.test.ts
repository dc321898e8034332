// The per-address limits shared through a real redis-server, as two relay nodes use them: failed sign-ins per
// address across usernames, sign-ups per address, and a cancelled attempt (an internal error) that keeps the count.
import { pino } from 'pino';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisEventLimiter, RedisSigninLimiter } from '../src/cluster/redis-limits.js';
import { RedisDeadline } from '../src/cluster/scripts.js';
import type { RedisClient } from '../src/cluster/scripts.js';
import { startRedis } from './services.js';
import type { Service } from './services.js';

const started = await startRedis();
const redis: Service | null = 'service' in started ? started.service : null;
if (!redis) console.warn(`[redis-limits] skipped: ${'skip' in started ? started.skip : ''}`);

const clients: RedisClient[] = [];
async function node(): Promise<RedisClient> {
  const client = createClient({ url: redis?.url ?? '' }) as RedisClient;
  await client.connect();
  clients.push(client);
  return client;
}
afterAll(async () => {
  redis?.resume?.(); // a test that failed while Redis was paused
  for (const c of clients) await c.close().catch(() => undefined);
  await redis?.stop();
});

const log = pino({ level: 'silent' });
const T = 1_700_000_000_000;

describe.skipIf(!redis)('per-address limits in Redis', () => {
  it('counts failed sign-ins of one address across nodes, apart from the per-username counts', async () => {
    const [one, two] = [await node(), await node()];
    const onOne = new RedisSigninLimiter(one, 3, 60_000, log, 'wc:signin-address');
    const onTwo = new RedisSigninLimiter(two, 3, 60_000, log, 'wc:signin-address');
    const perName = new RedisSigninLimiter(one, 3, 60_000, log);
    for (const limiter of [onOne, onTwo, onOne]) {
      const admitted = await limiter.admit('192.0.2.1', T);
      if (!admitted.ok) throw new Error('refused too early');
      admitted.slot.fail(T);
    }
    // Each node's settle commands run before its next command: a PING on both means every failure is counted.
    await Promise.all([one.ping(), two.ping()]);
    expect((await onTwo.admit('192.0.2.1', T + 1)).ok).toBe(false);
    expect((await onTwo.admit('192.0.2.2', T + 1)).ok).toBe(true);
    // The same string as a per-username key is another counter.
    expect((await perName.admit('192.0.2.1', T + 1)).ok).toBe(true);
  });

  it('keeps the count when an attempt is cancelled (an internal error)', async () => {
    const client = await node();
    const limiter = new RedisSigninLimiter(client, 2, 60_000, log, 'wc:signin-test');
    const first = await limiter.admit('a', T);
    if (!first.ok) throw new Error('refused');
    first.slot.fail(T);
    const cancelled = await limiter.admit('a', T);
    if (!cancelled.ok) throw new Error('refused');
    cancelled.slot.cancel();
    const second = await limiter.admit('a', T);
    if (!second.ok) throw new Error('refused');
    second.slot.fail(T);
    await client.ping();
    expect((await limiter.admit('a', T + 1)).ok).toBe(false);
  });

  it('shares one sign-up bucket per address across nodes', async () => {
    const [one, two] = [await node(), await node()];
    const a = new RedisEventLimiter(one, 2, 1 / 3600);
    const b = new RedisEventLimiter(two, 2, 1 / 3600);
    expect(await a.take('signup:x', T)).toBe(true);
    expect(await b.take('signup:x', T)).toBe(true);
    expect(await a.take('signup:x', T)).toBe(false);
    expect(await b.take('signup:y', T)).toBe(true);
  });

  it('decides alone while Redis is silent (a stopped process), keeps the limits, and asks Redis again after a back-off', async () => {
    if (!redis?.pause || !redis.resume) throw new Error('redis-server was not started here');
    const [one, two] = [await node(), await node()];
    const deadline = new RedisDeadline(log, 100);
    const events = new RedisEventLimiter(one, 2, 1 / 3600, deadline);
    const signins = new RedisSigninLimiter(one, 1, 60_000, log, 'wc:signin-silent', deadline);
    const other = new RedisEventLimiter(two, 2, 1 / 3600);
    expect(await events.take('device:s', T)).toBe(true);

    redis.pause();
    try {
      // Redis holds the command it was sent and answers nothing: past the deadline, this node's own bucket answers.
      expect(await events.take('device:s', T)).toBe(true);
      // During the back-off nothing is sent to Redis, and the node's own limits still hold.
      expect(await events.take('device:q', T)).toBe(true);
      expect(await events.take('device:q', T)).toBe(true);
      expect(await events.take('device:q', T)).toBe(false);
      const admitted = await signins.admit('carol', T);
      if (!admitted.ok) throw new Error('refused while Redis was silent');
      admitted.slot.fail(T);
      expect((await signins.admit('carol', T + 1)).ok).toBe(false);
    } finally {
      redis.resume();
    }
    await one.ping(); // Redis has run everything it was sent before this
    expect(await one.exists('wc:bucket:device:q')).toBe(0);
    expect(await one.keys('wc:signin-silent:*')).toEqual([]);

    // After the back-off, the shared bucket is Redis's again: two tokens here leave none for the other node.
    expect(await events.take('device:r', T + 2000)).toBe(true);
    expect(await events.take('device:r', T + 2000)).toBe(true);
    expect(await other.take('device:r', T + 2000)).toBe(false);
  });
});
