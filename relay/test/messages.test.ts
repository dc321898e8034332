// The `messages` event: the mailbox in seq order and in acknowledged batches on connect, then live; delete on
// ack; redelivery of what was not acknowledged; expiry. Nothing sleeps: that something did not come is proven by
// a marker sent after it (an ephemeral message is pushed at once, a stored one after the mailbox), and a connection
// is live once its first mailbox read (counted on the relay's store) has finished.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, messageId, signUp, sleep, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

/** The relay's clock runs with real time, shifted by this offset (the expiry test moves it forward). */
let offset = 0;
let t: TestRelay;
let alice: TestAccount;
let sender: TestDevice;
/** Finished mailbox reads per device. */
const reads = new Map<string, number>();
/** Counts each device's finished mailbox reads on the relay's store into `counts`. */
function countReads(relay: TestRelay, counts: Map<string, number>): void {
  const store = relay.relay.store;
  const fetchMailbox = store.fetchMailbox.bind(store);
  store.fetchMailbox = async (deviceId, afterSeq, limit, maxBytes) => {
    const entries = await fetchMailbox(deviceId, afterSeq, limit, maxBytes);
    counts.set(deviceId, (counts.get(deviceId) ?? 0) + 1);
    return entries;
  };
}
beforeAll(async () => {
  t = await startRelay({ SEND_RATE_BURST: '10000' }, { now: () => Date.now() + offset });
  countReads(t, reads);
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
    // Nothing more before the ack: an ephemeral marker, pushed at once, is the next thing to arrive.
    const marker = messageId();
    const ack = await sender.send({
      id: marker,
      ephemeral: true,
      envelopes: [{ to: bob.deviceId, body: randomBytes(4) }],
    });
    expect(ack.ok).toBe(true);
    await waitFor(() => device.batches.length === 2, 5000, 'the marker');
    expect(device.batches[1]?.map((m) => m.id)).toEqual([marker]);
    device.pendingAcks.splice(1, 1)[0]?.();
    device.batches.splice(1, 1);
    device.messages.splice(100, 1);
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
    const [marker] = await sendMany(carol.deviceId, 1); // stored after them: it comes, and nothing before it
    await again.waitForMessages(1);
    expect(again.messages.map((m) => m.id)).toEqual([marker]);
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
    while (device.messages.length < 123) {
      const seen = device.batches.length;
      device.pendingAcks.shift()?.();
      await waitFor(() => device.batches.length > seen, 5000, 'the next batch');
    }
    expect(device.messages.map((m) => m.id)).toEqual([...stored, ...live]);
    device.close();
  });

  it('pushes live messages to a connected device as they are committed', async () => {
    const frank = await signUp(t.url);
    const device = await connectDevice(t.url, frank.accessToken);
    await waitFor(() => (reads.get(frank.deviceId) ?? 0) > 0, 5000, 'the empty mailbox read: live from then on');
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

describe('the ack hold (ACK_HOLD_MS)', () => {
  it('deletes an acknowledged live entry with the next send, and before a mailbox read', async () => {
    const held = await startRelay({ ACK_HOLD_MS: '10000' });
    const heldReads = new Map<string, number>();
    countReads(held, heldReads);
    const store = held.relay.store;
    const devices: TestDevice[] = [];
    try {
      const [hana, ivan] = [await signUp(held.url), await signUp(held.url)];
      const from = await connectDevice(held.url, hana.accessToken);
      const to = await connectDevice(held.url, ivan.accessToken);
      devices.push(from, to);
      await waitFor(() => (heldReads.get(ivan.deviceId) ?? 0) > 0, 5000, 'the empty mailbox read: live from then on');
      const send = async (): Promise<string> => {
        const id = messageId();
        const ack = await from.send({ id, envelopes: [{ to: ivan.deviceId, body: randomBytes(32) }] });
        if (!ack.ok) throw new Error(`send failed: ${ack.error.code}`);
        return id;
      };
      const first = await send();
      await to.waitForMessages(1);
      await to.watch([hana.userId]); // answered after the ack that came before it on the same connection
      expect(await store.countMailbox(ivan.deviceId)).toBe(1); // acknowledged, waiting for a send
      const second = await send();
      expect((await store.fetchMailbox(ivan.deviceId, 0, 10, 1 << 20)).map((e) => e.id)).toEqual([second]);
      await to.waitForMessages(2);
      await to.watch([hana.userId]);
      to.close();
      // The next connection's mailbox read commits the held ack first: the second message does not come again.
      const readsBefore = heldReads.get(ivan.deviceId) ?? 0;
      const again = await connectDevice(held.url, ivan.accessToken);
      devices.push(again);
      await waitFor(() => (heldReads.get(ivan.deviceId) ?? 0) > readsBefore, 5000, 'the mailbox read');
      const marker = await send();
      await again.waitForMessages(1);
      expect(again.messages.map((m) => m.id)).toEqual([marker]);
      expect(first).not.toBe(second);
    } finally {
      for (const d of devices) d.close();
      await held.close();
    }
  });
});
