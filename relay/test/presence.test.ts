// The `presence:watch` event and the `presence` updates that follow it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

let t: TestRelay;
let watcherAccount: TestAccount;
let watcher: TestDevice;
beforeAll(async () => {
  t = await startRelay();
  watcherAccount = await signUp(t.url);
  watcher = await connectDevice(t.url, watcherAccount.accessToken);
});
afterAll(async () => {
  watcher.close();
  await t.close();
});

const updatesFor = (userId: string) => watcher.presence.filter((p) => p.userId === userId);

describe('presence:watch', () => {
  it('acks, then sends the current state, then every change of a user who shares presence', async () => {
    const bob = await signUp(t.url);
    const ack = await watcher.watch([bob.userId]);
    expect(ack).toEqual({ ok: true });
    await waitFor(() => updatesFor(bob.userId).length === 1, 5000, 'the initial state');
    expect(updatesFor(bob.userId)[0]).toEqual({ userId: bob.userId, online: false, lastSeen: null });

    const device = await connectDevice(t.url, bob.accessToken);
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
    const two = await connectDevice(t.url, carol.accessToken);
    await waitFor(() => updatesFor(carol.userId).length === 2);
    one.close();
    two.close();
    await waitFor(() => updatesFor(carol.userId).length === 3);
    expect(updatesFor(carol.userId).map((u) => u.online)).toEqual([false, true, false]);
  });

  it('never reveals a user who does not share presence: offline, lastSeen null, no changes', async () => {
    const dave = await signUp(t.url);
    await api(t.url, 'PUT', '/api/settings', { token: dave.accessToken, body: { sharePresence: false } });
    const device = await connectDevice(t.url, dave.accessToken);
    await watcher.watch([dave.userId]);
    await waitFor(() => updatesFor(dave.userId).length === 1);
    expect(updatesFor(dave.userId)[0]).toEqual({ userId: dave.userId, online: false, lastSeen: null });
    device.close();
    const again = await connectDevice(t.url, dave.accessToken);
    await new Promise((r) => setTimeout(r, 200));
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
    await watcher.watch([erin.userId]);
    await watcher.watch([frank.userId]);
    await waitFor(() => updatesFor(frank.userId).length === 1);
    const before = updatesFor(erin.userId).length;
    const device = await connectDevice(t.url, erin.accessToken);
    await new Promise((r) => setTimeout(r, 200));
    expect(updatesFor(erin.userId)).toHaveLength(before);
    device.close();
  });

  it('sends nothing for unknown user ids', async () => {
    const unknown = 'AAAAAAAAAAAAAAAAAAAAAA';
    expect(await watcher.watch([unknown])).toEqual({ ok: true });
    await new Promise((r) => setTimeout(r, 100));
    expect(updatesFor(unknown)).toEqual([]);
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
