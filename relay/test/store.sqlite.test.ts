// The store contract on real SQLite files, plus what only the SQLite backend has: migrations, WAL, durability mode.
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, readMigrations } from '../src/store/sqlite/migrate.js';
import { SqliteStore, rewriteFile } from '../src/store/sqlite/sqlite-store.js';
import type { SendRequest } from '../src/store/store.js';
import { sqliteFileState } from './helpers.js';
import { T0, newAccount, runStoreContract } from './store.contract.js';

const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-store-'));
  dirs.push(dir);
  return join(dir, 'weconnect.db');
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

runStoreContract('SQLite', () => Promise.resolve(new SqliteStore({ file: tempFile() })));
runStoreContract('SQLite with the writer worker', () =>
  Promise.resolve(new SqliteStore({ file: tempFile(), writer: 'worker' })),
);
// SQLITE_PAGE_SIZE=1024: a 300-byte body fills a third of a page, and larger ones run into overflow pages.
runStoreContract('SQLite with 1 KiB pages', () =>
  Promise.resolve(new SqliteStore({ file: tempFile(), newFilePageSize: 1024 })),
);

describe('the SQLite backend', () => {
  it('applies every numbered migration once and records it', async () => {
    const file = tempFile();
    await new SqliteStore({ file }).close();
    await new SqliteStore({ file }).close(); // a second open applies nothing again
    const db = new Database(file, { readonly: true });
    const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
    db.close();
    expect(rows).toEqual(readMigrations().map((m) => ({ version: m.version, name: m.name })));
  });

  it('keeps its data across reopening', async () => {
    const file = tempFile();
    const first = new SqliteStore({ file });
    const account = newAccount('carol');
    await first.createAccount(account);
    await first.close();
    const second = new SqliteStore({ file });
    expect(await second.findUserByUsername('carol')).toMatchObject({ userId: account.userId });
    expect(await second.getSession(account.session.familyId)).toMatchObject({ deviceId: account.deviceId });
    await second.close();
  });

  it('remembers sent ids across reopening (the idempotency index is rebuilt from the table)', async () => {
    const file = tempFile();
    const alice = newAccount('alice');
    const send: SendRequest = {
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id: 'persisted',
      target: { kind: 'direct', envelopes: [{ to: alice.deviceId, body: Buffer.from('x') }] },
    };
    const first = new SqliteStore({ file });
    await first.createAccount(alice);
    await first.applyWrites({ sends: [send], acks: [], lastSeen: [] }, T0);
    await first.close();
    const second = new SqliteStore({ file });
    expect(await second.applyWrites({ sends: [send], acks: [], lastSeen: [] }, T0 + 1)).toEqual([
      { status: 'duplicate', ts: T0 },
    ]);
    await second.close();
  });

  it('forgets the ids of a batch that was rolled back', async () => {
    const store = new SqliteStore({ file: tempFile() });
    const alice = newAccount('alice');
    await store.createAccount(alice);
    const send = (id: string, body: unknown): SendRequest => ({
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id,
      target: { kind: 'direct', envelopes: [{ to: alice.deviceId, body: body as Uint8Array }] },
    });
    const broken = { sends: [send('a', Buffer.from('ok')), send('b', { not: 'bytes' })], acks: [], lastSeen: [] };
    await expect(store.applyWrites(broken, T0)).rejects.toThrow();
    expect(await store.countMailbox(alice.deviceId)).toBe(0);
    const [again] = await store.applyWrites({ sends: [send('a', Buffer.from('ok'))], acks: [], lastSeen: [] }, T0 + 1);
    expect(again?.status).toBe('stored');
    await store.close();
  });

  it('never hands out a seq twice: not after the highest entry is deleted, nor after a reopen', async () => {
    const file = tempFile();
    const [alice, bob] = [newAccount('alice'), newAccount('bob')];
    const sendOne = async (store: SqliteStore, id: string, at: number): Promise<number> => {
      const [out] = await store.applyWrites(
        {
          sends: [
            {
              senderUserId: alice.userId,
              senderDeviceId: alice.deviceId,
              id,
              target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: Buffer.from(id) }] },
            },
          ],
          acks: [],
          lastSeen: [],
        },
        at,
      );
      if (out?.status !== 'stored') throw new Error(`${id} not stored`);
      const seq = out.entries[0]!.seq;
      // acknowledged at once: the mailbox is empty again, and its highest seq gone
      await store.applyWrites({ sends: [], acks: [{ deviceId: bob.deviceId, seqs: [seq] }], lastSeen: [] }, at);
      return seq;
    };
    const first = new SqliteStore({ file });
    await first.createAccount(alice);
    await first.createAccount(bob);
    const seqs = [await sendOne(first, 'a', T0), await sendOne(first, 'b', T0 + 1), await sendOne(first, 'c', T0 + 2)];
    expect(await first.countMailbox(bob.deviceId)).toBe(0);
    await first.close();
    const second = new SqliteStore({ file });
    seqs.push(await sendOne(second, 'd', T0 + 3), await sendOne(second, 'e', T0 + 4));
    await second.close();
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    // one block reserved per start, not a counter write per commit
    const check = new Database(file, { readonly: true });
    expect(check.prepare("SELECT value FROM counters WHERE name = 'mailbox_seq'").get()).toEqual({
      value: seqs[3]! - 1 + 10_000,
    });
    // and SQLite keeps no AUTOINCREMENT sequence of its own to rewrite in every commit
    expect(check.prepare("SELECT count(*) AS n FROM sqlite_sequence WHERE name = 'mailbox'").get()).toEqual({ n: 0 });
    check.close();
  });

  it('gives up the seqs of a rolled-back batch: a writer that starts meanwhile has them, and no insert collides', async () => {
    const file = tempFile();
    const alice = newAccount('alice');
    const send = (id: string, body: unknown): SendRequest => ({
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id,
      target: { kind: 'direct', envelopes: [{ to: alice.deviceId, body: body as Uint8Array }] },
    });
    const one = new SqliteStore({ file });
    await one.createAccount(alice);
    // The first batch reserves a block, then fails at its insert: the reservation is rolled back with it.
    const broken = { sends: [send('a', Buffer.from('ok')), send('b', { not: 'bytes' })], acks: [], lastSeen: [] };
    await expect(one.applyWrites(broken, T0)).rejects.toThrow();
    // Another writer on the file (as the writer worker is) reserves the same numbers and uses three of them.
    const other = new SqliteStore({ file });
    const theirs = await other.applyWrites(
      {
        sends: [send('x', Buffer.from('1')), send('y', Buffer.from('2')), send('z', Buffer.from('3'))],
        acks: [],
        lastSeen: [],
      },
      T0 + 1,
    );
    const taken = theirs.map((o) => (o.status === 'stored' ? o.entries[0]!.seq : 0));
    await other.close();
    const [mine] = await one.applyWrites({ sends: [send('a', Buffer.from('ok'))], acks: [], lastSeen: [] }, T0 + 2);
    expect(mine?.status).toBe('stored');
    expect(mine?.status === 'stored' && mine.entries[0]!.seq).toBeGreaterThan(Math.max(...taken));
    expect(await one.countMailbox(alice.deviceId)).toBe(4);
    await one.close();
  });

  it('carries a mailbox over to the table without AUTOINCREMENT (migration 016): entries, bodies, and seqs above the old', () => {
    const file = tempFile();
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    migrate(
      db,
      readMigrations().filter((m) => m.version <= 15),
    );
    db.prepare(
      "INSERT INTO users (user_id, username, salt, auth_hash, identity_key, created_at) VALUES ('u', 'u', x'00', 'h', x'00', 0)",
    ).run();
    for (const d of ['d1', 'd2'])
      db.prepare("INSERT INTO devices (device_id, user_id, created_at) VALUES (?, 'u', 0)").run(d);
    const insert = db.prepare(
      'INSERT INTO mailbox (device_id, message_id, group_id, ts, body, body_id, size) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    insert.run('d1', 'm1', null, 1, Buffer.from('one'), null, 3);
    const bodyId = Number(
      db.prepare('INSERT INTO bodies (refs, body) VALUES (2, ?)').run(Buffer.from('group')).lastInsertRowid,
    );
    insert.run('d1', 'g1', 'grp', 2, Buffer.alloc(0), bodyId, 5);
    insert.run('d2', 'g1', 'grp', 2, Buffer.alloc(0), bodyId, 5);
    insert.run('d2', 'm9', null, 3, Buffer.from('gone'), null, 4);
    db.prepare("DELETE FROM mailbox WHERE message_id = 'm9'").run(); // the highest seq, 4, is gone; AUTOINCREMENT knew it
    const before = db.prepare('SELECT * FROM mailbox ORDER BY seq').all();
    expect(migrate(db)).toEqual([16]);
    expect(db.prepare('SELECT * FROM mailbox ORDER BY seq').all()).toEqual(before);
    expect(db.prepare("SELECT value FROM counters WHERE name = 'mailbox_seq'").get()).toEqual({ value: 4 });
    // the trigger came along: the group body goes with its last entry
    db.prepare("DELETE FROM mailbox WHERE message_id = 'g1' AND device_id = 'd1'").run();
    expect(db.prepare('SELECT refs FROM bodies WHERE body_id = ?').get(bodyId)).toEqual({ refs: 1 });
    db.prepare("DELETE FROM mailbox WHERE message_id = 'g1'").run();
    expect(db.prepare('SELECT count(*) AS n FROM bodies').get()).toEqual({ n: 0 });
    // and a device's deletion still takes its entries
    db.prepare("DELETE FROM devices WHERE device_id = 'd1'").run();
    expect(db.prepare('SELECT count(*) AS n FROM mailbox').get()).toEqual({ n: 0 });
    expect(db.pragma('foreign_key_check')).toEqual([]);
    db.close();
  });

  it('runs in WAL mode with the chosen synchronous level', async () => {
    const normal = new SqliteStore({ file: tempFile() });
    expect(normal.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(normal.db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    await normal.close();
    const full = new SqliteStore({ file: tempFile(), synchronous: 'FULL' });
    expect(full.db.pragma('synchronous', { simple: true })).toBe(2);
    await full.close();
  });

  it("creates a new file with the page size asked for, and keeps an existing file's", async () => {
    const file = tempFile();
    const small = new SqliteStore({ file, newFilePageSize: 1024 });
    expect([small.pageSize, small.db.pragma('page_size', { simple: true })]).toEqual([1024, 1024]);
    await small.close();
    const reopened = new SqliteStore({ file, newFilePageSize: 4096, writer: 'worker' });
    expect(reopened.pageSize).toBe(1024);
    // The writer worker's own connection commits into the same 1 KiB pages.
    const alice = newAccount('alice');
    await reopened.createAccount(alice);
    const body = Buffer.alloc(3000, 7); // three pages and more: an overflow chain
    const [outcome] = await reopened.applyWrites(
      {
        sends: [
          {
            senderUserId: alice.userId,
            senderDeviceId: alice.deviceId,
            id: 'big',
            target: { kind: 'direct', envelopes: [{ to: alice.deviceId, body }] },
          },
        ],
        acks: [],
        lastSeen: [],
      },
      T0,
    );
    expect(outcome?.status).toBe('stored');
    const [entry] = await reopened.fetchMailbox(alice.deviceId, 0, 10, 1 << 20);
    expect(Buffer.from(entry?.body ?? []).equals(body)).toBe(true);
    await reopened.close();
    expect(new SqliteStore({ file: tempFile() }).pageSize).toBe(4096);
    for (const bad of [1000, 256, 131072, 0.5]) {
      expect(() => new SqliteStore({ file: tempFile(), newFilePageSize: bad }), String(bad)).toThrow(/page size/);
    }
  });

  it('writes fewer bytes to the WAL per message with smaller pages', async () => {
    // What SQLITE_PAGE_SIZE is for: every page a commit changes goes whole into the WAL (and the checkpoint), so a
    // small relay writes about four times fewer bytes per message with 1 KiB pages (a send's commit, then its ack's).
    const walBytes = async (pageSize: number): Promise<number> => {
      const file = tempFile();
      const store = new SqliteStore({ file, newFilePageSize: pageSize });
      const [alice, bob] = [newAccount('alice'), newAccount('bob')];
      await store.createAccount(alice);
      await store.createAccount(bob);
      store.db.pragma('wal_checkpoint(TRUNCATE)');
      expect(statSync(`${file}-wal`).size).toBe(0);
      for (let i = 0; i < 30; i++) {
        const send: SendRequest = {
          senderUserId: alice.userId,
          senderDeviceId: alice.deviceId,
          id: `m${i}`,
          target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: Buffer.alloc(300, i) }] },
        };
        const [stored] = await store.applyWrites({ sends: [send], acks: [], lastSeen: [] }, T0 + i);
        const seqs = stored?.status === 'stored' ? stored.entries.map((e) => e.seq) : [];
        expect(seqs).toHaveLength(1);
        await store.applyWrites({ sends: [], acks: [{ deviceId: bob.deviceId, seqs }], lastSeen: [] }, T0 + i);
      }
      const bytes = statSync(`${file}-wal`).size;
      await store.close();
      return bytes;
    };
    const big = await walBytes(4096);
    const small = await walBytes(1024);
    expect(big).toBeGreaterThan(30 * 2 * 4096); // at least one page per commit, each written whole
    expect(small).toBeLessThan(big / 2);
  });

  it('writes the activity times of devices touched in one turn in one commit, each its latest (a reconnect storm)', async () => {
    const file = tempFile();
    const store = new SqliteStore({ file });
    const accounts = Array.from({ length: 100 }, (_, i) => newAccount(`u${i}`));
    for (const account of accounts) await store.createAccount(account);
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    expect(statSync(`${file}-wal`).size).toBe(0);
    // Every device connects at once; the first also touches twice more (a later time, then an earlier one), and a
    // device that does not exist (removed meanwhile) is among them.
    const first = accounts[0] as (typeof accounts)[number];
    await Promise.all([
      ...accounts.map((a, i) => store.touchDevice(a.deviceId, T0 + 100 + i)),
      store.touchDevice(first.deviceId, T0 + 500),
      store.touchDevice(first.deviceId, T0 + 300),
      store.touchDevice('no-such-device', T0 + 100),
    ]);
    // A commit per touch would have put at least one page per touch (103) into the WAL.
    const frames = statSync(`${file}-wal`).size / (4096 + 24);
    expect(frames).toBeGreaterThan(0);
    expect(frames).toBeLessThan(10);
    for (const [i, account] of accounts.entries()) {
      const [device] = await store.listDevices(account.userId);
      expect(device?.lastActiveAt, account.username).toBe(i === 0 ? T0 + 500 : T0 + 100 + i);
    }
    await store.close();
  });

  it('writes the activity times still waiting when the store closes, and refuses any after', async () => {
    const file = tempFile();
    const store = new SqliteStore({ file });
    const alice = newAccount('alice');
    await store.createAccount(alice);
    const touched = store.touchDevice(alice.deviceId, T0 + 42);
    await store.close();
    await touched;
    await expect(store.touchDevice(alice.deviceId, T0 + 43)).rejects.toThrow('closed');
    const reopened = new SqliteStore({ file });
    expect((await reopened.listDevices(alice.userId))[0]?.lastActiveAt).toBe(T0 + 42);
    await reopened.close();
  });

  it('rewrites an existing file with another page size, and keeps everything in it (npm run admin -- page-size)', async () => {
    const file = tempFile();
    const [alice, bob] = [newAccount('alice'), newAccount('bob')];
    const send = (id: string, body: Buffer): SendRequest => ({
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id,
      target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body }] },
    });
    // Bodies of 300 bytes and of 3,000 (an overflow chain on 1 KiB pages); the first two are acknowledged.
    const bodies = Array.from({ length: 6 }, (_, i) => Buffer.alloc(i % 2 === 0 ? 300 : 3000, i + 1));
    const before = new SqliteStore({ file });
    await before.createAccount(alice);
    await before.createAccount(bob);
    for (const [i, body] of bodies.entries())
      await before.applyWrites({ sends: [send(`m${i}`, body)], acks: [], lastSeen: [] }, T0 + i);
    const stored = await before.fetchMailbox(bob.deviceId, 0, 10, 1 << 20);
    await before.applyWrites(
      { sends: [], acks: [{ deviceId: bob.deviceId, seqs: stored.slice(0, 2).map((e) => e.seq) }], lastSeen: [] },
      T0 + 9,
    );
    const kept = await before.fetchMailbox(bob.deviceId, 0, 10, 1 << 20);
    expect(kept).toHaveLength(4);
    // The file is held open: nothing changes, and the store goes on working.
    expect(() => rewriteFile(file, 1024)).toThrow(/open in another process: stop the relay first/);
    expect([
      before.db.pragma('page_size', { simple: true }),
      before.db.pragma('journal_mode', { simple: true }),
    ]).toEqual([4096, 'wal']);
    await before.close();

    expect(rewriteFile(file, 1024)).toMatchObject({ from: 4096, to: 1024 });
    const check = new Database(file, { readonly: true });
    expect([check.pragma('page_size', { simple: true }), check.pragma('integrity_check', { simple: true })]).toEqual([
      1024,
      'ok',
    ]);
    check.close();
    const after = new SqliteStore({ file });
    expect([after.pageSize, after.db.pragma('journal_mode', { simple: true })]).toEqual([1024, 'wal']);
    expect(await after.findUserByUsername('bob')).toMatchObject({ userId: bob.userId });
    // The unacknowledged entries, whole and in order; a resent id is still a duplicate; new seqs are above the old.
    expect(await after.fetchMailbox(bob.deviceId, 0, 10, 1 << 20)).toEqual(kept);
    expect(await after.applyWrites({ sends: [send('m0', bodies[0]!)], acks: [], lastSeen: [] }, T0 + 20)).toEqual([
      { status: 'duplicate', ts: T0 },
    ]);
    const [fresh] = await after.applyWrites(
      { sends: [send('new', Buffer.alloc(10))], acks: [], lastSeen: [] },
      T0 + 21,
    );
    expect(fresh?.status === 'stored' && fresh.entries[0]!.seq).toBeGreaterThan(stored.at(-1)!.seq);
    await after.close();

    expect(rewriteFile(file, 1024)).toMatchObject({ from: 1024, to: 1024 });
    for (const bad of [1000, 256, 131072, 0.5]) expect(() => rewriteFile(file, bad), String(bad)).toThrow(/page size/);
    expect(() => rewriteFile(`${file}.missing`, 1024)).toThrow();
  });

  it('compacts a file whose mailbox once held much more, and keeps what it holds (npm run admin -- compact)', async () => {
    const file = tempFile();
    const [alice, bob] = [newAccount('alice'), newAccount('bob')];
    const store = new SqliteStore({ file });
    await store.createAccount(alice);
    await store.createAccount(bob);
    // 2,000 entries of 2,000 bytes (about 4 MB), all but the last three acknowledged.
    const sends = Array.from({ length: 2000 }, (_, i): SendRequest => ({
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id: `m${i}`,
      target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: Buffer.alloc(2000, i % 251) }] },
    }));
    for (let i = 0; i < sends.length; i += 200)
      await store.applyWrites({ sends: sends.slice(i, i + 200), acks: [], lastSeen: [] }, T0 + i);
    let seq = 0;
    for (;;) {
      const batch = await store.fetchMailbox(bob.deviceId, seq, 100, 1 << 20);
      const acked = batch.filter((e) => Number(e.id.slice(1)) < sends.length - 3);
      if (acked.length === 0) break;
      await store.applyWrites(
        { sends: [], acks: [{ deviceId: bob.deviceId, seqs: acked.map((e) => e.seq) }], lastSeen: [] },
        T0 + 5000,
      );
      seq = batch.at(-1)!.seq;
    }
    const kept = await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20);
    expect(kept.map((e) => e.id)).toEqual(['m1997', 'm1998', 'm1999']);
    expect(() => rewriteFile(file)).toThrow(/open in another process: stop the relay first/);
    const freePages = store.db.pragma('freelist_count', { simple: true }) as number;
    expect(freePages).toBeGreaterThan(900); // the acknowledged entries' pages, zeroed and free
    await store.close();
    const sizeBefore = statSync(file).size;

    const rewritten = rewriteFile(file);
    expect(rewritten).toMatchObject({ from: 4096, to: 4096 });
    expect(rewritten.bytesBefore).toBeGreaterThanOrEqual(sizeBefore);
    expect(rewritten.bytesAfter).toBe(
      statSync(file).size + (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0),
    );
    // The free pages are gone from the file: it lost at least their bytes.
    const compacted = sqliteFileState(file);
    expect(compacted).toMatchObject({ freePages: 0, integrity: 'ok' });
    expect(sizeBefore - compacted.bytes).toBeGreaterThanOrEqual(freePages * 4096);
    const after = new SqliteStore({ file });
    expect(after.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(await after.fetchMailbox(bob.deviceId, 0, 10, 1 << 20)).toEqual(kept);
    expect(await after.applyWrites({ sends: [sends[0]!], acks: [], lastSeen: [] }, T0 + 9000)).toEqual([
      { status: 'duplicate', ts: T0 },
    ]);
    await after.close();
  });

  it("applies a batch's acks before its sends: an entry acknowledged in the batch frees its place under the caps", async () => {
    const store = new SqliteStore({ file: tempFile() });
    const [alice, bob] = [newAccount('alice'), newAccount('bob')];
    await store.createAccount(alice);
    await store.createAccount(bob);
    const caps = { maxEntries: 2, maxBytes: 1 << 20 };
    const send = (id: string): SendRequest => ({
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id,
      target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: Buffer.from(id) }] },
    });
    const full = await store.applyWrites({ sends: [send('a'), send('b')], acks: [], lastSeen: [], caps }, T0);
    const firstSeq = full[0]?.status === 'stored' ? full[0].entries[0]!.seq : -1;
    const [third] = await store.applyWrites(
      { sends: [send('c')], acks: [{ deviceId: bob.deviceId, seqs: [firstSeq] }], lastSeen: [], caps },
      T0 + 1,
    );
    expect(third).toMatchObject({ status: 'stored', entries: [{ deviceId: bob.deviceId }] });
    expect(third?.status === 'stored' && third.refused).toBeFalsy();
    expect((await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20)).map((e) => e.id)).toEqual(['b', 'c']);
    await store.close();
  });

  it('refuses a database whose schema is newer than this relay', async () => {
    const file = tempFile();
    await new SqliteStore({ file }).close();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, ?, 0)').run('999_future.sql');
    db.close();
    expect(() => new SqliteStore({ file })).toThrow(/newer than this relay/);
  });

  it('stores a group body once for all its recipient devices, and frees it with the last entry', async () => {
    const store = new SqliteStore({ file: tempFile() });
    const [alice, bob, carol] = ['alice', 'bob', 'carol'].map((name) => newAccount(name));
    for (const a of [alice, bob, carol]) await store.createAccount(a!);
    const groupId = 'G'.repeat(22);
    await store.createGroup(
      groupId,
      [alice!, bob!, carol!].map((a, i) => ({ userId: a.userId, admin: i === 0 })),
      T0,
    );
    const body = Buffer.alloc(64 * 1024, 7);
    const [outcome] = await store.applyWrites(
      {
        sends: [
          {
            senderUserId: alice!.userId,
            senderDeviceId: alice!.deviceId,
            id: 'g',
            target: { kind: 'group', groupId, body },
          },
        ],
        acks: [],
        lastSeen: [],
      },
      T0,
    );
    if (outcome?.status !== 'stored') throw new Error('not stored');
    const bodyBytes = () =>
      store.db
        .prepare<[], { n: number; bytes: number }>(
          'SELECT (SELECT count(*) FROM bodies) AS n, (SELECT coalesce(sum(length(body)), 0) FROM bodies) + (SELECT coalesce(sum(length(body)), 0) FROM mailbox) AS bytes',
        )
        .get();
    expect(bodyBytes()).toEqual({ n: 1, bytes: body.length });
    const bobSeq = outcome.entries.find((e) => e.deviceId === bob!.deviceId)?.seq ?? -1;
    await store.applyWrites({ sends: [], acks: [{ deviceId: bob!.deviceId, seqs: [bobSeq] }], lastSeen: [] }, T0);
    expect(bodyBytes()).toEqual({ n: 1, bytes: body.length });
    await store.deleteUser(carol!.userId); // the last entry goes with its device
    expect(bodyBytes()).toEqual({ n: 0, bytes: 0 });
    await store.close();
  });
});
