// Hostile socket clients: malformed events, missing acks, reserved event names, oversized frames and garbage
// bytes get the right answer or lose their own connection; nothing is stored and the relay keeps serving others.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, messageId, signInWithKeys, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';
import { databaseDigest, rowsWithMessageId, settledDigest } from './security/fuzz-support.js';

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
let bystander: TestDevice;
beforeAll(async () => {
  t = await startRelay();
  [alice, bob] = await Promise.all([signUp(t.url), signUp(t.url)]);
  bystander = await connectDevice(t.url, bob.accessToken);
});
afterAll(async () => {
  bystander.close();
  await t.close();
});

/** The relay still serves: a fresh send from alice reaches bob's connected device. */
async function stillServing(): Promise<void> {
  const device = await connectDevice(t.url, alice.accessToken);
  const id = messageId();
  const ack = await device.send({ id, envelopes: [{ to: bob.deviceId, body: randomBytes(8) }] });
  expect(ack.ok).toBe(true);
  await waitFor(() => bystander.messages.some((m) => m.id === id), 5000, 'the bystander delivery');
  device.close();
}

describe('a hostile socket client', () => {
  it('gets invalid_input for each of 100 malformed events in a burst, and nothing is stored', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    const before = await settledDigest(t, [bob.deviceId]);
    const payloads: unknown[] = [
      null,
      1,
      'x',
      [],
      {},
      { id: 1 },
      { id: messageId(), envelopes: 'x' },
      { id: messageId(), group: 5 },
    ];
    const acks = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        device.socket.timeout(10_000).emitWithAck('message:send', payloads[i % payloads.length]),
      ),
    );
    for (const ack of acks) expect(ack).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    expect(databaseDigest(t.dataDir)).toBe(before);
    expect(device.socket.connected).toBe(true);
    device.close();
    await stillServing();
  });

  it('survives events without an ack callback, or with extra arguments', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    device.socket.emit('message:send', { nonsense: true });
    device.socket.emit('message:send');
    device.socket.emit('presence:watch', 'x', 'y', 3);
    const withExtra = await device.socket
      .timeout(5000)
      .emitWithAck(
        'message:send',
        { id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(4) }] },
        'extra',
      );
    expect(withExtra).toMatchObject({ ok: true });
    // A later round trip on the same connection: the relay handled everything before it and kept the connection.
    expect(await device.socket.timeout(5000).emitWithAck('presence:watch', { userIds: [] })).toMatchObject({
      ok: true,
    });
    expect(device.socket.connected).toBe(true);
    device.close();
    await stillServing();
  });

  it('gets invalid_input for an unknown event with an ack, and silence without one', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    expect(await device.socket.timeout(5000).emitWithAck('admin:drop-tables', {})).toMatchObject({
      ok: false,
      error: { code: 'invalid_input' },
    });
    device.socket.emit('whatever', 1, 2, 3);
    expect(await device.socket.timeout(5000).emitWithAck('presence:watch', { userIds: [] })).toMatchObject({
      ok: true,
    });
    expect(device.socket.connected).toBe(true);
    device.close();
  });

  it('loses its own connection for reserved event names ("error", "disconnect"), and the relay lives on', async () => {
    for (const name of ['error', 'disconnect', 'disconnecting']) {
      const device = await connectDevice(t.url, alice.accessToken);
      // socket.io-client refuses to emit reserved names itself: write the packet directly
      (device.socket as unknown as { packet(p: unknown): void }).packet({ type: 2, nsp: '/', data: [name, {}] });
      await waitFor(() => !device.socket.connected, 5000, `the ${name} sender to be dropped`);
    }
    await stillServing();
  });

  it('loses its own connection for a frame over the limit, and the relay lives on', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    const id = messageId();
    device.socket.emit('message:send', { id, envelopes: [{ to: bob.deviceId, body: randomBytes(300 * 1024) }] });
    await waitFor(() => !device.socket.connected, 5000, 'the oversized sender to be dropped');
    // A later send is committed and delivered (commits keep order): the oversized one, had it been accepted, would
    // have left its idempotency record by then, even though bob's online device acknowledges what it gets.
    await stillServing();
    expect(rowsWithMessageId(t.dataDir, id)).toBe(0);
  });

  it('loses its own connection for bytes that are not msgpack, and the relay lives on', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    const engine = (device.socket.io as unknown as { engine: { write(data: unknown): void } }).engine;
    engine.write(Buffer.from([0xc1, 0xff, 0x00, 0x13]));
    await waitFor(() => !device.socket.connected, 5000, 'the garbage sender to be dropped');
    const nil = await connectDevice(t.url, alice.accessToken);
    (nil.socket.io as unknown as { engine: { write(data: unknown): void } }).engine.write(Buffer.from([0xc0]));
    await waitFor(() => !nil.socket.connected, 5000, 'the nil sender to be dropped');
    const deep = await connectDevice(t.url, alice.accessToken); // nesting deep enough to overflow the stack
    (deep.socket.io as unknown as { engine: { write(data: unknown): void } }).engine.write(Buffer.alloc(200_000, 0x91));
    await waitFor(() => !deep.socket.connected, 5000, 'the deeply nested sender to be dropped');
    await stillServing();
  });

  it('gets rate_limited once its burst is spent, malformed events included', async () => {
    const limited = await startRelay({ SEND_RATE_BURST: '10', SEND_RATE_PER_SEC: '1' });
    try {
      const a = await signUp(limited.url);
      const device = await connectDevice(limited.url, a.accessToken);
      const acks = await Promise.all(
        Array.from({ length: 15 }, () => device.socket.timeout(5000).emitWithAck('message:send', { bad: true })),
      );
      const codes = acks.map((ack) => (ack as { error: { code: string } }).error.code);
      expect(codes.filter((c) => c === 'invalid_input')).toHaveLength(10);
      expect(codes.filter((c) => c === 'rate_limited')).toHaveLength(5);
      device.close();
    } finally {
      await limited.close();
    }
  });

  it('is refused once its account’s sends reached their budget of devices: group sends, typing apart, and sends a block dropped count', async () => {
    // One token every 1,000 seconds, three in the bucket: a group send to five devices passes and leaves the account
    // owing two, so the next send of that account waits 3,000 seconds. No step below depends on how fast it runs.
    const limited = await startRelay({ SEND_DELIVERIES_BURST: '3', SEND_DELIVERIES_PER_SEC: '0.001' });
    const devices: TestDevice[] = [];
    try {
      const accounts = await Promise.all(Array.from({ length: 6 }, () => signUp(limited.url)));
      const [mallory, trudy, ...others] = accounts as [TestAccount, TestAccount, ...TestAccount[]];
      const created = await api(limited.url, 'POST', '/api/groups', {
        token: mallory.accessToken,
        body: { members: [trudy, ...others].map((a) => a.userId) },
      });
      const groupId = (created.body as { groupId: string }).groupId;
      const [m, tr, o] = await Promise.all(
        [mallory, trudy, others[0] as TestAccount].map((a) => connectDevice(limited.url, a.accessToken)),
      );
      devices.push(m as TestDevice, tr as TestDevice, o as TestDevice);
      const member = (others[1] as TestAccount).deviceId;
      const groupSend = (d: TestDevice, ephemeral = false) =>
        d.send({ id: messageId(), group: groupId, body: randomBytes(16), ...(ephemeral ? { ephemeral } : {}) });

      // Stored: the first reaches five devices; the second is refused and stores nothing.
      expect((await groupSend(m as TestDevice)).ok).toBe(true);
      expect(await limited.relay.store.countMailbox(member)).toBe(1);
      expect(await groupSend(m as TestDevice)).toMatchObject({ ok: false, error: { code: 'rate_limited' } });
      expect(await limited.relay.store.countMailbox(member)).toBe(1);
      // Typing and receipts (ephemeral) to the group count its devices too, in a bucket of their own: a busy
      // group's receipts never hold back the account's messages.
      expect((await groupSend(tr as TestDevice, true)).ok).toBe(true);
      expect(await groupSend(tr as TestDevice, true)).toMatchObject({ ok: false, error: { code: 'rate_limited' } });
      expect((await groupSend(tr as TestDevice)).ok).toBe(true);
      expect(await groupSend(tr as TestDevice)).toMatchObject({ ok: false, error: { code: 'rate_limited' } });
      expect(await limited.relay.store.countMailbox(member)).toBe(2);
      // Another account's budget is its own.
      const direct = await (o as TestDevice).send({
        id: messageId(),
        envelopes: [{ to: member, body: randomBytes(16) }],
      });
      expect(direct.ok).toBe(true);
      expect(await limited.relay.store.countMailbox(member)).toBe(3);
      // A send to someone who blocks the sender costs what it would cost if stored: the limit does not tell. One
      // send to the blocker's six devices leaves the blocked account owing three.
      const [blocker, blocked] = others.slice(2) as [TestAccount, TestAccount];
      const put = await api(limited.url, 'PUT', `/api/blocks/${blocked.userId}`, { token: blocker.accessToken });
      expect(put.status).toBe(204);
      const more = await Promise.all(Array.from({ length: 5 }, () => signInWithKeys(limited.url, blocker)));
      const blockerDevices = [blocker.deviceId, ...more.map((s) => s.deviceId)];
      const held = await Promise.all(blockerDevices.map((d) => limited.relay.store.countMailbox(d)));
      const b = await connectDevice(limited.url, blocked.accessToken);
      devices.push(b);
      const toBlocker = (to: string[]) =>
        b.send({ id: messageId(), envelopes: to.map((d) => ({ to: d, body: randomBytes(16) })) });
      expect((await toBlocker(blockerDevices)).ok).toBe(true);
      expect(await toBlocker([blocker.deviceId])).toMatchObject({ ok: false, error: { code: 'rate_limited' } });
      expect(await Promise.all(blockerDevices.map((d) => limited.relay.store.countMailbox(d)))).toEqual(held);
    } finally {
      for (const d of devices) d.close();
      await limited.close();
    }
  });
});
