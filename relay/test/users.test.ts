// GET /api/users?query=<prefix> and GET /api/users/:userId/bundle[?devices=<id>,<id>].
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, kemPrekey, oneTimePrekeys, signedPrekey, signIn, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let viewer: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  viewer = await signUp(t.url, 'viewer');
});
afterAll(() => t.close());

const search = (query: string) => api(t.url, 'GET', `/api/users?query=${query}`, { token: viewer.accessToken });
const bundle = (userId: string, token = viewer.accessToken) =>
  api(t.url, 'GET', `/api/users/${userId}/bundle`, { token });

describe('GET /api/users', () => {
  it('finds users by lower-cased username prefix, at most 20, in name order', async () => {
    const made = await Promise.all(
      Array.from({ length: 22 }, (_, i) => signUp(t.url, `Pre_${String(i).padStart(2, '0')}`)),
    );
    const res = await search('PRE_');
    expect(res.status).toBe(200);
    expect(res.body.users).toHaveLength(20);
    expect(res.body.users[0]).toEqual({ userId: made[0]?.userId, username: 'pre_00' });
    const names = (res.body.users as { username: string }[]).map((u) => u.username);
    expect(names).toEqual([...names].sort());
  });

  it('takes the prefix literally: _ is no wildcard', async () => {
    await signUp(t.url, 'wild_card');
    await signUp(t.url, 'wildxcard');
    const res = await search('wild_');
    expect((res.body.users as { username: string }[]).map((u) => u.username)).toEqual(['wild_card']);
  });

  it('rejects a missing, empty, too long or non-username query', async () => {
    for (const path of [
      '/api/users',
      '/api/users?query=',
      `/api/users?query=${'a'.repeat(33)}`,
      '/api/users?query=a%25',
      '/api/users?query=a&query=b',
      '/api/users?query=a&x=1',
    ]) {
      const res = await api(t.url, 'GET', path, { token: viewer.accessToken });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'GET', '/api/users?query=pre')).status).toBe(401);
  });
});

describe('GET /api/users/:userId/bundle', () => {
  it('answers the identity key and, per device with a signed prekey, one one-time prekey', async () => {
    const bob = await signUp(t.url, 'Bob', { oneTimePrekeys: 2 });
    // A device without prekeys is not in `devices`; it is named in `pendingDevices` (issue #16).
    const keyless = await signIn(t.url, bob);
    const res = await bundle(bob.userId);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      userId: bob.userId,
      username: 'bob',
      identityKey: bob.identity.publicKey.toString('base64url'),
      devices: [
        {
          deviceId: bob.deviceId,
          signedPrekey: { keyId: 1, publicKey: expect.any(String), signature: expect.any(String) },
          oneTimePrekey: { keyId: 1, publicKey: expect.any(String) },
          kemPrekey: null,
        },
      ],
      pendingDevices: [keyless.deviceId],
    });
  });

  it('hands out a one-time KEM prekey once per fetch, then the last-resort one, exactly as the device signed them', async () => {
    const dan = await signUp(t.url, undefined, { oneTimePrekeys: 0 });
    const last = kemPrekey(dan.identity, 50, true);
    const oneTime = kemPrekey(dan.identity, 7);
    const put = await api(t.url, 'PUT', '/api/devices/self/prekeys', {
      token: dan.accessToken,
      body: { kemLastResortPrekey: last, kemOneTimePrekeys: [oneTime] },
    });
    expect(put.status).toBe(204);
    const first = (await bundle(dan.userId)).body.devices[0].kemPrekey;
    const second = (await bundle(dan.userId)).body.devices[0].kemPrekey;
    const third = (await bundle(dan.userId)).body.devices[0].kemPrekey;
    expect(first).toEqual(oneTime);
    expect(second).toEqual(last);
    expect(third).toEqual(last);
  });

  it('hands each one-time prekey out once, then null', async () => {
    const carol = await signUp(t.url, 'carol', { oneTimePrekeys: 2 });
    const keys = [];
    for (let i = 0; i < 3; i++) keys.push((await bundle(carol.userId)).body.devices[0].oneTimePrekey);
    expect(keys[0]).not.toBeNull();
    expect(keys[1]).not.toBeNull();
    expect(keys[0].publicKey).not.toBe(keys[1].publicKey);
    expect(keys[2]).toBeNull();
    expect(
      (await api(t.url, 'GET', '/api/devices/self/prekeys', { token: carol.accessToken })).body.oneTimePrekeys,
    ).toBe(0);
  });

  it('hands a one-time prekey fetched by 20 concurrent requests to exactly one of them', async () => {
    const dave = await signUp(t.url, 'dave', { oneTimePrekeys: 0 });
    await api(t.url, 'PUT', '/api/devices/self/prekeys', {
      token: dave.accessToken,
      body: { oneTimePrekeys: oneTimePrekeys(1, 77) },
    });
    const answers = await Promise.all(Array.from({ length: 20 }, () => bundle(dave.userId)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const handed = answers.map((a) => a.body.devices[0].oneTimePrekey).filter((k) => k !== null);
    expect(handed).toHaveLength(1);
    expect(handed[0].keyId).toBe(77);
  });

  it('with devices=, lists the devices and takes no one-time prekey, and is not rate limited', async () => {
    const erin = await signUp(t.url, 'erin', { oneTimePrekeys: 3 });
    // More than the bundle bucket's burst (30): a fetch that takes nothing drains nothing.
    for (let i = 0; i < 35; i++) {
      const res = await api(t.url, 'GET', `/api/users/${erin.userId}/bundle?devices=`, { token: viewer.accessToken });
      expect(res.status).toBe(200);
      expect(res.body.devices).toEqual([
        {
          deviceId: erin.deviceId,
          signedPrekey: expect.objectContaining({ keyId: 1 }),
          oneTimePrekey: null,
          kemPrekey: null,
        },
      ]);
    }
    const count = await api(t.url, 'GET', '/api/devices/self/prekeys', { token: erin.accessToken });
    expect(count.body.oneTimePrekeys).toBe(3);
  });

  it('with devices=<id>,<id>, takes a one-time prekey only for the devices listed', async () => {
    const fern = await signUp(t.url, 'fern', { oneTimePrekeys: 2 });
    const second = await signIn(t.url, fern);
    await api(t.url, 'PUT', '/api/devices/self/prekeys', {
      token: second.accessToken,
      body: { signedPrekey: signedPrekey(fern.identity), oneTimePrekeys: oneTimePrekeys(2, 10) },
    });
    const only = await api(t.url, 'GET', `/api/users/${fern.userId}/bundle?devices=${second.deviceId}`, {
      token: viewer.accessToken,
    });
    expect(only.status).toBe(200);
    expect(only.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual([fern.deviceId, second.deviceId]);
    expect(only.body.devices[0].oneTimePrekey).toBeNull();
    expect(only.body.devices[1].oneTimePrekey).toEqual({ keyId: 10, publicKey: expect.any(String) });
    const unknownToo = await api(
      t.url,
      'GET',
      `/api/users/${fern.userId}/bundle?devices=${fern.deviceId},${randomBytes(16).toString('base64url')}`,
      { token: viewer.accessToken },
    );
    expect(unknownToo.body.devices[0].oneTimePrekey).toEqual({ keyId: 1, publicKey: expect.any(String) });
    expect(unknownToo.body.devices[1].oneTimePrekey).toBeNull();
    const counts = await Promise.all(
      [fern.accessToken, second.accessToken].map(
        async (token) => (await api(t.url, 'GET', '/api/devices/self/prekeys', { token })).body.oneTimePrekeys,
      ),
    );
    expect(counts).toEqual([1, 1]);
  });

  it('rejects a malformed devices list, and other query parameters, with 400 invalid_input', async () => {
    const id = viewer.deviceId;
    for (const query of [
      'devices=not-an-id',
      `devices=${id},`,
      `devices=${id}&devices=${id}`,
      `devices=${Array.from({ length: 101 }, () => id).join(',')}`,
      'x=1',
    ]) {
      const res = await api(t.url, 'GET', `/api/users/${viewer.userId}/bundle?${query}`, { token: viewer.accessToken });
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('answers 404 not_found for an unknown user and 400 for a malformed id', async () => {
    const unknown = await bundle(randomBytes(16).toString('base64url'));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    const malformed = await bundle('not-an-id');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('invalid_input');
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'GET', `/api/users/${viewer.userId}/bundle`)).status).toBe(401);
  });
});
