// PUT /api/accounts/self/password and DELETE /api/accounts/self: the signed-in account changes its password or
// erases itself, each proving the current auth key (limited like failed sign-ins).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, messageId, signIn, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
beforeAll(async () => {
  t = await startRelay();
});
afterAll(() => t.close());

const key = (): string => randomBytes(32).toString('base64url');
const salt = (): string => randomBytes(16).toString('base64url');
const blob = (n = 64): string => randomBytes(n).toString('base64url');

async function setBackup(account: TestAccount, backup: string): Promise<void> {
  expect((await api(t.url, 'PUT', '/api/backup', { token: account.accessToken, body: { backup } })).status).toBe(204);
}

async function kdfSalt(username: string): Promise<string> {
  return (await api(t.url, 'GET', `/api/accounts/${username}/kdf`)).body.salt as string;
}

async function signInStatus(username: string, authKey: string): Promise<number> {
  return (await api(t.url, 'POST', '/api/sessions', { body: { username, authKey } })).status;
}

/** What the relay holds of the account's password: salt, which keys sign in, and the backup. */
async function passwordState(account: TestAccount, authKeys: string[]) {
  return {
    salt: await kdfSalt(account.username),
    signIns: await Promise.all(authKeys.map((k) => signInStatus(account.username, k))),
    backup: (await api(t.url, 'GET', '/api/backup', { token: account.accessToken })).body.backup as string,
  };
}

describe('PUT /api/accounts/self/password', () => {
  it('replaces salt, auth key and backup at once: the old key fails and the new one signs in after', async () => {
    const alice = await signUp(t.url);
    await setBackup(alice, blob());
    const other = await signIn(t.url, alice); // a second device of the account
    const body = { authKey: alice.authKey, newSalt: salt(), newAuthKey: key(), backup: blob(80) };
    const res = await api(t.url, 'PUT', '/api/accounts/self/password', { token: alice.accessToken, body });
    expect(res.status).toBe(204);
    expect(await passwordState(alice, [alice.authKey, body.newAuthKey])).toEqual({
      salt: body.newSalt,
      signIns: [401, 200],
      backup: body.backup,
    });
    // Other devices stay signed in.
    expect((await api(t.url, 'GET', '/api/settings', { token: other.accessToken })).status).toBe(200);
  });

  it('refuses a wrong current auth key as unauthorized and changes nothing', async () => {
    const bob = await signUp(t.url);
    const backup = blob();
    await setBackup(bob, backup);
    const newAuthKey = key();
    const before = await passwordState(bob, [bob.authKey, newAuthKey]);
    expect(before.signIns).toEqual([200, 401]);
    const res = await api(t.url, 'PUT', '/api/accounts/self/password', {
      token: bob.accessToken,
      body: { authKey: key(), newSalt: salt(), newAuthKey, backup: blob(90) },
    });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
    expect(await passwordState(bob, [bob.authKey, newAuthKey])).toEqual(before);
  });

  it("never changes another account's password: the token's account must own the key", async () => {
    const carol = await signUp(t.url);
    const mallory = await signUp(t.url);
    await setBackup(carol, blob());
    const newAuthKey = key();
    const before = await passwordState(carol, [carol.authKey, newAuthKey]);
    // Mallory knows carol's auth key but holds only her own token: the proof is checked against her own account.
    const res = await api(t.url, 'PUT', '/api/accounts/self/password', {
      token: mallory.accessToken,
      body: { authKey: carol.authKey, newSalt: salt(), newAuthKey, backup: blob() },
    });
    expect(res.status).toBe(401);
    expect(await passwordState(carol, [carol.authKey, newAuthKey])).toEqual(before);
    expect(await signInStatus(mallory.username, mallory.authKey)).toBe(200);
  });

  it('requires a bearer token', async () => {
    const dave = await signUp(t.url);
    const res = await api(t.url, 'PUT', '/api/accounts/self/password', {
      body: { authKey: dave.authKey, newSalt: salt(), newAuthKey: key(), backup: blob() },
    });
    expect(res.status).toBe(401);
    expect(await signInStatus(dave.username, dave.authKey)).toBe(200);
  });

  it('rejects bad input and changes nothing', async () => {
    const erin = await signUp(t.url);
    await setBackup(erin, blob());
    const before = await passwordState(erin, [erin.authKey]);
    const good = { authKey: erin.authKey, newSalt: salt(), newAuthKey: key(), backup: blob() };
    const bad: unknown[] = [
      {},
      { ...good, extra: 1 },
      { ...good, newSalt: randomBytes(15).toString('base64url') },
      { ...good, newAuthKey: `${key()}=` },
      { ...good, authKey: 42 },
      { ...good, backup: '' },
      { authKey: good.authKey, newSalt: good.newSalt, newAuthKey: good.newAuthKey },
    ];
    for (const body of bad) {
      const res = await api(t.url, 'PUT', '/api/accounts/self/password', { token: erin.accessToken, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    const tooBig = await api(t.url, 'PUT', '/api/accounts/self/password', {
      token: erin.accessToken,
      body: { ...good, backup: randomBytes(64 * 1024 + 1).toString('base64url') },
    });
    expect(tooBig.status).toBe(413);
    expect(await passwordState(erin, [erin.authKey])).toEqual(before);
  });

  it('takes a backup as large as the backup route does (64 KiB)', async () => {
    const fay = await signUp(t.url);
    const body = { authKey: fay.authKey, newSalt: salt(), newAuthKey: key(), backup: blob(64 * 1024) };
    const res = await api(t.url, 'PUT', '/api/accounts/self/password', { token: fay.accessToken, body });
    expect(res.status).toBe(204);
  });

  it('limits wrong proofs like failed sign-ins: after 5, even the right key is refused (429) and nothing changes', async () => {
    const gus = await signUp(t.url);
    await setBackup(gus, blob());
    const newAuthKey = key();
    const before = await passwordState(gus, [gus.authKey]);
    for (let i = 0; i < 5; i++) {
      const res = await api(t.url, 'PUT', '/api/accounts/self/password', {
        token: gus.accessToken,
        body: { authKey: key(), newSalt: salt(), newAuthKey, backup: blob() },
      });
      expect(res.status).toBe(401);
    }
    const limited = await api(t.url, 'PUT', '/api/accounts/self/password', {
      token: gus.accessToken,
      body: { authKey: gus.authKey, newSalt: salt(), newAuthKey, backup: blob() },
    });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // The same counter as sign-in: signing in with the right key is refused too, and the password is unchanged.
    expect(await signInStatus(gus.username, gus.authKey)).toBe(429);
    expect(await kdfSalt(gus.username)).toBe(before.salt);
  });

  it('lets one of two concurrent changes win; the other is refused and the winner holds', async () => {
    const hal = await signUp(t.url);
    await setBackup(hal, blob());
    const a = { authKey: hal.authKey, newSalt: salt(), newAuthKey: key(), backup: blob(70) };
    const b = { authKey: hal.authKey, newSalt: salt(), newAuthKey: key(), backup: blob(71) };
    const [ra, rb] = await Promise.all(
      [a, b].map((body) => api(t.url, 'PUT', '/api/accounts/self/password', { token: hal.accessToken, body })),
    );
    const statuses = [ra?.status, rb?.status].sort();
    expect(statuses).toEqual([204, 401]);
    const winner = ra?.status === 204 ? a : b;
    const loser = winner === a ? b : a;
    expect(await passwordState(hal, [winner.newAuthKey, loser.newAuthKey, hal.authKey])).toEqual({
      salt: winner.newSalt,
      signIns: [200, 401, 401],
      backup: winner.backup,
    });
  });
});

function openDb(): Database.Database {
  return new Database(join(t.dataDir, 'weconnect.db'), { readonly: true });
}

/** Rows of these tables that hold any of these strings (as text or inside a blob). */
function rowsHolding(db: Database.Database, strings: string[]): string[] {
  const tables = db
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .all()
    .map((r) => r.name);
  const hits: string[] = [];
  for (const table of tables) {
    for (const row of db.prepare<[], Record<string, unknown>>(`SELECT * FROM "${table}"`).all()) {
      for (const [column, value] of Object.entries(row)) {
        const bytes = Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8');
        if (strings.some((s) => bytes.includes(Buffer.from(s, 'utf8')))) hits.push(`${table}.${column}`);
      }
    }
  }
  return hits;
}

describe('DELETE /api/accounts/self', () => {
  it('refuses a wrong auth key, or none, as unauthorized and erases nothing', async () => {
    const ivy = await signUp(t.url);
    for (const body of [{ authKey: key() }]) {
      const res = await api(t.url, 'DELETE', '/api/accounts/self', { token: ivy.accessToken, body });
      expect(res.status).toBe(401);
    }
    expect((await api(t.url, 'DELETE', '/api/accounts/self', { body: { authKey: ivy.authKey } })).status).toBe(401);
    for (const body of [{}, { authKey: ivy.authKey, extra: true }, { authKey: 'short' }]) {
      const res = await api(t.url, 'DELETE', '/api/accounts/self', { token: ivy.accessToken, body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    expect(await signInStatus(ivy.username, ivy.authKey)).toBe(200);
    expect(
      (await api(t.url, 'GET', `/api/users/${ivy.userId}/bundle?devices=`, { token: ivy.accessToken })).status,
    ).toBe(200);
  });

  it("never deletes another account: the proof is checked against the token's own account", async () => {
    const jay = await signUp(t.url);
    const kim = await signUp(t.url);
    const res = await api(t.url, 'DELETE', '/api/accounts/self', {
      token: kim.accessToken,
      body: { authKey: jay.authKey },
    });
    expect(res.status).toBe(401);
    expect(await signInStatus(jay.username, jay.authKey)).toBe(200);
    expect(await signInStatus(kim.username, kim.authKey)).toBe(200);
  });

  it('limits wrong proofs like failed sign-ins', async () => {
    const lee = await signUp(t.url);
    for (let i = 0; i < 5; i++) {
      const res = await api(t.url, 'DELETE', '/api/accounts/self', {
        token: lee.accessToken,
        body: { authKey: key() },
      });
      expect(res.status).toBe(401);
    }
    const limited = await api(t.url, 'DELETE', '/api/accounts/self', {
      token: lee.accessToken,
      body: { authKey: lee.authKey },
    });
    expect(limited.status).toBe(429);
    expect((await api(t.url, 'GET', '/api/settings', { token: lee.accessToken })).status).toBe(200);
  });

  it('erases users, devices, prekeys, sessions, backup, mailbox and group membership rows, and drops its sockets', async () => {
    const mia = await signUp(t.url);
    const ned = await signUp(t.url);
    const miaSecond = await signIn(t.url, mia);
    await setBackup(mia, blob());
    const group = await api(t.url, 'POST', '/api/groups', { token: mia.accessToken, body: { members: [ned.userId] } });
    expect(group.status).toBe(201);
    const m = await connectDevice(t.url, mia.accessToken, { autoAck: false });
    const n = await connectDevice(t.url, ned.accessToken, { autoAck: false });
    expect(
      await n.send({ id: messageId(), envelopes: [{ to: mia.deviceId, body: Buffer.from('to mia') }] }),
    ).toMatchObject({ ok: true });
    expect(
      await m.send({ id: messageId(), envelopes: [{ to: ned.deviceId, body: Buffer.from('to ned') }] }),
    ).toMatchObject({ ok: true });
    await m.waitForMessages(1);

    const families = (db: Database.Database): string[] =>
      db
        .prepare<[string], { family_id: string }>('SELECT family_id FROM session_families WHERE user_id = ?')
        .all(mia.userId)
        .map((r) => r.family_id);
    const before = openDb();
    const identifiers = [mia.userId, mia.deviceId, miaSecond.deviceId, mia.username, ...families(before)];
    // Baseline: the account is in users, devices, prekeys, sessions, groups and the mailbox.
    const held = rowsHolding(before, identifiers);
    before.close();
    for (const column of [
      'users.user_id',
      'devices.device_id',
      'one_time_prekeys.device_id',
      'session_families.family_id',
      'group_members.user_id',
      'mailbox.device_id',
    ]) {
      expect(held).toContain(column);
    }

    let dropped = false;
    m.socket.on('disconnect', () => {
      dropped = true;
    });
    const res = await api(t.url, 'DELETE', '/api/accounts/self', {
      token: mia.accessToken,
      body: { authKey: mia.authKey },
    });
    expect(res.status).toBe(204);
    await waitFor(() => dropped, 5000, "the deleted account's socket to drop");

    const after = openDb();
    expect(rowsHolding(after, identifiers)).toEqual([]);
    // Ned keeps his account, the group (now his, as admin) and his copy of what mia sent.
    const nedGroup = after
      .prepare<[string], { is_admin: number }>('SELECT is_admin FROM group_members WHERE user_id = ?')
      .all(ned.userId);
    expect(nedGroup).toEqual([{ is_admin: 1 }]);
    expect(
      after.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM mailbox WHERE device_id = ?').get(ned.deviceId)
        ?.n,
    ).toBe(1);
    after.close();

    // Contacts see the account gone; its tokens are dead; the name is free for a new account.
    const bundle = await api(t.url, 'GET', `/api/users/${mia.userId}/bundle`, { token: ned.accessToken });
    expect(bundle.status).toBe(404);
    expect((await api(t.url, 'GET', '/api/settings', { token: miaSecond.accessToken })).status).toBe(401);
    expect(await signInStatus(mia.username, mia.authKey)).toBe(401);
    const again = await signUp(t.url, mia.username);
    expect(again.userId).not.toBe(mia.userId);
    m.close();
    n.close();
  });
});
