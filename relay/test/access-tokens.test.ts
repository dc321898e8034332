// Access tokens on every authenticated route and on the socket handshake: only valid HS256 tokens of a live
// session are accepted.
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, connectError, signIn, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url);
});
afterAll(() => t.close());

/** The claims of a real token, to re-sign them in forged variants. */
function claimsOf(token: string): Record<string, unknown> {
  return jwt.decode(token) as Record<string, unknown>;
}

function unsigned(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

const forged: [string, () => Promise<string> | string][] = [
  ['with alg none', () => unsigned(claimsOf(alice.accessToken))],
  [
    'signed with another secret',
    () => jwt.sign(claimsOf(alice.accessToken), 'another-secret-another-secret-xx', { algorithm: 'HS256' }),
  ],
  ['signed with HS512', () => jwt.sign(claimsOf(alice.accessToken), t.jwtSecret, { algorithm: 'HS512' })],
  [
    'that expired',
    () => {
      const { exp: _exp, iat: _iat, ...claims } = claimsOf(alice.accessToken);
      const now = Math.floor(Date.now() / 1000);
      return jwt.sign({ ...claims, iat: now - 7200, exp: now - 3600 }, t.jwtSecret, { algorithm: 'HS256' });
    },
  ],
  [
    'without a device claim',
    () => {
      const { dev: _dev, ...claims } = claimsOf(alice.accessToken);
      return jwt.sign(claims, t.jwtSecret, { algorithm: 'HS256' });
    },
  ],
  [
    "naming another account's device",
    async () => {
      const bob = await signUp(t.url);
      return jwt.sign({ ...claimsOf(alice.accessToken), dev: bob.deviceId }, t.jwtSecret, { algorithm: 'HS256' });
    },
  ],
  ['that is garbage', () => 'not.a.token'],
];

describe('an authenticated HTTP route', () => {
  it('accepts a valid token', async () => {
    expect((await api(t.url, 'GET', '/api/devices/self/prekeys', { token: alice.accessToken })).status).toBe(200);
  });

  for (const [what, make] of forged) {
    it(`refuses a token ${what} with 401 unauthorized`, async () => {
      const res = await api(t.url, 'GET', '/api/devices/self/prekeys', { token: await make() });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
    });
  }

  it('refuses a missing or non-Bearer authorization header', async () => {
    expect((await api(t.url, 'GET', '/api/devices/self/prekeys')).status).toBe(401);
    const basic = await api(t.url, 'GET', '/api/devices/self/prekeys', {
      headers: { authorization: `Basic ${alice.accessToken}` },
    });
    expect(basic.status).toBe(401);
  });

  it('refuses the token of a deleted account', async () => {
    const doomed = await signUp(t.url);
    await t.relay.store.deleteUser(doomed.userId);
    const res = await api(t.url, 'GET', '/api/devices/self/prekeys', { token: doomed.accessToken });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
  });

  it('refuses the token of a revoked family', async () => {
    const session = await signIn(t.url, alice);
    await api(t.url, 'DELETE', '/api/sessions/current', { token: session.accessToken });
    expect((await api(t.url, 'GET', '/api/backup', { token: session.accessToken })).status).toBe(401);
  });
});

describe('the socket handshake', () => {
  it('connects with a valid token', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    expect(device.socket.connected).toBe(true);
    device.close();
  });

  for (const [what, make] of forged) {
    it(`fails with connect_error unauthorized for a token ${what}`, async () => {
      expect(await connectError(t.url, await make())).toEqual({
        error: { code: 'unauthorized', message: expect.any(String) },
      });
    });
  }

  it('fails for a missing token or one of the wrong type', async () => {
    for (const token of [undefined, 42, { nested: true }, '']) {
      expect(await connectError(t.url, token)).toMatchObject({ error: { code: 'unauthorized' } });
    }
  });

  it('fails for a deleted account and for a revoked family', async () => {
    const doomed = await signUp(t.url);
    await t.relay.store.deleteUser(doomed.userId);
    expect(await connectError(t.url, doomed.accessToken)).toMatchObject({ error: { code: 'unauthorized' } });
    const session = await signIn(t.url, alice);
    await api(t.url, 'DELETE', '/api/sessions/current', { token: session.accessToken });
    expect(await connectError(t.url, session.accessToken)).toMatchObject({ error: { code: 'unauthorized' } });
  });
});
