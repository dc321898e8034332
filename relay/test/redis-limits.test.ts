// The per-address limits shared through a real redis-server, as two relay nodes use them: failed sign-ins per
// address across usernames, sign-ups per address, and a cancelled attempt (an internal error) that keeps the count.
import { pino } from 'pino';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisEventLimiter, RedisSigninLimiter } from '../src/cluster/redis-limits.js';
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
});
