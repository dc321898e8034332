// PUT and GET /api/devices/self/prekeys.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, kemPrekey, newIdentity, oneTimePrekeys, signedPrekey, signIn, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url, undefined, { oneTimePrekeys: 0 });
});
afterAll(() => t.close());

const put = (token: string, body: unknown) => api(t.url, 'PUT', '/api/devices/self/prekeys', { token, body });
const count = async (token: string) => (await api(t.url, 'GET', '/api/devices/self/prekeys', { token })).body;

describe('PUT /api/devices/self/prekeys', () => {
  it('stores a new signed prekey and more one-time prekeys for the calling device only', async () => {
    const session = await signIn(t.url, alice); // a second device, without keys yet
    const none = { kemOneTimePrekeys: 0, kemLastResortPrekeyId: null };
    expect(await count(session.accessToken)).toEqual({ oneTimePrekeys: 0, signedPrekeyId: null, ...none });
    const res = await put(session.accessToken, {
      signedPrekey: signedPrekey(alice.identity, 42),
      oneTimePrekeys: oneTimePrekeys(100),
    });
    expect(res.status).toBe(204);
    expect(await count(session.accessToken)).toEqual({ oneTimePrekeys: 100, signedPrekeyId: 42, ...none });
    expect(await count(alice.accessToken)).toEqual({ oneTimePrekeys: 0, signedPrekeyId: 1, ...none });
  });

  it('accepts only one-time prekeys, and an empty upload', async () => {
    expect((await put(alice.accessToken, { oneTimePrekeys: oneTimePrekeys(3, 500) })).status).toBe(204);
    expect((await put(alice.accessToken, {})).status).toBe(204);
    expect((await count(alice.accessToken)).oneTimePrekeys).toBe(3);
  });

  const bad: [string, () => unknown][] = [
    ['a signature by another identity key', () => ({ signedPrekey: signedPrekey(newIdentity()) })],
    [
      'a signature over other bytes',
      () => ({ signedPrekey: { ...signedPrekey(alice.identity), publicKey: randomBytes(32).toString('base64url') } }),
    ],
    [
      'a 63-byte signature',
      () => ({ signedPrekey: { ...signedPrekey(alice.identity), signature: randomBytes(63).toString('base64url') } }),
    ],
    ['a 31-byte prekey', () => ({ oneTimePrekeys: [{ keyId: 1, publicKey: randomBytes(31).toString('base64url') }] })],
    [
      'an all-zero prekey',
      () => ({ oneTimePrekeys: [{ keyId: 1, publicKey: Buffer.alloc(32).toString('base64url') }] }),
    ],
    ['101 one-time prekeys', () => ({ oneTimePrekeys: oneTimePrekeys(101) })],
    ['a negative keyId', () => ({ oneTimePrekeys: [{ keyId: -5, publicKey: randomBytes(32).toString('base64url') }] })],
    [
      'a keyId as a string',
      () => ({ oneTimePrekeys: [{ keyId: '1', publicKey: randomBytes(32).toString('base64url') }] }),
    ],
    ['an extra field', () => ({ oneTimePrekeys: [], deviceId: alice.deviceId })],
    ['a KEM prekey signed by another identity key', () => ({ kemOneTimePrekeys: [kemPrekey(newIdentity(), 1)] })],
    [
      'a one-time KEM prekey relabelled as last-resort',
      () => ({ kemLastResortPrekey: kemPrekey(alice.identity, 1, true, { lastResort: false }) }),
    ],
    [
      'a last-resort KEM prekey relabelled as one-time',
      () => ({ kemOneTimePrekeys: [kemPrekey(alice.identity, 1, false, { lastResort: true })] }),
    ],
    [
      'a KEM prekey under another keyId',
      () => ({ kemOneTimePrekeys: [kemPrekey(alice.identity, 2, false, { keyId: 1 })] }),
    ],
    ['a one-time KEM prekey in the last-resort slot', () => ({ kemLastResortPrekey: kemPrekey(alice.identity, 1) })],
    [
      'a 1,183-byte KEM prekey',
      () => ({
        kemOneTimePrekeys: [{ ...kemPrekey(alice.identity, 1), publicKey: randomBytes(1183).toString('base64url') }],
      }),
    ],
    [
      '21 one-time KEM prekeys',
      () => ({ kemOneTimePrekeys: Array.from({ length: 21 }, (_, i) => kemPrekey(alice.identity, i + 1)) }),
    ],
    [
      'two one-time KEM prekeys with one keyId',
      () => ({ kemOneTimePrekeys: [kemPrekey(alice.identity, 1), kemPrekey(alice.identity, 1)] }),
    ],
    ['not an object', () => 'prekeys'],
  ];
  for (const [what, body] of bad) {
    it(`rejects ${what} with invalid_input and stores nothing`, async () => {
      const before = await count(alice.accessToken);
      const res = await put(alice.accessToken, body());
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
      expect(await count(alice.accessToken)).toEqual(before);
    });
  }

  it('refuses to hold more than 1000 one-time prekeys per device', async () => {
    const session = await signIn(t.url, alice);
    for (let i = 0; i < 10; i++) {
      expect((await put(session.accessToken, { oneTimePrekeys: oneTimePrekeys(100, i * 100) })).status).toBe(204);
    }
    const res = await put(session.accessToken, { oneTimePrekeys: oneTimePrekeys(1, 5000) });
    expect(res.status).toBe(400);
    expect((await count(session.accessToken)).oneTimePrekeys).toBe(1000);
  });

  it('stores KEM prekeys signed by the identity key, and refuses to hold more than 200 one-time ones', async () => {
    const session = await signIn(t.url, alice);
    const last = kemPrekey(alice.identity, 1000, true);
    expect((await put(session.accessToken, { kemLastResortPrekey: last })).status).toBe(204);
    for (let i = 0; i < 10; i++) {
      const keys = Array.from({ length: 20 }, (_, j) => kemPrekey(alice.identity, i * 20 + j + 1));
      expect((await put(session.accessToken, { kemOneTimePrekeys: keys })).status).toBe(204);
    }
    expect(await count(session.accessToken)).toMatchObject({ kemOneTimePrekeys: 200, kemLastResortPrekeyId: 1000 });
    const over = await put(session.accessToken, { kemOneTimePrekeys: [kemPrekey(alice.identity, 5000)] });
    expect(over.status).toBe(400);
    expect(over.body.error.code).toBe('invalid_input');
    expect(await count(session.accessToken)).toMatchObject({ kemOneTimePrekeys: 200 });
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'PUT', '/api/devices/self/prekeys', { body: {} })).status).toBe(401);
  });
});

describe('GET /api/devices/self/prekeys', () => {
  it('answers the one-time prekey count and the signed prekey id', async () => {
    const bob = await signUp(t.url, undefined, { oneTimePrekeys: 7 });
    expect(await count(bob.accessToken)).toEqual({
      oneTimePrekeys: 7,
      signedPrekeyId: 1,
      kemOneTimePrekeys: 0,
      kemLastResortPrekeyId: null,
    });
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'GET', '/api/devices/self/prekeys')).status).toBe(401);
  });
});
