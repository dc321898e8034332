// GET /api/users/:userId/bundle names the account's devices that have no keys yet in `pendingDevices` (issue #16):
// with `devices`, every device the key transparency log lists is accounted for, so a client can tell a device the
// relay hides from one that is not ready.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleAnswerSchema } from '../src/protocol.js';
import { api, signIn, signUp, startRelay, uploadKeys } from './helpers.js';
import type { TestRelay } from './helpers.js';

let t: TestRelay;
beforeAll(async () => {
  t = await startRelay();
});
afterAll(async () => {
  await t.close();
});

async function bundleOf(userId: string, token: string) {
  const res = await api(t.url, 'GET', `/api/users/${userId}/bundle?devices=`, { token });
  expect(res.status).toBe(200);
  return bundleAnswerSchema.parse(res.body);
}

describe('a bundle and the devices without keys', () => {
  it('names no pending device when every device has published keys', async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    const bundle = await bundleOf(alice.userId, bob.accessToken);
    expect(bundle.devices.map((d) => d.deviceId)).toEqual([alice.deviceId]);
    expect(bundle.pendingDevices).toEqual([]);
  });

  it('names a signed-in device that has not uploaded its prekeys as pending, and serves it once it has', async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    const second = await signIn(t.url, alice);
    const before = await bundleOf(alice.userId, bob.accessToken);
    expect(before.devices.map((d) => d.deviceId)).toEqual([alice.deviceId]);
    expect(before.pendingDevices).toEqual([second.deviceId]);
    await uploadKeys(t.url, alice, second);
    const after = await bundleOf(alice.userId, bob.accessToken);
    expect(after.devices.map((d) => d.deviceId)).toEqual([alice.deviceId, second.deviceId]);
    expect(after.pendingDevices).toEqual([]);
  });

  it("never names another account's device", async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    await signIn(t.url, bob);
    expect((await bundleOf(alice.userId, bob.accessToken)).pendingDevices).toEqual([]);
  });

  it('needs an access token like every bundle', async () => {
    const alice = await signUp(t.url);
    const res = await api(t.url, 'GET', `/api/users/${alice.userId}/bundle?devices=`);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
  });
});
