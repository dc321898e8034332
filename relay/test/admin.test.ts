// `npm run admin`, run as a child process against the DATA_DIR of a real running relay: deleting an account leaves
// nothing of it in the database (every table scanned for its identifiers and key bytes), and leaves the other
// account whole; deactivation, session revocation, device removal, invites, lists and counts act on the same store.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inviteHash } from '../src/service/invites.js';
import { api, connectDevice, messageId, signIn, signUp, sqliteFileState, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

const ROOT = join(import.meta.dirname, '../..');

let t: TestRelay;
beforeAll(async () => {
  t = await startRelay();
});
afterAll(() => t.close());

/** Runs `npm run admin -- ...args` with the relay's DATA_DIR; resolves with its exit code and output. */
function admin(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return adminIn(t.dataDir, args);
}

function adminIn(dataDir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['run', 'admin', '--silent', '--', ...args],
      { cwd: ROOT, env: { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'silent' }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function openDb(): Database.Database {
  return new Database(join(t.dataDir, 'weconnect.db'), { readonly: true });
}

/** Every row of every table, as [table, row]. */
function allRows(db: Database.Database): [string, Record<string, unknown>][] {
  const tables = db
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .all()
    .map((r) => r.name);
  return tables.flatMap((table) =>
    db
      .prepare<[], Record<string, unknown>>(`SELECT * FROM "${table}"`)
      .all()
      .map((row): [string, Record<string, unknown>] => [table, row]),
  );
}

/** The rows that hold any of these strings (as text or inside a blob) or these byte strings. */
function rowsHolding(db: Database.Database, strings: string[], blobs: Buffer[]): string[] {
  const hits: string[] = [];
  for (const [table, row] of allRows(db)) {
    for (const [column, value] of Object.entries(row)) {
      const bytes = Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8');
      const found = strings.some((s) => bytes.includes(Buffer.from(s, 'utf8'))) || blobs.some((b) => bytes.includes(b));
      if (found) hits.push(`${table}.${column}`);
    }
  }
  return hits;
}

/** Rows per table (the other account's baseline). */
function rowCounts(db: Database.Database, where: Record<string, [string, string]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [table, [column, value]] of Object.entries(where)) {
    out[table] = db
      .prepare<[string], { n: number }>(`SELECT COUNT(*) AS n FROM ${table} WHERE ${column} = ?`)
      .get(value)!.n;
  }
  return out;
}

describe('npm run admin -- delete', () => {
  let alice: TestAccount;
  let bob: TestAccount;
  let aliceSecond: string;

  beforeAll(async () => {
    alice = await signUp(t.url);
    bob = await signUp(t.url);
    aliceSecond = (await signIn(t.url, alice)).deviceId;
    expect(
      (
        await api(t.url, 'PUT', '/api/backup', {
          token: alice.accessToken,
          body: { backup: randomBytes(64).toString('base64url') },
        })
      ).status,
    ).toBe(204);
    const group = await api(t.url, 'POST', '/api/groups', {
      token: alice.accessToken,
      body: { members: [bob.userId] },
    });
    expect(group.status).toBe(201);
    // Mail both ways while both are offline: bob's entries wait for alice's devices, alice's for bob's.
    const a = await connectDevice(t.url, alice.accessToken, { autoAck: false });
    const b = await connectDevice(t.url, bob.accessToken, { autoAck: false });
    for (let i = 0; i < 3; i++) {
      expect(
        await b.send({
          id: messageId(),
          envelopes: [
            { to: alice.deviceId, body: Buffer.from('to alice') },
            { to: aliceSecond, body: Buffer.from('to alice 2') },
          ],
        }),
      ).toMatchObject({ ok: true });
      expect(
        await a.send({ id: messageId(), envelopes: [{ to: bob.deviceId, body: Buffer.from('to bob') }] }),
      ).toMatchObject({ ok: true });
    }
    a.close();
    b.close();
  });

  it('erases the account and everything of it from the database, and leaves the other account whole', async () => {
    const identifiers = (db: Database.Database): string[] => [
      alice.userId,
      alice.deviceId,
      aliceSecond,
      alice.username,
      ...db
        .prepare<[string], { family_id: string }>('SELECT family_id FROM session_families WHERE user_id = ?')
        .all(alice.userId)
        .map((r) => r.family_id),
    ];
    const bobRows = {
      users: ['user_id', bob.userId],
      devices: ['user_id', bob.userId],
      one_time_prekeys: ['device_id', bob.deviceId],
      session_families: ['user_id', bob.userId],
      mailbox: ['device_id', bob.deviceId],
      sent_ids: ['sender_device_id', bob.deviceId],
      group_members: ['user_id', bob.userId],
    } satisfies Record<string, [string, string]>;
    const before = openDb();
    const ids = identifiers(before);
    const key = alice.identity.publicKey;
    // Baseline: the scan finds alice where she is (users, devices, prekeys, sessions, memberships, mailbox, sent).
    const found = rowsHolding(before, ids, [key]);
    for (const place of [
      'users.user_id',
      'users.identity_key',
      'devices.device_id',
      'session_families.user_id',
      'group_members.user_id',
      'mailbox.device_id',
      'sent_ids.sender_device_id',
      'one_time_prekeys.device_id',
    ]) {
      expect(found).toContain(place);
    }
    const bobBefore = rowCounts(before, bobRows);
    expect(bobBefore.mailbox).toBe(3);
    before.close();

    const res = await admin('delete', alice.username, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/deleted/);

    const after = openDb();
    expect(rowsHolding(after, ids, [key])).toEqual([]);
    expect(rowCounts(after, bobRows)).toEqual(bobBefore);
    after.close();
    // The running relay sees it at once over HTTP: the account's tokens and password are worthless.
    expect((await api(t.url, 'GET', '/api/devices/self/prekeys', { token: alice.accessToken })).status).toBe(401);
    const again = await api(t.url, 'POST', '/api/sessions', {
      body: { username: alice.username, authKey: alice.authKey },
    });
    expect(again.status).toBe(401);
  });

  it('refuses to delete without --yes, and answers an unknown account with exit code 1', async () => {
    const carol = await signUp(t.url);
    const refused = await admin('delete', carol.username);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);
    expect((await api(t.url, 'GET', '/api/devices/self/prekeys', { token: carol.accessToken })).status).toBe(200);
    expect((await admin('delete', 'nobody_here', '--yes')).code).toBe(1);
  });
});

describe('the other admin commands', () => {
  it('deactivates an account (sign-in refused, sessions revoked) and reactivates it', async () => {
    const dave = await signUp(t.url);
    expect((await admin('deactivate', dave.username)).code).toBe(0);
    const refresh = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: dave.refreshToken } });
    expect(refresh.status).toBe(401);
    const signin = await api(t.url, 'POST', '/api/sessions', {
      body: { username: dave.username, authKey: dave.authKey },
    });
    expect(signin.status).toBe(403);
    expect(signin.body.error.code).toBe('forbidden');
    const listed = JSON.parse(
      (await admin('list', '--json', '--after', dave.username.slice(0, -1), '--limit', '1')).stdout,
    ) as unknown[];
    expect(listed).toEqual([expect.objectContaining({ userId: dave.userId, disabled: true, devices: 1 })]);
    expect((await admin('reactivate', dave.userId)).code).toBe(0);
    expect((await signIn(t.url, dave)).userId).toBe(dave.userId);
  });

  it('revokes every session of an account, and removes one device with its keys and mailbox', async () => {
    const erin = await signUp(t.url);
    const second = await signIn(t.url, erin);
    expect((await admin('revoke', erin.username)).stdout).toMatch(/2 sessions revoked/);
    for (const token of [erin.accessToken, second.accessToken]) {
      expect((await api(t.url, 'GET', '/api/devices/self/prekeys', { token })).status).toBe(401);
    }
    const third = await signIn(t.url, erin, second.deviceId);
    const removed = await admin('remove-device', second.deviceId);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await api(t.url, 'GET', '/api/devices/self/prekeys', { token: third.accessToken })).status).toBe(401);
    const db = openDb();
    // Only the key transparency log's history of the account still names it (issue #16: the entry from when the
    // device was part of the account; erased with the account, see 'npm run admin -- delete').
    expect(rowsHolding(db, [second.deviceId], [])).toEqual(['kt_leaves.entry']);
    db.close();
    expect((await admin('remove-device', second.deviceId)).code).toBe(1);
  });

  it('creates an invite token whose hash alone is stored, and shows the counts', async () => {
    const res = await admin('invite', '--days', '2');
    expect(res.code).toBe(0);
    const token = res.stdout.trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const db = openDb();
    const hash = inviteHash(token);
    const row = db
      .prepare<[Buffer], { expires_at: number }>('SELECT expires_at FROM invites WHERE token_hash = ?')
      .get(hash);
    expect(row?.expires_at).toBeGreaterThan(Date.now() + 47 * 3600 * 1000);
    expect(rowsHolding(db, [token], [])).toEqual([]);
    const users = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM users').get()!.n;
    db.close();
    const counts = JSON.parse((await admin('counts')).stdout) as Record<string, number>;
    expect(counts).toMatchObject({ users, groups: expect.any(Number), mailboxEntries: expect.any(Number) });
  });
});

describe('npm run admin -- compact', () => {
  it('refuses while the relay has the file open, and rewrites it without its free pages once the relay is stopped', async () => {
    const running = await adminIn(t.dataDir, ['compact']);
    expect([running.code, running.stderr]).toEqual([1, expect.stringMatching(/stop the relay first/)]);
    expect((await signUp(t.url)).userId).toEqual(expect.any(String)); // the running relay is untouched

    const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-compact-'));
    try {
      const first = await startRelay({ DATA_DIR: dataDir });
      const grace = await signUp(first.url);
      await first.close();
      // About 4 MB of pages that held something once and are free now (as after migration 016, or a big mailbox).
      const file = join(dataDir, 'weconnect.db');
      const db = new Database(file);
      db.exec('CREATE TABLE filler (b BLOB)');
      const fill = db.prepare('INSERT INTO filler (b) VALUES (randomblob(4000))');
      for (let i = 0; i < 1000; i++) fill.run();
      db.exec('DROP TABLE filler');
      const free = db.pragma('freelist_count', { simple: true }) as number;
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
      expect(free).toBeGreaterThanOrEqual(1000);
      const before = statSync(file).size;

      const compacted = await adminIn(dataDir, ['compact']);
      expect([compacted.code, compacted.stdout]).toEqual([
        0,
        expect.stringMatching(/4096-byte pages, [\d.]+ MB → [\d.]+ MB/),
      ]);
      const state = sqliteFileState(file);
      expect(state).toMatchObject({ freePages: 0, integrity: 'ok' });
      expect(before - state.bytes).toBeGreaterThanOrEqual(free * 4096);
      const again = await startRelay({ DATA_DIR: dataDir });
      try {
        expect((await signIn(again.url, grace)).userId).toBe(grace.userId);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('npm run admin -- page-size', () => {
  it('refuses while the relay has the file open, and rewrites it once the relay is stopped', async () => {
    const running = await adminIn(t.dataDir, ['page-size', '1024']);
    expect([running.code, running.stderr]).toEqual([1, expect.stringMatching(/stop the relay first/)]);
    const db = openDb();
    expect(db.pragma('page_size', { simple: true })).toBe(4096);
    db.close();
    expect((await signUp(t.url)).userId).toEqual(expect.any(String)); // the running relay is untouched

    const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-pagesize-'));
    try {
      const first = await startRelay({ DATA_DIR: dataDir });
      const frank = await signUp(first.url);
      await first.close();
      const changed = await adminIn(dataDir, ['page-size', '1024']);
      expect([changed.code, changed.stdout]).toEqual([0, expect.stringMatching(/4096-byte pages → 1024/)]);
      const again = await startRelay({ DATA_DIR: dataDir });
      try {
        const file = new Database(join(dataDir, 'weconnect.db'), { readonly: true });
        expect(file.pragma('page_size', { simple: true })).toBe(1024);
        file.close();
        expect((await signIn(again.url, frank)).userId).toBe(frank.userId);
      } finally {
        await again.close();
      }
      expect((await adminIn(dataDir, ['page-size', 'big'])).code).toBe(2);
      expect((await adminIn(dataDir, ['page-size', '1000'])).stderr).toMatch(/a power of two/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
