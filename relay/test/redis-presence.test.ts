// The shared presence registry on a real redis-server: a node's connections are counted once, whatever order its
// commands reach Redis in around an outage, and a node's write-back after an outage also clears what it no longer
// holds. Both cases once left a user who had closed every connection shown online for as long as the node ran.
import { pino } from 'pino';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisPresenceRegistry } from '../src/cluster/redis-presence.js';
import type { RedisClient } from '../src/cluster/scripts.js';
import { startRedis } from './services.js';
import type { Service } from './services.js';

const started = await startRedis();
const redis: Service | null = 'service' in started ? started.service : null;
if (!redis) console.warn(`[redis-presence] skipped: ${'skip' in started ? started.skip : ''}`);

const clients: RedisClient[] = [];
const registries: RedisPresenceRegistry[] = [];
afterAll(async () => {
  for (const r of registries) r.close();
  for (const c of clients) if (c.isOpen) await c.close().catch(() => undefined);
  await redis?.stop();
});

const T = 1_700_000_000_000;

async function node(now = (): number => T): Promise<{
  client: RedisClient;
  registry: RedisPresenceRegistry;
  transitions: { userId: string; online: boolean }[];
}> {
  // As the relay's command client: commands fail at once while Redis is unreachable, nothing is queued.
  const client = createClient({ url: redis?.url ?? '', disableOfflineQueue: true }) as RedisClient;
  await client.connect();
  clients.push(client);
  const transitions: { userId: string; online: boolean }[] = [];
  const registry = new RedisPresenceRegistry({
    client,
    log: pino({ level: 'silent' }),
    now,
    nodeTimeoutMs: 3_600_000, // no reaping during the test
    onTransition: (userId, online) => transitions.push({ userId, online }),
  });
  registries.push(registry);
  return { client, registry, transitions };
}

describe.skipIf(!redis)('the presence registry in Redis', () => {
  it('counts a connection once when the write-back runs between a connect refused with NOSCRIPT and its retry', async () => {
    const { client, registry } = await node();
    // Redis restarted empty: no scripts. The write-back loads its own script first (as after an outage, it ran
    // before); the connect's EVALSHA then fails, the write-back runs, and only then the connect's EVAL.
    await client.sendCommand(['SCRIPT', 'FLUSH']);
    await registry.reassert();
    const user = `u-noscript-${String(Date.now())}`;
    await Promise.all([registry.connected(user, T), registry.reassert()]);
    expect(await client.sendCommand(['HVALS', `wc:presence:u:${user}`])).toEqual(['1']);
    await registry.disconnected(user, T + 1);
    expect((await registry.states([user])).get(user)).toEqual({ online: false, lastSeen: T + 1 });
  });

  it('keeps the one connection left when the write-back runs between a disconnect refused with NOSCRIPT and its retry', async () => {
    const { client, registry } = await node();
    await client.sendCommand(['SCRIPT', 'FLUSH']);
    await registry.reassert();
    const user = `u-noscript-left-${String(Date.now())}`;
    await registry.connected(user, T);
    await registry.connected(user, T);
    await Promise.all([registry.disconnected(user, T + 1), registry.reassert()]);
    expect(await client.sendCommand(['HVALS', `wc:presence:u:${user}`])).toEqual(['1']);
    expect((await registry.states([user])).get(user)?.online).toBe(true);
  });

  it('writes back what the node holds when the write-back is retried after NOSCRIPT, not what it held before', async () => {
    const { client, registry } = await node();
    const user = `u-stale-writeback-${String(Date.now())}`;
    await client.sendCommand(['SCRIPT', 'FLUSH']);
    // Connects and disconnects load their scripts; the write-back's is not loaded yet.
    await registry.connected(`${user}-warm`, T);
    await registry.disconnected(`${user}-warm`, T);
    expect(await registry.connected(user, T)).toBe(T);
    // The write-back's EVALSHA fails, the disconnect runs, then the write-back's EVAL: it must not bring back a
    // connection that closed meanwhile.
    await Promise.all([registry.reassert(), registry.disconnected(user, T + 1)]);
    expect((await registry.states([user])).get(user)?.online).toBe(false);
  });

  it('takes a user offline at the write-back when the disconnect could not reach Redis', async () => {
    const { client, registry, transitions } = await node();
    const other = await node();
    const user = `u-lost-disconnect-${String(Date.now())}`;
    const elsewhere = `u-elsewhere-${String(Date.now())}`;
    expect(await registry.connected(user, T)).toBe(T);
    // Another node holds a connection of another user: this node's write-back must leave it alone.
    await other.registry.connected(elsewhere, T);
    const seen = await other.registry.states([user]);
    expect(seen.get(user)?.online).toBe(true);

    await client.close(); // Redis unreachable from this node (Redis itself keeps its data)
    await expect(registry.disconnected(user, T + 1)).rejects.toThrow();
    expect((await other.registry.states([user])).get(user)?.online).toBe(true); // stale, until the write-back

    await client.connect();
    await registry.reassert();
    expect((await other.registry.states([user])).get(user)).toEqual({ online: false, lastSeen: T });
    expect(transitions).toContainEqual({ userId: user, online: false });
    expect((await other.registry.states([elsewhere])).get(elsewhere)?.online).toBe(true);
  });

  it('writes its connections back at the next heartbeat after another node took it for dead', async () => {
    const alive = await node();
    const user = `u-reaped-${String(Date.now())}`;
    await alive.registry.beat();
    await alive.registry.connected(user, T);
    // A node whose clock says the first one missed its heartbeats (it paused longer than the node timeout).
    const later = await node(() => T + 2 * 3_600_000);
    await later.registry.beat();
    expect((await later.registry.states([user])).get(user)?.online).toBe(false);
    await alive.registry.beat();
    expect((await later.registry.states([user])).get(user)?.online).toBe(true);
    expect(alive.transitions).toContainEqual({ userId: user, online: true });
  });

  it('keeps a user online while another node still holds a connection, and writes back counts, not increments', async () => {
    const one = await node();
    const two = await node();
    const user = `u-two-nodes-${String(Date.now())}`;
    await one.registry.connected(user, T);
    await one.registry.connected(user, T);
    await two.registry.connected(user, T);
    await one.registry.reassert();
    await one.registry.reassert();
    await one.registry.disconnected(user, T + 1);
    await one.registry.disconnected(user, T + 1);
    expect((await two.registry.states([user])).get(user)?.online).toBe(true);
    expect(await two.registry.disconnected(user, T + 2)).toBe(T + 2);
    expect((await one.registry.states([user])).get(user)).toEqual({ online: false, lastSeen: T + 2 });
  });
});
