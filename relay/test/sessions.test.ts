// POST /api/sessions (sign-in), POST /api/sessions/refresh, DELETE /api/sessions/current.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, signIn, signUp, startRelay, uniqueUsername, waitFor } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url, uniqueUsername('Alice'));
});
afterAll(() => t.close());

const whoAmI = (token: string) => api(t.url, 'GET', '/api/devices/self/prekeys', { token });

describe('POST /api/sessions', () => {
  it('signs in on a new device, with the username in any case', async () => {
    const session = await signIn(t.url, { ...alice, username: alice.username.toUpperCase() });
    expect(session.userId).toBe(alice.userId);
    expect(session.deviceId).not.toBe(alice.deviceId);
    expect(session.expiresIn).toBe(900);
    expect((await whoAmI(session.accessToken)).status).toBe(200);
  });

  it('reuses the device when deviceId names one of this account', async () => {
    const session = await signIn(t.url, alice, alice.deviceId);
    expect(session.deviceId).toBe(alice.deviceId);
    expect((await whoAmI(session.accessToken)).body.signedPrekeyId).toBe(1);
  });

  it("makes a new device when deviceId names another account's or no device", async () => {
    const bob = await signUp(t.url);
    const stolen = await signIn(t.url, alice, bob.deviceId);
    expect(stolen.deviceId).not.toBe(bob.deviceId);
    const unknown = await signIn(t.url, alice, randomBytes(16).toString('base64url'));
    expect(unknown.userId).toBe(alice.userId);
  });

  it('answers a wrong key and an unknown user with the same 401', async () => {
    const wrongKey = await api(t.url, 'POST', '/api/sessions', {
      body: { username: alice.username, authKey: randomBytes(32).toString('base64url') },
    });
    const unknown = await api(t.url, 'POST', '/api/sessions', {
      body: { username: uniqueUsername('nobody'), authKey: randomBytes(32).toString('base64url') },
    });
    expect(wrongKey.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual(wrongKey.body);
    expect(wrongKey.body.error.code).toBe('unauthorized');
  });

  it('rejects malformed sign-ins with invalid_input', async () => {
    for (const body of [
      { username: alice.username },
      { username: alice.username, authKey: 'short' },
      { username: alice.username, authKey: alice.authKey, deviceId: 'x' },
      { username: alice.username, authKey: alice.authKey, extra: 1 },
    ]) {
      const res = await api(t.url, 'POST', '/api/sessions', { body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('rate-limits failed sign-ins per username with Retry-After, even for the right key', async () => {
    const victim = await signUp(t.url, uniqueUsername('victim'));
    const wrong = { username: victim.username, authKey: randomBytes(32).toString('base64url') };
    for (let i = 0; i < 5; i++) {
      expect((await api(t.url, 'POST', '/api/sessions', { body: wrong })).status).toBe(401);
    }
    const limited = await api(t.url, 'POST', '/api/sessions', { body: wrong });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(900);
    const right = await api(t.url, 'POST', '/api/sessions', {
      body: { username: victim.username, authKey: victim.authKey },
    });
    expect(right.status).toBe(429);
    // another username from the same address is not affected
    expect(
      (await api(t.url, 'POST', '/api/sessions', { body: { username: alice.username, authKey: alice.authKey } }))
        .status,
    ).toBe(200);
  });

  it('counts concurrent attempts, so a burst cannot run more than the allowed bcrypt checks', async () => {
    const target = await signUp(t.url, uniqueUsername('burst'));
    const body = { username: target.username, authKey: randomBytes(32).toString('base64url') };
    const answers = await Promise.all(Array.from({ length: 12 }, () => api(t.url, 'POST', '/api/sessions', { body })));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
  });
});

describe('POST /api/sessions/refresh', () => {
  it('rotates: answers a new pair, and the new access token works', async () => {
    const session = await signIn(t.url, alice);
    const res = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: session.refreshToken } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userId: alice.userId, deviceId: session.deviceId, expiresIn: 900 });
    expect(res.body.refreshToken).not.toBe(session.refreshToken);
    expect((await whoAmI(res.body.accessToken as string)).status).toBe(200);
  });

  it('revokes the whole family when a spent refresh token comes back', async () => {
    const session = await signIn(t.url, alice);
    const device = await connectDevice(t.url, session.accessToken);
    const next = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: session.refreshToken } });
    const replay = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: session.refreshToken } });
    expect(replay.status).toBe(401);
    expect(replay.body.error.code).toBe('unauthorized');
    const successor = await api(t.url, 'POST', '/api/sessions/refresh', {
      body: { refreshToken: next.body.refreshToken },
    });
    expect(successor.status).toBe(401);
    expect((await whoAmI(next.body.accessToken as string)).status).toBe(401);
    expect((await whoAmI(session.accessToken)).status).toBe(401);
    await waitFor(() => !device.socket.connected, 5000, 'the family socket to be dropped');
  });

  it('refuses an unknown or malformed refresh token', async () => {
    const unknown = await api(t.url, 'POST', '/api/sessions/refresh', {
      body: { refreshToken: randomBytes(32).toString('base64url') },
    });
    expect(unknown.status).toBe(401);
    const malformed = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: 42 } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('invalid_input');
  });
});

describe('the absolute session lifetime (SESSION_MAX_AGE)', () => {
  it('ends a sign-in at SESSION_MAX_AGE however often it was refreshed within REFRESH_TOKEN_TTL', async () => {
    let clock = Date.now();
    const short = await startRelay(
      { SESSION_MAX_AGE: '600', REFRESH_TOKEN_TTL: '300', ACCESS_TOKEN_TTL: '60' },
      { now: () => clock },
    );
    try {
      const bob = await signUp(short.url);
      let refreshToken = bob.refreshToken;
      // Refreshed every 4 minutes: each refresh alone is well within the 5-minute refresh lifetime.
      for (let minute = 4; minute <= 8; minute += 4) {
        clock += 4 * 60_000;
        const res = await api(short.url, 'POST', '/api/sessions/refresh', { body: { refreshToken } });
        expect(res.status, `refresh at minute ${minute}`).toBe(200);
        refreshToken = res.body.refreshToken as string;
      }
      // Minute 10 and a little: the sign-in is 10 minutes old, the token it holds only 2.
      clock += 2 * 60_000 + 1000;
      const ended = await api(short.url, 'POST', '/api/sessions/refresh', { body: { refreshToken } });
      expect(ended.status).toBe(401);
      expect(ended.body.error.code).toBe('unauthorized');
      // A fresh sign-in starts a new lifetime.
      const again = await signIn(short.url, bob);
      const fresh = await api(short.url, 'POST', '/api/sessions/refresh', {
        body: { refreshToken: again.refreshToken },
      });
      expect(fresh.status).toBe(200);
    } finally {
      await short.close();
    }
  });
});

describe('DELETE /api/sessions/current', () => {
  it('revokes the refresh family and its access tokens, and leaves other sessions alone', async () => {
    const session = await signIn(t.url, alice);
    const other = await signIn(t.url, alice);
    const device = await connectDevice(t.url, session.accessToken);
    const res = await api(t.url, 'DELETE', '/api/sessions/current', { token: session.accessToken });
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
    expect((await whoAmI(session.accessToken)).status).toBe(401);
    const refresh = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: session.refreshToken } });
    expect(refresh.status).toBe(401);
    expect((await whoAmI(other.accessToken)).status).toBe(200);
    await waitFor(() => !device.socket.connected, 5000, 'the signed-out socket to be dropped');
  });

  it('requires authentication', async () => {
    const res = await api(t.url, 'DELETE', '/api/sessions/current');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
  });
});
