// The `presence:watch` event and the `presence` updates that follow it. A user's presence is shared only with the
// users they have written to: a watcher sees everyone else as {online: false, lastSeen: null}, with no changes.
// That nothing came is proven by a positive signal sent after it: `pinger`, who has written to the watcher and is
// on every watch list, connects and disconnects, and its updates arrive after anything the relay sent before.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, messageId, signUp, sleep, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

let t: TestRelay;
let watcherAccount: TestAccount;
let watcher: TestDevice;
let pinger: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  watcherAccount = await signUp(t.url);
  watcher = await connectDevice(t.url, watcherAccount.accessToken);
  pinger = await signUp(t.url);
  const device = await connectDevice(t.url, pinger.accessToken);
  await writeTo(device, watcherAccount);
  device.close();
});
afterAll(async () => {
  watcher.close();
  await t.close();
});

const updatesFor = (userId: string) => watcher.presence.filter((p) => p.userId === userId);

/** `from` writes a (stored) direct message to `to`'s device: `to` may see `from`'s presence from then on. */
async function writeTo(from: TestDevice, to: TestAccount): Promise<void> {
  const ack = await from.send({ id: messageId(), envelopes: [{ to: to.deviceId, body: randomBytes(16) }] });
  expect(ack).toMatchObject({ ok: true });
}

/** Replaces the watch list with `userIds` and pinger, and waits for pinger's state. */
async function watch(userIds: string[]): Promise<void> {
  const before = updatesFor(pinger.userId).length;
  expect(await watcher.watch([...userIds, pinger.userId])).toEqual({ ok: true });
  await waitFor(() => updatesFor(pinger.userId).length > before, 5000, "pinger's state");
}

/** The positive signal: pinger comes online and goes offline; both updates have reached the watcher after this. */
async function ping(): Promise<void> {
  const before = updatesFor(pinger.userId).length;
  const device = await connectDevice(t.url, pinger.accessToken);
  await waitFor(() => updatesFor(pinger.userId).length === before + 1, 5000, 'pinger online');
  device.close();
  await waitFor(() => updatesFor(pinger.userId).length === before + 2, 5000, 'pinger offline');
}

describe('presence:watch', () => {
  it('acks, then sends the current state, then every change of a user who shares presence and has written to the watcher', async () => {
    const bob = await signUp(t.url);
    const ack = await watcher.watch([bob.userId]);
    expect(ack).toEqual({ ok: true });
    await waitFor(() => updatesFor(bob.userId).length === 1, 5000, 'the initial state');
    expect(updatesFor(bob.userId)[0]).toEqual({ userId: bob.userId, online: false, lastSeen: null });

    const device = await connectDevice(t.url, bob.accessToken);
    await writeTo(device, watcherAccount); // from now on the watcher may see bob: his current state comes
    await waitFor(() => updatesFor(bob.userId).length === 2, 5000, 'online');
    expect(updatesFor(bob.userId)[1]).toEqual({ userId: bob.userId, online: true, lastSeen: expect.any(Number) });

    device.close();
    await waitFor(() => updatesFor(bob.userId).length === 3, 5000, 'offline');
    const offline = updatesFor(bob.userId)[2];
    expect(offline).toEqual({ userId: bob.userId, online: false, lastSeen: expect.any(Number) });
    expect(offline?.lastSeen).toBeGreaterThanOrEqual(updatesFor(bob.userId)[1]?.lastSeen ?? Infinity);
  });

  it('sends a user who connects with two devices online once, and offline only when both are gone', async () => {
    const carol = await signUp(t.url);
    await watcher.watch([carol.userId]);
    await waitFor(() => updatesFor(carol.userId).length === 1);
    const one = await connectDevice(t.url, carol.accessToken);
    await writeTo(one, watcherAccount);
    await waitFor(() => updatesFor(carol.userId).length === 2);
    const two = await connectDevice(t.url, carol.accessToken);
    one.close();
    two.close();
    await waitFor(() => updatesFor(carol.userId).length === 3);
    expect(updatesFor(carol.userId).map((u) => u.online)).toEqual([false, true, false]);
  });

  it('never reveals a user who does not share presence: offline, lastSeen null, no changes', async () => {
    const dave = await signUp(t.url);
    await api(t.url, 'PUT', '/api/settings', { token: dave.accessToken, body: { sharePresence: false } });
    const device = await connectDevice(t.url, dave.accessToken);
    await writeTo(device, watcherAccount);
    await watch([dave.userId]);
    await waitFor(() => updatesFor(dave.userId).length === 1);
    expect(updatesFor(dave.userId)[0]).toEqual({ userId: dave.userId, online: false, lastSeen: null });
    device.close();
    const again = await connectDevice(t.url, dave.accessToken);
    await ping();
    expect(updatesFor(dave.userId)).toHaveLength(1);

    await api(t.url, 'PUT', '/api/settings', { token: dave.accessToken, body: { sharePresence: true } });
    await waitFor(() => updatesFor(dave.userId).length === 2, 5000, 'the state after sharing is switched on');
    expect(updatesFor(dave.userId)[1]).toMatchObject({ online: true });
    await api(t.url, 'PUT', '/api/settings', { token: dave.accessToken, body: { sharePresence: false } });
    await waitFor(() => updatesFor(dave.userId).length === 3, 5000, 'the hidden state');
    expect(updatesFor(dave.userId)[2]).toEqual({ userId: dave.userId, online: false, lastSeen: null });
    again.close();
  });

  it('replaces the watch list: users no longer watched send nothing', async () => {
    const erin = await signUp(t.url);
    const frank = await signUp(t.url);
    const writer = await connectDevice(t.url, erin.accessToken);
    await writeTo(writer, watcherAccount);
    writer.close();
    await watch([erin.userId]);
    await watch([frank.userId]);
    await waitFor(() => updatesFor(frank.userId).length === 1);
    await ping(); // erin's own disconnect above has reached the watcher, if it was going to
    const before = updatesFor(erin.userId).length;
    const device = await connectDevice(t.url, erin.accessToken);
    await ping();
    expect(updatesFor(erin.userId)).toHaveLength(before);
    device.close();
  });

  it('sends nothing for unknown user ids', async () => {
    const unknown = 'AAAAAAAAAAAAAAAAAAAAAA';
    await watch([unknown]);
    expect(updatesFor(unknown)).toEqual([]);
  });

  it('never reveals a user who has not written to the watcher: hidden, no changes, until they write', async () => {
    const stranger = await signUp(t.url);
    await watch([stranger.userId]);
    await waitFor(() => updatesFor(stranger.userId).length === 1);
    expect(updatesFor(stranger.userId)[0]).toEqual({ userId: stranger.userId, online: false, lastSeen: null });
    const device = await connectDevice(t.url, stranger.accessToken);
    await ping();
    expect(updatesFor(stranger.userId)).toHaveLength(1);

    await writeTo(device, watcherAccount);
    await waitFor(() => updatesFor(stranger.userId).length === 2, 5000, 'the state once the stranger wrote');
    expect(updatesFor(stranger.userId)[1]).toEqual({
      userId: stranger.userId,
      online: true,
      lastSeen: expect.any(Number),
    });
    device.close();
  });

  it('stores no last-seen time of a user who does not share presence', async () => {
    const quiet = await signUp(t.url);
    await api(t.url, 'PUT', '/api/settings', { token: quiet.accessToken, body: { sharePresence: false } });
    const device = await connectDevice(t.url, quiet.accessToken);
    device.close();
    await ping();
    // The pinger's last-seen time is stored after quiet's would have been (one write queue, in order).
    const pingerSeen = async () => (await t.relay.store.getPresence([pinger.userId]))[0]?.lastSeen ?? 0;
    const since = updatesFor(pinger.userId).at(-1)?.lastSeen ?? Infinity;
    const deadline = Date.now() + 5000;
    while ((await pingerSeen()) < since) {
      if (Date.now() > deadline) throw new Error("timed out waiting for the pinger's last-seen time to be stored");
      await sleep(10);
    }
    expect(await t.relay.store.getPresence([quiet.userId])).toEqual([
      { userId: quiet.userId, sharePresence: false, lastSeen: null },
    ]);
  });

  it('answers invalid_input for more than 200 ids or a malformed list', async () => {
    const ids = Array.from({ length: 201 }, () => watcherAccount.userId);
    expect(await watcher.watch(ids)).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    const raw = (payload: unknown) => watcher.socket.timeout(5000).emitWithAck('presence:watch', payload);
    for (const payload of [undefined, { userIds: 'x' }, { userIds: ['short'] }, { userIds: [], extra: 1 }]) {
      expect(await raw(payload)).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    }
  });
});
