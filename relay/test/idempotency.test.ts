// The SQLite store's idempotency records and device cache: a resend within the window is a duplicate after the
// entry was acknowledged and deleted, after a reopen, and after a schema-1 database is migrated; pruning goes by
// whole hours after the window; the in-memory index stays compact; deleted devices are not served from the cache.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SentHashIndex, hashSent } from '../src/store/sqlite/idempotency.js';
import { migrate, readMigrations } from '../src/store/sqlite/migrate.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { NewAccount, SendRequest, WriteBatch } from '../src/store/store.js';
import { T0, newAccount } from './store.contract.js';

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-idem-'));
  dirs.push(dir);
  return join(dir, 'weconnect.db');
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const send = (from: NewAccount, id: string, to: string): SendRequest => ({
  senderUserId: from.userId,
  senderDeviceId: from.deviceId,
  id,
  target: { kind: 'direct', envelopes: [{ to, body: Buffer.from('x') }] },
});
const sends = (...list: SendRequest[]): WriteBatch => ({ sends: list, acks: [], lastSeen: [] });

async function twoAccounts(store: SqliteStore): Promise<{ alice: NewAccount; bob: NewAccount }> {
  const alice = newAccount('alice');
  const bob = newAccount('bob');
  await store.createAccount(alice);
  await store.createAccount(bob);
  return { alice, bob };
}

describe('idempotency records (SQLite)', () => {
  it('answers a resend as a duplicate after the entry was acknowledged and deleted, also after a reopen', async () => {
    const file = tempFile();
    const first = new SqliteStore({ file });
    const { alice, bob } = await twoAccounts(first);
    const [stored] = await first.applyWrites(sends(send(alice, 'acked', bob.deviceId)), T0);
    if (stored?.status !== 'stored') throw new Error('not stored');
    await first.applyWrites(
      { sends: [], acks: [{ deviceId: bob.deviceId, seqs: [stored.entries[0]?.seq ?? 0] }], lastSeen: [] },
      T0 + 1,
    );
    expect(await first.countMailbox(bob.deviceId)).toBe(0);
    expect(await first.applyWrites(sends(send(alice, 'acked', bob.deviceId)), T0 + 2)).toEqual([
      { status: 'duplicate', ts: T0 },
    ]);
    await first.close();

    const second = new SqliteStore({ file });
    expect(await second.applyWrites(sends(send(alice, 'acked', bob.deviceId)), T0 + 29 * DAY)).toEqual([
      { status: 'duplicate', ts: T0 },
    ]);
    expect(await second.countMailbox(bob.deviceId)).toBe(0);
    // another id of the same sender, and the same id of another sender, are new sends
    expect((await second.applyWrites(sends(send(alice, 'other', bob.deviceId)), T0 + 29 * DAY))[0]?.status).toBe(
      'stored',
    );
    expect((await second.applyWrites(sends(send(bob, 'acked', alice.deviceId)), T0 + 29 * DAY))[0]?.status).toBe(
      'stored',
    );
    await second.close();
  });

  it('keeps a record for the whole window and prunes it by whole hours after it, in memory too', async () => {
    const file = tempFile();
    const store = new SqliteStore({ file });
    const { alice, bob } = await twoAccounts(store);
    const at = T0 + 30 * 60 * 1000; // the middle of an hour
    await store.applyWrites(sends(send(alice, 'old', bob.deviceId)), at);
    await store.applyWrites(sends(send(alice, 'young', bob.deviceId)), at + 2 * HOUR);

    // a cutoff inside the record's hour keeps it: records live at least until the cutoff passes them
    const window = { mailboxBefore: 0, now: at + 30 * DAY };
    expect((await store.sweepExpired({ ...window, sentBefore: at + 1 })).sent).toBe(0);
    expect(await store.applyWrites(sends(send(alice, 'old', bob.deviceId)), at + 30 * DAY)).toEqual([
      { status: 'duplicate', ts: at },
    ]);

    // once its hour is over the cutoff, it is gone: the same id is a new send; the younger one is kept
    expect((await store.sweepExpired({ ...window, sentBefore: at + HOUR })).sent).toBe(1);
    expect((await store.applyWrites(sends(send(alice, 'old', bob.deviceId)), at + 31 * DAY))[0]?.status).toBe('stored');
    expect(await store.applyWrites(sends(send(alice, 'young', bob.deviceId)), at + 31 * DAY)).toEqual([
      { status: 'duplicate', ts: at + 2 * HOUR },
    ]);
    await store.close();

    // and the pruned record stays gone after a reopen (it was deleted on disk, not only forgotten)
    const reopened = new SqliteStore({ file });
    const db = reopened.db;
    expect(db.prepare('SELECT count(*) AS n FROM sent_ids').get()).toEqual({ n: 2 }); // young, and old's resend
    await reopened.close();
  });

  it('prunes the oldest rows only: a record after a younger one (the clock stepped back) waits, a young one stays', async () => {
    const file = tempFile();
    const store = new SqliteStore({ file });
    const { alice, bob } = await twoAccounts(store);
    const at = T0 + 30 * 60 * 1000;
    const stored = async (id: string, ts: number): Promise<void> => {
      expect((await store.applyWrites(sends(send(alice, id, bob.deviceId)), ts))[0]?.status).toBe('stored');
    };
    await stored('a-old', at);
    await stored('b-young', at + 2 * HOUR);
    await stored('c-old-after-young', at); // committed after b, with an older hour
    await stored('d-young', at + 3 * HOUR);
    const db = store.db;
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'sent_ids_by_bucket'").get()).toBeUndefined();
    const left = (): string[] =>
      db
        .prepare<[], { message_id: string }>('SELECT message_id FROM sent_ids ORDER BY rowid')
        .all()
        .map((r) => r.message_id);

    // a cutoff at b's hour: a goes; c is as old, but waits behind b; b and d are young and stay
    const window = { mailboxBefore: 0, now: at + 30 * DAY };
    expect((await store.sweepExpired({ ...window, sentBefore: at + 2 * HOUR })).sent).toBe(1);
    expect(left()).toEqual(['b-young', 'c-old-after-young', 'd-young']);
    expect(await store.applyWrites(sends(send(alice, 'c-old-after-young', bob.deviceId)), at + 30 * DAY)).toEqual([
      { status: 'duplicate', ts: at },
    ]);
    await stored('a-old', at + 30 * DAY); // pruned: a new send, on disk and in memory

    // a cutoff past d's hour: b, c and d go together; a's new record (30 days later) stays
    expect((await store.sweepExpired({ ...window, sentBefore: at + 4 * HOUR })).sent).toBe(3);
    expect(left()).toEqual(['a-old']);
    await stored('c-old-after-young', at + 31 * DAY);
    // every record old: the table empties; an empty table prunes nothing
    expect((await store.sweepExpired({ ...window, sentBefore: at + 40 * DAY })).sent).toBe(2);
    expect(left()).toEqual([]);
    expect((await store.sweepExpired({ ...window, sentBefore: at + 40 * DAY })).sent).toBe(0);
    await store.close();
  });

  it('recognises the ids of a schema-1 database after migrating it', async () => {
    const file = tempFile();
    const alice = newAccount('alice');
    const db = new Database(file);
    migrate(
      db,
      readMigrations().filter((m) => m.version === 1),
    );
    db.prepare('INSERT INTO sent_messages (sender_device_id, message_id, ts) VALUES (?, ?, ?)').run(
      alice.deviceId,
      'from-v1',
      T0,
    );
    db.close();
    const store = new SqliteStore({ file });
    await store.createAccount(alice);
    expect(await store.applyWrites(sends(send(alice, 'from-v1', alice.deviceId)), T0 + DAY)).toEqual([
      { status: 'duplicate', ts: T0 },
    ]);
    await store.close();
  });

  it('holds 100,000 records in under 7 MB of memory', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const store = new SqliteStore({ file: tempFile() });
    const { alice, bob } = await twoAccounts(store);
    const ids = Array.from({ length: 100_000 }, () => randomBytes(16).toString('base64url'));
    // array buffers are freed by a background sweeper: give it a moment after the collection
    const used = async (): Promise<number> => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 100));
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    // warm up (compiled code, statement caches) with ids that are not counted
    for (let i = 0; i < 2; i++) {
      const warm = Array.from({ length: 5000 }, () => send(alice, randomBytes(16).toString('base64url'), bob.deviceId));
      await store.applyWrites(sends(...warm), T0 - DAY);
    }
    const before = await used();
    for (let i = 0; i < ids.length; i += 5000) {
      const batch = ids.slice(i, i + 5000).map((id) => send(alice, id, bob.deviceId));
      await store.applyWrites(sends(...batch), T0 + i);
    }
    const growth = (await used()) - before;
    // the Map this replaced grew the heap by 10-14 MB per 100,000 ids; the hash index takes 16 bytes a slot and
    // doubles at 70% load: 262,144 slots (4.2 MB) here
    expect(growth).toBeLessThan(7_000_000);
    expect(await store.applyWrites(sends(send(alice, ids[54_321] ?? '', bob.deviceId)), T0 + DAY)).toEqual([
      { status: 'duplicate', ts: T0 + 50_000 },
    ]);
    await store.close();
  }, 60_000);
});

describe('the in-memory hash index', () => {
  it('keeps every rowid of one hash and tries each until one is confirmed', () => {
    const index = new SentHashIndex();
    index.add(7, 42, 1);
    index.add(7, 42, 2);
    index.add(8, 42, 3);
    const tried: number[] = [];
    const found = index.find(7, 42, (rowid) => {
      tried.push(rowid);
      return rowid === 2 ? 'second' : undefined;
    });
    expect(found).toBe('second');
    expect(tried).toEqual([1, 2]);
    expect(index.find(7, 43, () => 'never')).toBeUndefined();
  });

  it('grows, and forgets rowids below a bound', () => {
    const index = new SentHashIndex();
    const out = { hi: 0, lo: 0 };
    for (let i = 1; i <= 10_000; i++) {
      hashSent(1, 2, 'device', String(i), out);
      index.add(out.hi, out.lo, i);
    }
    expect(index.size).toBe(10_000);
    expect(index.byteLength).toBeLessThanOrEqual(16 * 16_384);
    index.retain(5001);
    expect(index.size).toBe(5000);
    hashSent(1, 2, 'device', '5000', out);
    expect(index.find(out.hi, out.lo, (rowid) => rowid)).toBeUndefined();
    hashSent(1, 2, 'device', '5001', out);
    expect(index.find(out.hi, out.lo, (rowid) => rowid)).toBe(5001);
  });
});

describe('the device cache (SQLite)', () => {
  it('refuses a device of a deleted user, after sends to it were accepted', async () => {
    const store = new SqliteStore({ file: tempFile() });
    const { alice, bob } = await twoAccounts(store);
    expect((await store.applyWrites(sends(send(alice, 'a', bob.deviceId)), T0))[0]?.status).toBe('stored');
    expect(await store.deleteUser(bob.userId)).toBe(true);
    expect(await store.applyWrites(sends(send(alice, 'b', bob.deviceId)), T0 + 1)).toEqual([
      { status: 'unknown_recipient' },
    ]);
    // a device that exists now but was unknown before is found
    const carol = newAccount('carol');
    expect(await store.applyWrites(sends(send(alice, 'c', carol.deviceId)), T0 + 2)).toEqual([
      { status: 'unknown_recipient' },
    ]);
    await store.createAccount(carol);
    expect((await store.applyWrites(sends(send(alice, 'c', carol.deviceId)), T0 + 3))[0]?.status).toBe('stored');
    await store.close();
  });

  it('refuses a device deleted behind its back by another connection to the database file', async () => {
    const file = tempFile();
    const store = new SqliteStore({ file });
    const { alice, bob } = await twoAccounts(store);
    expect((await store.applyWrites(sends(send(alice, 'a', bob.deviceId)), T0))[0]?.status).toBe('stored');
    const other = new Database(file);
    other.pragma('foreign_keys = ON');
    other.prepare('DELETE FROM devices WHERE device_id = ?').run(bob.deviceId);
    other.close();
    // the send to the deleted device is refused alone; the other send of the batch is stored
    expect(
      await store.applyWrites(sends(send(alice, 'b', bob.deviceId), send(bob, 'c', alice.deviceId)), T0 + 1),
    ).toEqual([{ status: 'unknown_recipient' }, expect.objectContaining({ status: 'stored' })]);
    await store.close();
  });
});
