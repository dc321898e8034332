// PUT and GET /api/backup: the encrypted key backup, at most 64 KiB before encoding.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url);
});
afterAll(() => t.close());

const put = (backup: unknown, token = alice.accessToken) =>
  api(t.url, 'PUT', '/api/backup', { token, body: { backup } });
const get = (token = alice.accessToken) => api(t.url, 'GET', '/api/backup', { token });

describe('GET /api/backup', () => {
  it('answers 404 not_found while no backup is stored', async () => {
    const fresh = await signUp(t.url);
    const res = await get(fresh.accessToken);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'GET', '/api/backup')).status).toBe(401);
  });
});

describe('PUT /api/backup', () => {
  it('stores the backup, replaces it, and GET answers the latest', async () => {
    const first = randomBytes(300).toString('base64url');
    expect((await put(first)).status).toBe(204);
    expect((await get()).body).toEqual({ backup: first });
    const second = randomBytes(64 * 1024).toString('base64url'); // exactly the limit: beyond the JSON limit
    expect((await put(second)).status).toBe(204);
    expect((await get()).body).toEqual({ backup: second });
  });

  it('rejects a backup over 64 KiB with payload_too_large and keeps the old one', async () => {
    const before = (await get()).body;
    const res = await put(randomBytes(64 * 1024 + 1).toString('base64url'));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
    const huge = await put(randomBytes(200 * 1024).toString('base64url'));
    expect(huge.status).toBe(413);
    expect((await get()).body).toEqual(before);
  });

  it('rejects a backup that is not base64url, empty, or with extra fields', async () => {
    for (const body of [{ backup: 'a+b/' }, { backup: '' }, { backup: 5 }, { backup: 'AAAA', extra: true }, {}]) {
      const res = await api(t.url, 'PUT', '/api/backup', { token: alice.accessToken, body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'PUT', '/api/backup', { body: { backup: 'AAAA' } })).status).toBe(401);
  });
});
