// Quotas on the real relay: devices per account, mailbox entries and bytes per device (a send over the cap is
// refused for that device alone, and the ack says for which), and group fan-out only to devices with keys.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, messageId, signIn, signUp, startRelay, uploadKeys } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

describe('the device cap', () => {
  let t: TestRelay;
  beforeAll(async () => {
    t = await startRelay({ DEVICES_PER_ACCOUNT: '3' });
  });
  afterAll(() => t.close());

  it('refuses a sign-in that would add one device too many with device_limit, and removes no device', async () => {
    const alice = await signUp(t.url);
    const second = await signIn(t.url, alice);
    await signIn(t.url, alice);
    expect(await t.relay.store.countDevices(alice.userId)).toBe(3);
    const refused = await api(t.url, 'POST', '/api/sessions', {
      body: { username: alice.username, authKey: alice.authKey },
    });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: { code: 'device_limit' } });
    expect(await t.relay.store.countDevices(alice.userId)).toBe(3);
    // Every existing device still signs in, the oldest included.
    for (const deviceId of [alice.deviceId, second.deviceId]) {
      expect((await signIn(t.url, alice, deviceId)).deviceId).toBe(deviceId);
    }
  });
});

describe('the mailbox cap', () => {
  let t: TestRelay;
  let alice: TestAccount;
  let sender: TestDevice;
  beforeAll(async () => {
    t = await startRelay({ MAILBOX_MAX_ENTRIES: '3', MAILBOX_MAX_BYTES: String(64 * 1024 + 1000) });
    alice = await signUp(t.url);
    sender = await connectDevice(t.url, alice.accessToken);
  });
  afterAll(async () => {
    sender.close();
    await t.close();
  });
  const stored = (deviceId: string) => t.relay.store.countMailbox(deviceId);

  it('refuses a send for the device whose mailbox holds the most entries, stores it for the others, and says so', async () => {
    const [bob, carol] = await Promise.all([signUp(t.url), signUp(t.url)]);
    for (let i = 0; i < 3; i++) {
      expect(await sender.send({ id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(10) }] })).toEqual({
        ok: true,
        ts: expect.any(Number),
      });
    }
    const carolBefore = await stored(carol.deviceId);
    const partial = await sender.send({
      id: messageId(),
      envelopes: [
        { to: bob.deviceId, body: randomBytes(10) },
        { to: carol.deviceId, body: randomBytes(10) },
      ],
    });
    expect(partial).toEqual({
      ok: true,
      ts: expect.any(Number),
      refused: [{ to: bob.deviceId, code: 'mailbox_full' }],
    });
    expect(await stored(bob.deviceId)).toBe(3);
    expect(await stored(carol.deviceId)).toBe(carolBefore + 1);
    const refused = await sender.send({ id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(10) }] });
    expect(refused).toMatchObject({ ok: false, error: { code: 'mailbox_full' } });
    expect(await stored(bob.deviceId)).toBe(3);
  });

  it('refuses a send that would pass the byte cap, and takes sends again once the device has read its mailbox', async () => {
    const dave = await signUp(t.url);
    const big = await sender.send({
      id: messageId(),
      envelopes: [{ to: dave.deviceId, body: randomBytes(64 * 1024) }],
    });
    expect(big.ok).toBe(true);
    const id = messageId();
    const over = await sender.send({ id, envelopes: [{ to: dave.deviceId, body: randomBytes(1001) }] });
    expect(over).toMatchObject({ ok: false, error: { code: 'mailbox_full' } });
    const device = await connectDevice(t.url, dave.accessToken);
    await device.waitForMessages(1);
    await expect.poll(() => stored(dave.deviceId)).toBe(0);
    device.close();
    // Nothing was stored for the refused send, not even its id: the same id goes through now.
    expect(await sender.send({ id, envelopes: [{ to: dave.deviceId, body: randomBytes(1001) }] })).toMatchObject({
      ok: true,
    });
  });
});

describe('group fan-out', () => {
  let t: TestRelay;
  beforeAll(async () => {
    t = await startRelay();
  });
  afterAll(() => t.close());

  it('reaches only the devices that uploaded keys: 8 devices signed in without keys store nothing', async () => {
    const [alice, bob] = await Promise.all([signUp(t.url), signUp(t.url)]);
    const keyless = [];
    for (let i = 0; i < 8; i++) keyless.push(await signIn(t.url, bob));
    const keyed = await signIn(t.url, bob);
    await uploadKeys(t.url, bob, keyed);
    const group = await api(t.url, 'POST', '/api/groups', {
      token: alice.accessToken,
      body: { members: [bob.userId] },
    });
    const sender = await connectDevice(t.url, alice.accessToken);
    const ack = await sender.send({ id: messageId(), group: group.body.groupId as string, body: randomBytes(100) });
    sender.close();
    expect(ack.ok).toBe(true);
    expect(await t.relay.store.countMailbox(bob.deviceId)).toBe(1);
    expect(await t.relay.store.countMailbox(keyed.deviceId)).toBe(1);
    for (const device of keyless) expect(await t.relay.store.countMailbox(device.deviceId)).toBe(0);
  });
});
