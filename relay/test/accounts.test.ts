// GET /api/accounts/:username/kdf and POST /api/accounts (sign-up).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountBody,
  api,
  kemPrekey,
  newIdentity,
  oneTimePrekeys,
  signedPrekey,
  signUp,
  startRelay,
  uniqueUsername,
} from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let viewer: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  viewer = await signUp(t.url);
});
afterAll(() => t.close());

/** True when no account of this name exists (the search sees every account). */
async function absent(username: string): Promise<boolean> {
  const res = await api(t.url, 'GET', `/api/users?query=${username.toLowerCase()}`, { token: viewer.accessToken });
  return !(res.body.users as { username: string }[]).some((u) => u.username === username.toLowerCase());
}

describe('GET /api/accounts/:username/kdf', () => {
  it('answers the stored salt and the protocol KDF parameters, whatever the case of the name', async () => {
    const { body, keys } = accountBody(uniqueUsername('Kdf'));
    expect((await api(t.url, 'POST', '/api/accounts', { body })).status).toBe(201);
    const res = await api(t.url, 'GET', `/api/accounts/${keys.username.toUpperCase()}/kdf`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ salt: body.salt, opslimit: 3, memlimit: 67108864 });
  });

  it('answers an unknown name with a stable fake salt of the same shape', async () => {
    const name = uniqueUsername('ghost');
    const first = await api(t.url, 'GET', `/api/accounts/${name}/kdf`);
    const second = await api(t.url, 'GET', `/api/accounts/${name.toUpperCase()}/kdf`);
    const other = await api(t.url, 'GET', `/api/accounts/${uniqueUsername('ghost')}/kdf`);
    expect(first.status).toBe(200);
    expect(Object.keys(first.body).sort()).toEqual(['memlimit', 'opslimit', 'salt']);
    expect(first.body.salt).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(second.body).toEqual(first.body);
    expect(other.body.salt).not.toBe(first.body.salt);
  });

  it('rejects a name that is not a valid username', async () => {
    for (const name of ['ab', 'a'.repeat(33), 'bad-name', encodeURIComponent('über')]) {
      const res = await api(t.url, 'GET', `/api/accounts/${name}/kdf`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });
});

describe('POST /api/accounts', () => {
  it('creates the account with its first device and answers a session', async () => {
    const account = await signUp(t.url, uniqueUsername('New'));
    expect(account.userId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(account.deviceId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(account.accessToken.split('.')).toHaveLength(3);
    expect(account.refreshToken.length).toBeGreaterThanOrEqual(43);
    expect(account.expiresIn).toBe(900);
    const count = await api(t.url, 'GET', '/api/devices/self/prekeys', { token: account.accessToken });
    expect(count.body).toEqual({
      oneTimePrekeys: 5,
      signedPrekeyId: 1,
      kemOneTimePrekeys: 0,
      kemLastResortPrekeyId: null,
    });
  });

  it("stores the first device's KEM prekeys (PQXDH) with the account, so that its first bundle is post-quantum", async () => {
    const { body, keys } = accountBody(uniqueUsername('pq'));
    const res = await api(t.url, 'POST', '/api/accounts', {
      body: {
        ...body,
        kemLastResortPrekey: kemPrekey(keys.identity, 100, true),
        kemOneTimePrekeys: [kemPrekey(keys.identity, 1), kemPrekey(keys.identity, 2)],
      },
    });
    expect(res.status).toBe(201);
    const count = await api(t.url, 'GET', '/api/devices/self/prekeys', { token: res.body.accessToken });
    expect(count.body).toMatchObject({ kemOneTimePrekeys: 2, kemLastResortPrekeyId: 100 });
  });

  it('stores the username lower-cased and refuses the same name in another case', async () => {
    const name = uniqueUsername('Case');
    await signUp(t.url, name);
    const again = await api(t.url, 'POST', '/api/accounts', { body: accountBody(name.toUpperCase()).body });
    expect(again.status).toBe(409);
    expect(again.body).toEqual({ error: { code: 'username_taken', message: expect.any(String) } });
  });

  const variants: [string, (body: Record<string, unknown>) => unknown][] = [
    ['a username of the wrong type', (b) => ({ ...b, username: 12345 })],
    ['a non-ASCII username', (b) => ({ ...b, username: 'usér_name' })],
    ['a missing field', ({ authKey: _authKey, ...rest }) => rest],
    ['an extra field', (b) => ({ ...b, admin: true })],
    [
      'an extra field inside the signed prekey',
      (b) => ({ ...b, signedPrekey: { ...(b.signedPrekey as object), x: 1 } }),
    ],
    ['invalid base64url', (b) => ({ ...b, identityKey: `${'+'.repeat(42)}A` })],
    ['padded base64', (b) => ({ ...b, salt: `${randomBytes(16).toString('base64url')}==` })],
    ['a 31-byte identity key', (b) => ({ ...b, identityKey: randomBytes(31).toString('base64url') })],
    ['a 33-byte authKey', (b) => ({ ...b, authKey: randomBytes(33).toString('base64url') })],
    ['a 15-byte salt', (b) => ({ ...b, salt: randomBytes(15).toString('base64url') })],
    ['an all-zero identity key', (b) => ({ ...b, identityKey: Buffer.alloc(32).toString('base64url') })],
    ['a signature by another key', (b) => ({ ...b, signedPrekey: signedPrekey(newIdentity()) })],
    [
      'an all-zero one-time prekey',
      (b) => ({ ...b, oneTimePrekeys: [{ keyId: 1, publicKey: Buffer.alloc(32).toString('base64url') }] }),
    ],
    ['101 one-time prekeys', (b) => ({ ...b, oneTimePrekeys: oneTimePrekeys(101) })],
    ['a negative keyId', (b) => ({ ...b, oneTimePrekeys: [{ ...oneTimePrekeys(1)[0], keyId: -1 }] })],
    ['a fractional keyId', (b) => ({ ...b, oneTimePrekeys: [{ ...oneTimePrekeys(1)[0], keyId: 1.5 }] })],
    ['repeated keyIds', (b) => ({ ...b, oneTimePrekeys: [...oneTimePrekeys(2, 7), ...oneTimePrekeys(1, 7)] })],
    ['an array instead of an object', () => []],
    ['a KEM prekey signed by another key', (b) => ({ ...b, kemOneTimePrekeys: [kemPrekey(newIdentity(), 1)] })],
  ];
  for (const [what, mutate] of variants) {
    it(`rejects ${what} with invalid_input and stores nothing`, async () => {
      const { body } = accountBody(uniqueUsername('bad'));
      const res = await api(t.url, 'POST', '/api/accounts', { body: mutate(body) });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: { code: 'invalid_input', message: expect.any(String) } });
      expect(await absent(body.username as string)).toBe(true);
    });
  }

  it('rejects malformed JSON with invalid_input', async () => {
    const res = await api(t.url, 'POST', '/api/accounts', { rawBody: '{"username": "abc",' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_input');
  });

  it('rejects a body that is not JSON', async () => {
    const res = await api(t.url, 'POST', '/api/accounts', {
      rawBody: 'username=abc',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_input');
  });

  it('rejects a body over the JSON limit with payload_too_large', async () => {
    const { body } = accountBody(uniqueUsername('big'));
    const res = await api(t.url, 'POST', '/api/accounts', { body: { ...body, pad: 'x'.repeat(64 * 1024) } });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: { code: 'payload_too_large', message: expect.any(String) } });
  });

  it('never echoes the auth key or stack traces in errors', async () => {
    const { body } = accountBody(uniqueUsername('echo'));
    const res = await api(t.url, 'POST', '/api/accounts', { body: { ...body, identityKey: 'not-a-key' } });
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(body.authKey as string);
    expect(text).not.toMatch(/at .*\.ts:\d+/);
  });
});
