// The cluster bus on a real redis-server: events between nodes are parsed with the wire schema, so a message on the
// channel that is not a well-formed event of ours (a v8-serialized object, a forged event, a prototype key) is
// dropped, and well-formed events from another node arrive intact, binary bodies included.
import { serialize } from 'node:v8';
import { pino } from 'pino';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterEvent } from '../src/cluster/bus.js';
import { connectRedisCluster } from '../src/cluster/redis.js';
import type { RedisCluster } from '../src/cluster/redis.js';
import { decodeEnvelope, encodeEnvelope, msgpack } from '../src/cluster/wire.js';
import { waitFor } from './helpers.js';
import { startRedis } from './services.js';
import type { Service } from './services.js';

const started = await startRedis();
const redis: Service | null = 'service' in started ? started.service : null;
if ('skip' in started) console.warn(`[cluster-wire] Redis tests skipped: ${started.skip}`);
afterAll(() => redis?.stop());

const entry = {
  deviceId: 'd'.repeat(22),
  seq: 7,
  id: 'm'.repeat(22),
  ts: 1_700_000_000_000,
  body: Buffer.from([0, 1, 255]),
};

describe('the cluster wire format', () => {
  it('round-trips every event kind, bodies as bytes', () => {
    const events: ClusterEvent[] = [
      { type: 'entries', entries: [entry, { ...entry, seq: 8, group: 'g'.repeat(22) }] },
      { type: 'ephemeral', deviceIds: ['a'], message: { id: 'x', seq: 0, ts: 1, body: new Uint8Array([9, 8]) } },
      { type: 'resync', deviceIds: ['a', 'b'] },
      { type: 'presence', update: { userId: 'u', online: true, lastSeen: null } },
      { type: 'sharing', userId: 'u', share: false },
      { type: 'revoked', familyIds: ['f'] },
      { type: 'resume' },
    ];
    for (const event of events) {
      const decoded = decodeEnvelope(encodeEnvelope({ from: 'node', event }));
      expect(decoded?.event.type).toBe(event.type);
    }
    const ephemeral = decodeEnvelope(encodeEnvelope({ from: 'n', event: events[1]! }))?.event;
    expect(ephemeral?.type === 'ephemeral' && [...(ephemeral.message.body as Buffer)]).toEqual([9, 8]);
  });

  it('drops what is not a well-formed event: v8 serialization, unknown types, wrong fields, prototype keys', () => {
    expect(decodeEnvelope(serialize({ from: 'n', event: { type: 'resync', deviceIds: ['a'] } }))).toBeNull();
    expect(decodeEnvelope(msgpack.encode({ from: 'n', event: { type: 'shutdown' } }))).toBeNull();
    expect(
      decodeEnvelope(msgpack.encode({ from: 'n', event: { type: 'entries', entries: [{ ...entry, body: 'text' }] } })),
    ).toBeNull();
    expect(
      decodeEnvelope(msgpack.encode({ from: 'n', event: { type: 'resync', deviceIds: ['a'], extra: 1 } })),
    ).toBeNull();
    const poisoned = JSON.parse('{"from":"n","event":{"type":"resume"},"__proto__":{"x":1}}') as unknown;
    expect(decodeEnvelope(msgpack.encode(poisoned))).toBeNull();
    expect(decodeEnvelope(Buffer.from('garbage'))).toBeNull();
  });
});

describe.skipIf(redis === null)('the Redis bus', () => {
  it('hands a well-formed event from another node to the handlers and drops a forged v8 one', async () => {
    const cluster: RedisCluster = await connectRedisCluster({
      url: redis!.url,
      log: pino({ level: 'silent' }),
      now: Date.now,
      nodeTimeoutMs: 15_000,
      signin: { maxFailures: 5, windowMs: 60_000 },
      signinAddress: { maxFailures: 20, windowMs: 60_000 },
      events: { burst: 10, perSecond: 10 },
      signups: { burst: 5, perSecond: 1 },
    });
    const seen: ClusterEvent[] = [];
    cluster.bus.onEvent((event) => seen.push(event));
    const raw = createClient({ url: redis!.url });
    await raw.connect();
    try {
      // What the bus used to accept: any v8-serialized object that looks like an event.
      await raw.publish('wc:cluster', serialize({ from: 'other', event: { type: 'resync', deviceIds: ['forged'] } }));
      await raw.publish('wc:cluster', msgpack.encode({ from: 'other', event: { type: 'resync', deviceIds: [123] } }));
      // Then a positive signal: one well-formed event, published after the forged ones on the same channel.
      await raw.publish('wc:cluster', encodeEnvelope({ from: 'other', event: { type: 'entries', entries: [entry] } }));
      await waitFor(() => seen.length > 0, 5000, 'the well-formed event');
      expect(seen).toEqual([{ type: 'entries', entries: [entry] }]);
    } finally {
      await raw.close();
      await cluster.close();
    }
  });
});
