// PUT /api/settings (and GET, the relay's extension to read them back).
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

describe('PUT /api/settings', () => {
  it('shares presence by default, and stores a change', async () => {
    expect((await api(t.url, 'GET', '/api/settings', { token: alice.accessToken })).body).toEqual({
      sharePresence: true,
    });
    const res = await api(t.url, 'PUT', '/api/settings', { token: alice.accessToken, body: { sharePresence: false } });
    expect(res.status).toBe(204);
    expect((await api(t.url, 'GET', '/api/settings', { token: alice.accessToken })).body).toEqual({
      sharePresence: false,
    });
  });

  it('rejects anything but {sharePresence: boolean}', async () => {
    for (const body of [{ sharePresence: 'yes' }, {}, { sharePresence: true, theme: 'dark' }, null]) {
      const res = await api(t.url, 'PUT', '/api/settings', { token: alice.accessToken, body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'PUT', '/api/settings', { body: { sharePresence: true } })).status).toBe(401);
    expect((await api(t.url, 'GET', '/api/settings')).status).toBe(401);
  });
});
