// Adversarial access tokens: every forgery or stale token is refused on HTTP and on the socket handshake, and an
// open socket does not outlive its token (closed at expiry; the client comes back with a refreshed one).
import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { io } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionAnswer } from '../../src/protocol.js';
import { api, connectDevice, connectError, signIn, signUp, startRelay, waitFor } from '../helpers.js';
import type { TestAccount, TestRelay } from '../helpers.js';

let t: TestRelay;
let alice: TestAccount;
/** The relay's clock runs this many ms ahead of the real one (moved by the expiry tests). */
let skewMs = 0;

beforeAll(async () => {
  t = await startRelay({ ACCESS_TOKEN_TTL: '10' }, { now: () => Date.now() + skewMs });
  alice = await signUp(t.url);
});
afterAll(() => t.close());

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

/** The claims of a real, valid token (sub, dev, fam, iat, exp). */
function claims(token = alice.accessToken): Record<string, unknown> {
  return jwt.decode(token) as Record<string, unknown>;
}

const nowSeconds = (): number => Math.floor((Date.now() + skewMs) / 1000);

/** Each forgery, made fresh from alice's live session: none of them may be accepted anywhere. */
const forgeries: [string, () => string | Promise<string>][] = [
  ['alg none, no signature', () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
  [
    'alg "None" with the real signature kept',
    () => {
      const [, , sig] = alice.accessToken.split('.');
      return `${b64({ alg: 'None', typ: 'JWT' })}.${b64(claims())}.${sig ?? ''}`;
    },
  ],
  [
    'RS256, signed with an attacker RSA key',
    () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return jwt.sign(claims(), privateKey, { algorithm: 'RS256' });
    },
  ],
  [
    'header RS256 but HMAC-signed with the real secret (algorithm confusion)',
    async () => {
      const { createHmac } = await import('node:crypto');
      const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims())}`;
      return `${input}.${createHmac('sha256', t.jwtSecret).update(input).digest('base64url')}`;
    },
  ],
  [
    'HS256 keyed with an RSA public key PEM (the classic HS/RS confusion)',
    () => {
      const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      return jwt.sign(claims(), pem, { algorithm: 'HS256' });
    },
  ],
  ['HS384 with the real secret', () => jwt.sign(claims(), t.jwtSecret, { algorithm: 'HS384' })],
  ['HS256 with a wrong secret', () => jwt.sign(claims(), 'x'.repeat(32), { algorithm: 'HS256' })],
  [
    'HS256 with the real secret but expired',
    () =>
      jwt.sign({ ...claims(), iat: nowSeconds() - 120, exp: nowSeconds() - 60 }, t.jwtSecret, { algorithm: 'HS256' }),
  ],
  [
    'HS256 with the real secret but nbf in the future',
    () => {
      const { exp: _exp, ...rest } = claims();
      return jwt.sign({ ...rest, nbf: nowSeconds() + 3600 }, t.jwtSecret, { algorithm: 'HS256', expiresIn: 7200 });
    },
  ],
  [
    'the real token with its payload edited (another user)',
    async () => {
      const bob = await signUp(t.url);
      const [head, , sig] = alice.accessToken.split('.');
      return `${head ?? ''}.${b64({ ...claims(), sub: bob.userId, dev: bob.deviceId })}.${sig ?? ''}`;
    },
  ],
  ['the real token with its signature truncated', () => alice.accessToken.slice(0, -4)],
];

describe('a forged or altered access token', () => {
  for (const [what, make] of forgeries) {
    it(`is refused on HTTP and on the socket handshake: ${what}`, async () => {
      const token = await make();
      const res = await api(t.url, 'GET', '/api/devices/self/prekeys', { token });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
      expect(await connectError(t.url, token)).toMatchObject({ error: { code: 'unauthorized' } });
    });
  }
});

describe('a token of a session that ended', () => {
  it('is refused after sign-out, on HTTP and on the socket, and its open socket is dropped at once', async () => {
    const session = await signIn(t.url, alice);
    const device = await connectDevice(t.url, session.accessToken);
    expect((await api(t.url, 'DELETE', '/api/sessions/current', { token: session.accessToken })).status).toBe(204);
    await waitFor(() => !device.socket.connected, 5000, 'the signed-out socket to close');
    expect((await api(t.url, 'GET', '/api/backup', { token: session.accessToken })).status).toBe(401);
    expect(await connectError(t.url, session.accessToken)).toMatchObject({ error: { code: 'unauthorized' } });
    const refresh = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: session.refreshToken } });
    expect(refresh.status).toBe(401);
  });

  it('is refused once its refresh family was revoked by a replayed refresh token', async () => {
    const session = await signIn(t.url, alice);
    const first = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: session.refreshToken } });
    expect(first.status).toBe(200);
    const successor = first.body as SessionAnswer;
    const device = await connectDevice(t.url, successor.accessToken);
    // a thief replays the spent refresh token: the whole family dies, including the legitimate successor
    const replay = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: session.refreshToken } });
    expect(replay.status).toBe(401);
    await waitFor(() => !device.socket.connected, 5000, 'the revoked family socket to close');
    for (const token of [session.accessToken, successor.accessToken]) {
      expect((await api(t.url, 'GET', '/api/backup', { token })).status).toBe(401);
      expect(await connectError(t.url, token)).toMatchObject({ error: { code: 'unauthorized' } });
    }
    const next = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: successor.refreshToken } });
    expect(next.status).toBe(401);
  });
});

describe('an open socket whose access token expires', () => {
  it('is closed by the relay at expiry, and a client reconnects with a refreshed token', async () => {
    const session = await signIn(t.url, alice);
    let current = session;
    let handshakes = 0;
    // The relay clock jumps 9 s ahead: the fresh 10 s token has about a second left.
    skewMs = 9000;
    try {
      const socket = io(t.url, {
        parser: msgpackParser,
        transports: ['websocket'],
        forceNew: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 100,
        auth: (cb) => {
          handshakes++;
          if (handshakes === 1) return cb({ token: current.accessToken });
          // what the web engine's TokenKeeper does: refresh, then hand over the new access token
          void api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: current.refreshToken } }).then(
            (res) => {
              current = res.body as SessionAnswer;
              cb({ token: current.accessToken });
            },
          );
        },
      });
      const reasons: string[] = [];
      socket.on('disconnect', (reason) => reasons.push(reason));
      await waitFor(() => socket.connected, 5000, 'the first connection');
      const openedAt = Date.now();
      await waitFor(() => reasons.length === 1, 4000, 'the relay to close the expired socket');
      expect(Date.now() - openedAt).toBeLessThan(2500);
      expect(reasons[0]).toBe('transport close'); // a transport close: clients reconnect on their own
      await waitFor(() => socket.connected && handshakes >= 2, 5000, 'the reconnection with a refreshed token');
      expect(current.accessToken).not.toBe(session.accessToken);
      // the old token is no longer good for a new connection
      expect(await connectError(t.url, session.accessToken)).toMatchObject({ error: { code: 'unauthorized' } });
      socket.disconnect();
    } finally {
      skewMs = 0;
    }
  });

  it('stays open while its token is valid', async () => {
    const session = await signIn(t.url, alice);
    const device = await connectDevice(t.url, session.accessToken);
    await new Promise((r) => setTimeout(r, 1500));
    expect(device.socket.connected).toBe(true);
    device.close();
  });
});
