// Two relay processes sharing one store (FerretDB, or MONGODB_URI_TEST) and one redis-server, all spawned here on
// loopback ports: devices on different nodes talk, see each other's presence, lose nothing when a node is killed
// with SIGKILL mid-stream or when Redis goes away for five seconds.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelayProcess } from './crash-relay.js';
import type { RelayProcess } from './crash-relay.js';
import { api, connectDevice, messageId, signIn, signUp, sleep, uniqueUsername, waitFor } from './helpers.js';
import type { TestAccount, TestDevice } from './helpers.js';
import { DRAIN_TIMEOUT_MS, QUEUED, drainQueuedMailbox } from './mongo-drain.js';
import { startMongo, startRedis, withDatabase } from './services.js';
import type { Service } from './services.js';

const [mongoStarted, redisStarted] = await Promise.all([startMongo(), startRedis()]);
const mongo: Service | null = 'service' in mongoStarted ? mongoStarted.service : null;
const redis: Service | null = 'service' in redisStarted ? redisStarted.service : null;
const skipReason = [mongoStarted, redisStarted].flatMap((s) => ('skip' in s ? [s.skip] : [])).join('; ');
if (skipReason) {
  console.warn(`[multinode] skipped: ${skipReason}`);
  await mongo?.stop();
  await redis?.stop();
}

const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-multinode-'));
const env: Record<string, string> = {
  MONGODB_URI: withDatabase(mongo?.url ?? 'mongodb://127.0.0.1:1/', `multinode_${randomBytes(4).toString('hex')}`),
  REDIS_URL: redis?.url ?? '',
  JWT_SECRET: randomBytes(32).toString('base64url'),
  BCRYPT_COST: '4',
  LOG_LEVEL: 'warn',
  DATA_DIR: dataDir,
  WEB_DIST: join(dataDir, 'no-web-app'),
  CLUSTER_NODE_TIMEOUT: '3',
  // Every test client signs up from 127.0.0.1, some of them at once: the per-address limits are raised.
  SIGNUP_RATE_BURST: '1000',
  SIGNIN_ADDRESS_MAX_FAILURES: '100000',
  BCRYPT_QUEUE_PER_ADDRESS: '1000',
};
const nodes: RelayProcess[] = [];
const devices: TestDevice[] = [];

async function startNode(): Promise<RelayProcess> {
  const node = await startRelayProcess(env, 30_000);
  nodes.push(node);
  return node;
}
async function connect(node: RelayProcess, token: string): Promise<TestDevice> {
  const device = await connectDevice(node.url, token);
  devices.push(device);
  return device;
}
const body = (id: string): Buffer => Buffer.from(`message ${id}`);
const idsOf = (device: TestDevice): Set<string> => new Set(device.messages.map((m) => m.id));

let node1: RelayProcess;
let node2: RelayProcess;
let alice: TestAccount;
let bob: TestAccount;

describe.skipIf(skipReason !== '')('two relay nodes with MongoDB and Redis', () => {
  beforeAll(async () => {
    [node1, node2] = await Promise.all([startNode(), startNode()]);
    alice = await signUp(node1.url, uniqueUsername('alice'));
    bob = await signUp(node2.url, uniqueUsername('bob'));
  });

  afterAll(async () => {
    redis?.resume?.(); // a test that failed while Redis was paused
    for (const device of devices) device.close();
    await Promise.all(nodes.map((n) => n.stop(3000).catch(() => undefined)));
    await redis?.stop();
    await mongo?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('reports the MongoDB store and Redis fan-out on both nodes', async () => {
    for (const node of [node1, node2]) {
      expect((await api(node.url, 'GET', '/api/health')).body).toMatchObject({ store: 'mongodb', fanout: 'redis' });
    }
  });

  it('delivers messages both ways between devices on different nodes, and presence across them', async () => {
    const a = await connect(node1, alice.accessToken);
    const b = await connect(node2, bob.accessToken);

    const toBob = messageId();
    const toAlice = messageId();
    expect(await a.send({ id: toBob, envelopes: [{ to: bob.deviceId, body: body(toBob) }] })).toMatchObject({
      ok: true,
    });
    expect(await b.send({ id: toAlice, envelopes: [{ to: alice.deviceId, body: body(toAlice) }] })).toMatchObject({
      ok: true,
    });
    await waitFor(() => idsOf(b).has(toBob) && idsOf(a).has(toAlice), 5000, 'both messages');
    expect(Buffer.from(b.messages.find((m) => m.id === toBob)?.body as Uint8Array)).toEqual(body(toBob));
    // Alice has written to bob: bob may see her presence, from the other node.
    expect(await b.watch([alice.userId])).toEqual({ ok: true });
    await waitFor(() => b.presence.some((p) => p.userId === alice.userId && p.online), 5000, 'alice online');

    const typing = messageId();
    expect(
      await a.send({ id: typing, ephemeral: true, envelopes: [{ to: bob.deviceId, body: body(typing) }] }),
    ).toMatchObject({ ok: true });
    await waitFor(() => idsOf(b).has(typing), 5000, 'the ephemeral message');
    expect(b.messages.find((m) => m.id === typing)?.seq).toBe(0);

    a.close();
    await waitFor(
      () => b.presence.filter((p) => p.userId === alice.userId).at(-1)?.online === false,
      5000,
      'alice offline on the other node',
    );
    b.close();
  });

  it("hides a blocker's presence at once from the blocked user's watch on the other node, and shows it after unblocking", async () => {
    const ann = await signUp(node1.url, uniqueUsername('ann'));
    const mal = await signUp(node2.url, uniqueUsername('mal'));
    const a = await connect(node1, ann.accessToken);
    const m = await connect(node2, mal.accessToken);
    const hello = messageId();
    expect(await a.send({ id: hello, envelopes: [{ to: mal.deviceId, body: body(hello) }] })).toMatchObject({
      ok: true,
    });
    const ofAnn = () => m.presence.filter((p) => p.userId === ann.userId);
    expect(await m.watch([ann.userId])).toEqual({ ok: true });
    await waitFor(() => ofAnn().at(-1)?.online === true, 5000, 'ann online on the other node');

    const count = ofAnn().length;
    expect((await api(node1.url, 'PUT', `/api/blocks/${mal.userId}`, { token: ann.accessToken })).status).toBe(204);
    await waitFor(() => ofAnn().length > count, 5000, 'the hidden state on the other node');
    expect(ofAnn().at(-1)).toEqual({ userId: ann.userId, online: false, lastSeen: null });

    expect((await api(node1.url, 'DELETE', `/api/blocks/${mal.userId}`, { token: ann.accessToken })).status).toBe(204);
    await waitFor(() => ofAnn().at(-1)?.online === true, 5000, 'the real state again on the other node');
    a.close();
    m.close();
  });

  it("drops a blocked user's sends on the other node once it has heard of the block (its in-memory block index)", async () => {
    const ann = await signUp(node1.url, uniqueUsername('ann'));
    const mal = await signUp(node2.url, uniqueUsername('mal'));
    const fencer = await signUp(node2.url, uniqueUsername('fence'));
    const a = await connect(node1, ann.accessToken);
    const m = await connect(node2, mal.accessToken);
    const f = await connect(node2, fencer.accessToken);
    const toAnn = (from: TestDevice, id = messageId()) =>
      from.send({ id, envelopes: [{ to: ann.deviceId, body: body(id) }] }).then((ack) => ({ id, ack }));
    // Baseline: before the block, mal's send through node 2 reaches ann on node 1.
    const before = await toAnn(m);
    expect(before.ack).toMatchObject({ ok: true });
    await waitFor(() => idsOf(a).has(before.id), 5000, "mal's first message at ann");
    // Ann lets mal write to her presence, so that the block's hidden state tells when node 2 heard of it.
    const hello = messageId();
    expect(await a.send({ id: hello, envelopes: [{ to: mal.deviceId, body: body(hello) }] })).toMatchObject({
      ok: true,
    });
    const ofAnn = () => m.presence.filter((p) => p.userId === ann.userId);
    expect(await m.watch([ann.userId])).toEqual({ ok: true });
    await waitFor(() => ofAnn().at(-1)?.online === true, 5000, 'ann online on the other node');
    const count = ofAnn().length;

    expect((await api(node1.url, 'PUT', `/api/blocks/${mal.userId}`, { token: ann.accessToken })).status).toBe(204);
    // The hidden presence and the block index's note travel in the same bus event on node 2.
    await waitFor(() => ofAnn().length > count, 5000, 'the block heard on the other node');

    const blocked = await toAnn(m);
    expect(blocked.ack).toEqual({ ok: true, ts: expect.any(Number) as number });
    // The fence: a third user's message, committed after mal's, arrives; mal's never did.
    const fence = await toAnn(f);
    expect(fence.ack).toMatchObject({ ok: true });
    await waitFor(() => idsOf(a).has(fence.id), 5000, 'the fence at ann');
    expect(idsOf(a).has(blocked.id)).toBe(false);
    a.close();
    m.close();
    f.close();
  });

  it('disconnects a signed-out session on the other node, and counts failed sign-ins across nodes', async () => {
    const session = await signIn(node1.url, alice);
    const there = await connect(node2, session.accessToken);
    const res = await api(node1.url, 'DELETE', '/api/sessions/current', { token: session.accessToken });
    expect(res.status).toBe(204);
    await waitFor(() => !there.socket.connected, 5000, 'the revoked socket to drop');

    const carol = await signUp(node1.url, uniqueUsername('carol'));
    const wrong = { username: carol.username, authKey: randomBytes(32).toString('base64url') };
    for (let i = 0; i < 5; i++) {
      const node = i % 2 === 0 ? node1 : node2;
      expect((await api(node.url, 'POST', '/api/sessions', { body: wrong })).status).toBe(401);
    }
    for (const node of [node1, node2]) {
      const limited = await api(node.url, 'POST', '/api/sessions', {
        body: { username: carol.username, authKey: carol.authKey },
      });
      expect(limited.status).toBe(429);
    }
  });

  it('shares one event bucket per device across nodes', async () => {
    const erin = await signUp(node1.url, uniqueUsername('erin'));
    const one = await connect(node1, erin.accessToken);
    const two = await connect(node2, erin.accessToken);
    // 150 events on each node: within each node's own burst of 200, beyond the device's shared one.
    const answers = await Promise.all(
      [one, two].flatMap((d) =>
        Array.from({ length: 150 }, () => d.socket.timeout(10_000).emitWithAck('no:such:event', {})),
      ),
    );
    const limited = answers.filter((a: { error?: { code?: string } }) => a.error?.code === 'rate_limited').length;
    expect(limited).toBeGreaterThan(0);
    expect(answers.length - limited).toBeLessThan(280);
    one.close();
    two.close();
  });

  it('loses no acknowledged message when the sender node is killed with SIGKILL mid-stream', async () => {
    const b = await connect(node2, bob.accessToken);
    const a = await connect(node1, alice.accessToken);
    await b.watch([alice.userId]);
    const aliceState = () => b.presence.filter((p) => p.userId === alice.userId).at(-1);
    await waitFor(() => aliceState()?.online === true, 5000, 'alice online');
    const sent: string[] = [];
    const acked = new Set<string>();
    const send = async (device: TestDevice, id: string): Promise<void> => {
      const ack = await device.send({ id, envelopes: [{ to: bob.deviceId, body: body(id) }] });
      if (ack.ok) acked.add(id);
    };
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop && sent.length < 2000) {
        const id = messageId();
        sent.push(id);
        try {
          await send(a, id);
        } catch {
          return; // the node is gone: this one stays in the outbox
        }
      }
    };
    const streaming = Promise.all([worker(), worker(), worker(), worker()]);
    await waitFor(() => acked.size >= 60, 20_000, '60 acknowledged sends');
    await node1.kill();
    stop = true;
    await streaming;
    const ackedBeforeKill = acked.size;
    // The dead node's heartbeat stops: after CLUSTER_NODE_TIMEOUT the surviving node shows alice offline.
    await waitFor(() => aliceState()?.online === false, 10_000, 'alice offline after her node died');

    // The client reconnects to the surviving node and sends its outbox again, then goes on.
    const again = await connect(node2, alice.accessToken);
    for (const id of sent.filter((i) => !acked.has(i))) await send(again, id);
    for (let i = 0; i < 20; i++) {
      const id = messageId();
      sent.push(id);
      await send(again, id);
    }
    expect(acked.size).toBe(sent.length);
    await waitFor(() => [...acked].every((id) => idsOf(b).has(id)), 20_000, 'every acknowledged message at bob');
    const received = idsOf(b);
    expect([...received].every((id) => sent.includes(id))).toBe(true);
    expect(received.size).toBe(sent.length);
    expect(ackedBeforeKill).toBeGreaterThanOrEqual(60);
    b.close();
    again.close();
    node1 = await startNode(); // a fresh node 1 for what follows
  });

  it('closes the sockets on the other node of a session signed out while Redis was down, once Redis is back', async () => {
    if (!redis) return;
    const session = await signIn(node1.url, alice);
    const there = await connect(node2, session.accessToken);
    await redis.kill();
    const res = await api(node1.url, 'DELETE', '/api/sessions/current', { token: session.accessToken });
    expect(res.status).toBe(204);
    await redis.start();
    // Each node rechecks the sessions of its sockets against the store after the cut.
    await waitFor(() => !there.socket.connected, 20_000, 'the socket of the revoked session to drop');
    // A positive signal that the other sockets were left alone: bob on node 2 still receives.
    const b = await connect(node2, bob.accessToken);
    const a = await connect(node1, alice.accessToken);
    const id = messageId();
    expect(await a.send({ id, envelopes: [{ to: bob.deviceId, body: body(id) }] })).toMatchObject({ ok: true });
    await waitFor(() => idsOf(b).has(id), 20_000, 'delivery after the outage');
  });

  it('resumes delivery with nothing lost after Redis is stopped for five seconds and restarted', async () => {
    if (!redis) return;
    const a = await connect(node1, alice.accessToken);
    const b = await connect(node2, bob.accessToken);
    const dave = await signUp(node1.url, uniqueUsername('dave'));
    const acked: string[] = [];
    const send = async (): Promise<void> => {
      const id = messageId();
      const ack = await a.send({ id, envelopes: [{ to: bob.deviceId, body: body(id) }] });
      expect(ack).toMatchObject({ ok: true });
      acked.push(id);
    };
    for (let i = 0; i < 5; i++) await send();
    await waitFor(() => acked.every((id) => idsOf(b).has(id)), 5000, 'delivery before the outage');

    await redis.kill();
    const outageEnds = Date.now() + 5000;
    while (Date.now() < outageEnds) {
      await send(); // the store still commits; the live push to the other node cannot happen
      await sleep(250);
    }
    await redis.start();
    for (let i = 0; i < 5; i++) await send();
    await waitFor(() => acked.every((id) => idsOf(b).has(id)), 20_000, 'every message sent around the outage');

    // Presence works again across nodes (Redis restarted empty: each node wrote its connections back).
    // Dave writes to bob first (presence is shared only with the people one has written to), then goes offline.
    const writer = await connect(node1, dave.accessToken);
    const hello = messageId();
    expect(await writer.send({ id: hello, envelopes: [{ to: bob.deviceId, body: body(hello) }] })).toMatchObject({
      ok: true,
    });
    await waitFor(() => idsOf(b).has(hello), 5000, "dave's message");
    writer.close();
    expect(await b.watch([dave.userId])).toEqual({ ok: true });
    const daveState = () => b.presence.filter((p) => p.userId === dave.userId).at(-1);
    await waitFor(() => daveState()?.online === false, 5000, 'dave offline');
    const daveDevice = await connect(node1, dave.accessToken);
    await waitFor(() => daveState()?.online === true, 10_000, 'dave online seen from the other node');
    daveDevice.close();
  });

  it('answers sends and presence watches while Redis is silent (its process stopped), and delivers the sends across nodes once it answers', async () => {
    if (!redis?.pause || !redis.resume) return;
    const a = await connect(node1, alice.accessToken);
    const b = await connect(node2, bob.accessToken);
    const before = messageId();
    expect(await a.send({ id: before, envelopes: [{ to: bob.deviceId, body: body(before) }] })).toMatchObject({
      ok: true,
    });
    await waitFor(() => idsOf(b).has(before), 5000, 'delivery before the silence');

    // Redis keeps its connections and answers nothing: every send would wait on its rate limit for good.
    const sent: string[] = [];
    redis.pause();
    try {
      for (let i = 0; i < 3; i++) {
        const id = messageId();
        expect(await a.send({ id, envelopes: [{ to: bob.deviceId, body: body(id) }] })).toMatchObject({ ok: true });
        sent.push(id);
      }
      expect(sent.filter((id) => idsOf(b).has(id))).toEqual([]); // nothing crossed to the other node meanwhile
      // Presence lives in Redis: a watch fails, as while Redis is away, instead of waiting for good.
      expect(await b.watch([alice.userId])).toMatchObject({ ok: false, error: { code: 'internal' } });
    } finally {
      redis.resume();
    }
    await waitFor(() => sent.every((id) => idsOf(b).has(id)), 10_000, 'the messages sent while Redis was silent');
    a.close();
    b.close();
  });

  it(
    'drains 1,000 messages queued on one node for a device that connects to the other, then answers both ways',
    async () => {
      const { queueMs, drainMs } = await drainQueuedMailbox(node1.url, node2.url);
      console.info(`[multinode] queued ${QUEUED} messages in ${queueMs} ms, drained them in ${drainMs} ms`);
    },
    DRAIN_TIMEOUT_MS + 60_000,
  );
});
