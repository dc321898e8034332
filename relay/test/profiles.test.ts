// PUT /api/profile and GET /api/users/:userId/profile: each account's sealed profile, opaque to the relay, at most
// PROFILE_BYTES before encoding, writable only by its owner and readable by anyone signed in.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROFILE_BYTES } from '../src/protocol.js';
import { api, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url);
  bob = await signUp(t.url);
});
afterAll(() => t.close());

const put = (profile: unknown, token = alice.accessToken) =>
  api(t.url, 'PUT', '/api/profile', { token, body: { profile } });
const get = (userId: string, token = bob.accessToken) => api(t.url, 'GET', `/api/users/${userId}/profile`, { token });

describe('PUT /api/profile', () => {
  it('stores the sealed profile as given, replaces it, and any signed-in user reads the latest', async () => {
    const first = randomBytes(4096 + 41);
    expect((await put(first.toString('base64url'))).status).toBe(204);
    expect(Buffer.from((await t.relay.store.getProfile(alice.userId))?.profile ?? [])).toEqual(first);
    const largest = randomBytes(PROFILE_BYTES).toString('base64url'); // past the default JSON limit
    expect((await put(largest)).status).toBe(204);
    const read = await get(alice.userId);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ userId: alice.userId, profile: largest });
    expect((await get(alice.userId, alice.accessToken)).body.profile).toBe(largest);
  });

  it('refuses a profile over the limit with payload_too_large, keeps the old one, and keeps running', async () => {
    const before = (await get(alice.userId)).body;
    const over = await put(randomBytes(PROFILE_BYTES + 1).toString('base64url'));
    expect(over.status).toBe(413);
    expect(over.body.error.code).toBe('payload_too_large');
    const huge = await api(t.url, 'PUT', '/api/profile', {
      token: alice.accessToken,
      rawBody: JSON.stringify({ profile: 'A'.repeat(2 * 1024 * 1024) }),
    });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('payload_too_large');
    expect((await get(alice.userId)).body).toEqual(before);
    expect((await api(t.url, 'GET', '/api/health')).status).toBe(200);
  });

  it('rejects a profile that is not base64url, empty, or with extra fields', async () => {
    const bodies = [{ profile: 'a+b/' }, { profile: '' }, { profile: 5 }, { profile: 'AAAA', userId: bob.userId }, {}];
    for (const body of bodies) {
      const res = await api(t.url, 'PUT', '/api/profile', { token: alice.accessToken, body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    const notJson = await api(t.url, 'PUT', '/api/profile', { token: alice.accessToken, rawBody: '{"profile":' });
    expect(notJson.body.error.code).toBe('invalid_input');
  });

  it("writes only the caller's own profile: no route writes another account's", async () => {
    const before = (await get(alice.userId)).body;
    const mine = randomBytes(100).toString('base64url');
    expect((await put(mine, bob.accessToken)).status).toBe(204);
    const other = await api(t.url, 'PUT', `/api/users/${alice.userId}/profile`, {
      token: bob.accessToken,
      body: { profile: mine },
    });
    expect(other.status).toBe(404);
    expect((await get(alice.userId)).body).toEqual(before);
    expect((await get(bob.userId, alice.accessToken)).body).toEqual({ userId: bob.userId, profile: mine });
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'PUT', '/api/profile', { body: { profile: 'AAAA' } })).status).toBe(401);
    expect((await api(t.url, 'PUT', '/api/profile', { token: 'nope', body: { profile: 'AAAA' } })).status).toBe(401);
  });
});

describe('GET /api/users/:userId/profile', () => {
  it('answers 404 not_found for a user without a profile and for an unknown user', async () => {
    const fresh = await signUp(t.url);
    const none = await get(fresh.userId);
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe('not_found');
    const unknown = await get(randomBytes(16).toString('base64url'));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
  });

  it('rejects an id that is not an id', async () => {
    for (const bad of ['short', `${alice.userId}x`, 'a'.repeat(21) + 'B']) {
      const res = await get(bad);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'GET', `/api/users/${alice.userId}/profile`)).status).toBe(401);
  });
});
