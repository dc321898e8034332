// Resending a used message id (`message:send` with an id the sending device already used): the relay answers it as a
// duplicate and nudges the devices that still hold the first send's entries to read their mailboxes again — only
// those. A resend that names other people's devices makes no one read anything. Reads are counted on the relay's
// own store, per device.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, messageId, signIn, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

let t: TestRelay;
const reads = new Map<string, number>();
const readsOf = (deviceId: string): number => reads.get(deviceId) ?? 0;
let mallory: TestAccount;
let attacker: TestDevice;
const victims: { account: TestAccount; device: TestDevice }[] = [];
let holder: { account: TestAccount; device: TestDevice };

beforeAll(async () => {
  t = await startRelay({ SEND_RATE_BURST: '1000' });
  const store = t.relay.store;
  const fetchMailbox = store.fetchMailbox.bind(store);
  store.fetchMailbox = (deviceId, afterSeq, limit, maxBytes) => {
    reads.set(deviceId, readsOf(deviceId) + 1);
    return fetchMailbox(deviceId, afterSeq, limit, maxBytes);
  };
  mallory = await signUp(t.url);
  attacker = await connectDevice(t.url, mallory.accessToken);
  for (let i = 0; i < 50; i++) {
    const account = await signUp(t.url);
    victims.push({ account, device: await connectDevice(t.url, account.accessToken) });
  }
  // A device that does not acknowledge: an entry sent to it stays stored (and in flight).
  const account = await signUp(t.url);
  holder = { account, device: await connectDevice(t.url, account.accessToken, { autoAck: false }) };
});
afterAll(async () => {
  attacker.close();
  for (const v of victims) v.device.close();
  holder.device.close();
  await t.close();
});

const body = () => randomBytes(32);

describe('message:send with a used id', () => {
  it("nudges only the devices that still hold the first send's entry, never the devices the resend names", async () => {
    // The first send goes to a second device of Mallory's own, offline: its entry stays stored.
    const spare = await signIn(t.url, mallory);
    const used = messageId();
    expect(await attacker.send({ id: used, envelopes: [{ to: spare.deviceId, body: body() }] })).toMatchObject({
      ok: true,
    });
    // A send whose entry the holder keeps unacknowledged: its resend must nudge the holder (the positive signal).
    const kept = messageId();
    expect(await attacker.send({ id: kept, envelopes: [{ to: holder.account.deviceId, body: body() }] })).toMatchObject(
      { ok: true },
    );
    await holder.device.waitForMessages(1);

    const victimIds = victims.map((v) => v.account.deviceId);
    const before = victimIds.reduce((sum, d) => sum + readsOf(d), 0);
    const holderBefore = readsOf(holder.account.deviceId);
    // 200 resends naming 50 foreign devices (the issue measured 10,001 mailbox reads from this).
    for (let i = 0; i < 200; i++) {
      const envelopes = victimIds.map((to) => ({ to, body: body() }));
      expect(await attacker.send({ id: used, envelopes })).toMatchObject({ ok: true });
    }
    expect(await attacker.send({ id: kept, envelopes: [{ to: victimIds[0], body: body() }] })).toMatchObject({
      ok: true,
    });
    await waitFor(() => readsOf(holder.account.deviceId) > holderBefore, 5000, 'the holder to be nudged');

    const after = victimIds.reduce((sum, d) => sum + readsOf(d), 0);
    expect(after - before, 'mailbox reads of the devices the resends named').toBe(0);
    for (const v of victims) expect(v.device.messages).toEqual([]);
  });
});
