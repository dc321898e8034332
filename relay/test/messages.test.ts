// The `messages` event: the mailbox in seq order and in acknowledged batches on connect, then live; delete on
// ack; redelivery of what was not acknowledged; expiry.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, messageId, signUp, sleep, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

/** The relay's clock runs with real time, shifted by this offset (the expiry test moves it forward). */
let offset = 0;
let t: TestRelay;
let alice: TestAccount;
let sender: TestDevice;
beforeAll(async () => {
  t = await startRelay({ SEND_RATE_BURST: '10000' }, { now: () => Date.now() + offset });
  alice = await signUp(t.url);
  sender = await connectDevice(t.url, alice.accessToken);
});
afterAll(async () => {
  sender.close();
  await t.close();
});

async function sendMany(to: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => messageId());
  for (const id of ids) {
    const ack = await sender.send({ id, envelopes: [{ to, body: randomBytes(32) }] });
    if (!ack.ok) throw new Error(`send failed: ${ack.error.code}`);
  }
  return ids;
}

describe('messages on connect', () => {
  it('delivers the whole mailbox in order, in batches of at most 100, each after the previous ack', async () => {
    const bob = await signUp(t.url);
    const ids = await sendMany(bob.deviceId, 230);
    const device = await connectDevice(t.url, bob.accessToken, { autoAck: false });
    await waitFor(() => device.batches.length === 1, 5000, 'the first batch');
    await sleep(150);
    expect(device.batches).toHaveLength(1); // nothing more before the ack
    expect(device.batches[0]).toHaveLength(100);
    while (device.messages.length < 230) {
      const acked = device.batches.length;
      device.pendingAcks.shift()?.();
      await waitFor(() => device.batches.length > acked, 5000, 'the next batch');
    }
    device.pendingAcks.shift()?.();
    expect(device.batches.map((b) => b.length)).toEqual([100, 100, 30]);
    expect(device.messages.map((m) => m.id)).toEqual(ids);
    const seqs = device.messages.map((m) => m.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    await waitForEmptyMailbox(bob.deviceId);
    device.close();
  });

  it('deletes acknowledged entries: a reconnect gets nothing', async () => {
    const carol = await signUp(t.url);
    await sendMany(carol.deviceId, 3);
    const first = await connectDevice(t.url, carol.accessToken);
    await first.waitForMessages(3);
    first.close();
    await waitForEmptyMailbox(carol.deviceId);
    const again = await connectDevice(t.url, carol.accessToken);
    await sleep(200);
    expect(again.messages).toEqual([]);
    again.close();
  });

  it('delivers unacknowledged entries again on the next connection', async () => {
    const dave = await signUp(t.url);
    const ids = await sendMany(dave.deviceId, 2);
    const first = await connectDevice(t.url, dave.accessToken, { autoAck: false });
    await first.waitForMessages(2);
    first.close();
    const second = await connectDevice(t.url, dave.accessToken);
    expect((await second.waitForMessages(2)).map((m) => m.id)).toEqual(ids);
    second.close();
  });

  it('sends live messages after the stored ones, in order', async () => {
    const erin = await signUp(t.url);
    const stored = await sendMany(erin.deviceId, 120);
    const device = await connectDevice(t.url, erin.accessToken, { autoAck: false });
    await waitFor(() => device.batches.length === 1, 5000, 'the first batch');
    const live = await sendMany(erin.deviceId, 3); // committed while the mailbox is still being sent
    for (let i = 0; i < 10 && device.messages.length < 123; i++) {
      device.pendingAcks.shift()?.();
      await sleep(50);
    }
    await device.waitForMessages(123);
    expect(device.messages.map((m) => m.id)).toEqual([...stored, ...live]);
    device.close();
  });

  it('pushes live messages to a connected device as they are committed', async () => {
    const frank = await signUp(t.url);
    const device = await connectDevice(t.url, frank.accessToken);
    await sleep(50);
    const ids = await sendMany(frank.deviceId, 3);
    expect((await device.waitForMessages(3)).map((m) => m.id)).toEqual(ids);
    await waitForEmptyMailbox(frank.deviceId);
    device.close();
  });
});

describe('mailbox expiry', () => {
  it('sweeps entries older than MAILBOX_TTL_DAYS', async () => {
    const gina = await signUp(t.url);
    await sendMany(gina.deviceId, 2);
    offset += 29 * 24 * 3600 * 1000;
    await t.relay.sweep();
    expect(await t.relay.store.countMailbox(gina.deviceId)).toBe(2);
    offset += 2 * 24 * 3600 * 1000;
    await t.relay.sweep();
    expect(await t.relay.store.countMailbox(gina.deviceId)).toBe(0);
  });
});

async function waitForEmptyMailbox(deviceId: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((await t.relay.store.countMailbox(deviceId)) > 0) {
    if (Date.now() > deadline) throw new Error('mailbox not emptied');
    await sleep(10);
  }
}
