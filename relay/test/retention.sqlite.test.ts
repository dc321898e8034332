// What someone who copies an honest relay's disk holds of the messages it already delivered (SECURITY.md, Retention):
// the bytes of weconnect.db and its write-ahead log, searched for a random marker inside each sealed body. An entry
// its device acknowledged must leave no copy once the sweep has run; one still waiting must stay, readable.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { NewAccount, SendRequest } from '../src/store/store.js';
import { T0, newAccount } from './store.contract.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Copies of `marker` in the store's files on disk: the database file, and its WAL when there is one. */
function copiesOnDisk(file: string, marker: Buffer): number {
  let copies = 0;
  for (const path of [file, `${file}-wal`]) {
    if (!existsSync(path)) continue;
    const bytes = readFileSync(path);
    for (let at = bytes.indexOf(marker); at !== -1; at = bytes.indexOf(marker, at + 1)) copies++;
  }
  return copies;
}

/** A sealed body as the relay sees it: random bytes, with the marker somewhere inside (`pad` bytes further in). */
function bodyWith(marker: Buffer, pad = 0): Buffer {
  return Buffer.concat([randomBytes(120 + pad), marker, randomBytes(140)]);
}

const direct = (from: NewAccount, id: string, to: string[], body: (to: string) => Buffer): SendRequest => ({
  senderUserId: from.userId,
  senderDeviceId: from.deviceId,
  id,
  target: { kind: 'direct', envelopes: to.map((device) => ({ to: device, body: body(device) })) },
});

describe('a copy of the relay’s SQLite files, after delivery', () => {
  // With 1 KiB pages (SQLITE_PAGE_SIZE) the markers sit 2 KB into their bodies: in overflow pages, freed whole.
  const layouts = [
    { pageSize: 4096, pad: 0 },
    { pageSize: 1024, pad: 2000 },
  ] as const;
  for (const writer of ['inline', 'worker'] as const)
    for (const { pageSize, pad } of layouts)
      it(`holds no byte of an acknowledged entry once the sweep ran, and every byte of one still waiting (${writer} writer, ${pageSize}-byte pages)`, async () => {
        const dir = mkdtempSync(join(tmpdir(), 'weconnect-retention-'));
        dirs.push(dir);
        const file = join(dir, 'weconnect.db');
        const store = new SqliteStore({ file, writer, newFilePageSize: pageSize });
        try {
          const alice = newAccount('alice');
          const bob = newAccount('bob');
          const carol = newAccount('carol');
          for (const account of [alice, bob, carol]) await store.createAccount(account);
          const delivered = randomBytes(24);
          const waiting = randomBytes(24);
          const groupDelivered = randomBytes(24);
          // Bob's and carol's entries share pages: an acknowledged one is a cell among live ones, not a freed page.
          const many = Array.from({ length: 40 }, (_, i) =>
            direct(alice, `filler-${i}`, [bob.deviceId, carol.deviceId], () => randomBytes(300)),
          );
          const group = await store.createGroup(
            'g-retention',
            [
              { userId: alice.userId, admin: true },
              { userId: bob.userId, admin: false },
            ],
            T0,
          );
          const sends: SendRequest[] = [
            ...many.slice(0, 20),
            direct(alice, 'gone', [bob.deviceId], () => bodyWith(delivered, pad)),
            direct(alice, 'kept', [carol.deviceId], () => bodyWith(waiting, pad)),
            {
              senderUserId: alice.userId,
              senderDeviceId: alice.deviceId,
              id: 'group-gone',
              target: { kind: 'group', groupId: group.groupId, body: bodyWith(groupDelivered, pad) },
            },
            ...many.slice(20),
          ];
          const outcomes = await store.applyWrites({ sends, acks: [], lastSeen: [] }, T0);
          const seqsOf = (id: string): number[] => {
            const outcome = outcomes[sends.findIndex((send) => send.id === id)];
            if (outcome?.status !== 'stored') throw new Error(`${id} was not stored`);
            return outcome.entries.map((e) => e.seq);
          };
          // Baseline: before delivery the adversary holds all three (in the WAL, or the file once checkpointed).
          for (const marker of [delivered, waiting, groupDelivered])
            expect(copiesOnDisk(file, marker)).toBeGreaterThan(0);

          await store.applyWrites(
            {
              sends: [],
              acks: [{ deviceId: bob.deviceId, seqs: [...seqsOf('gone'), ...seqsOf('group-gone')] }],
              lastSeen: [],
            },
            T0 + 1,
          );
          await store.sweepExpired({ mailboxBefore: 0, sentBefore: 0, now: T0 + 2 });

          expect(copiesOnDisk(file, delivered)).toBe(0);
          expect(copiesOnDisk(file, groupDelivered)).toBe(0);
          // The search still finds what the relay must keep: carol's entry, on disk and served.
          expect(copiesOnDisk(file, waiting)).toBeGreaterThan(0);
          const carolsMailbox = await store.fetchMailbox(carol.deviceId, 0, 100, 1 << 20);
          expect(carolsMailbox.some((e) => Buffer.from(e.body).includes(waiting))).toBe(true);
          const bobsMailbox = await store.fetchMailbox(bob.deviceId, 0, 100, 1 << 20);
          expect(bobsMailbox).toHaveLength(40);
        } finally {
          await store.close();
        }
      });
});

describe('the sweep’s truncation of the WAL', () => {
  it(
    'waits for no reader of the file: with one reading (an online backup) the sweep ends and leaves the WAL, and the next sweep empties it',
    { timeout: 15_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'weconnect-retention-'));
      dirs.push(dir);
      const file = join(dir, 'weconnect.db');
      const store = new SqliteStore({ file });
      const reader = new Database(file, { readonly: true });
      try {
        const alice = newAccount('alice');
        const bob = newAccount('bob');
        for (const account of [alice, bob]) await store.createAccount(account);
        const delivered = randomBytes(24);
        const [outcome] = await store.applyWrites(
          { sends: [direct(alice, 'gone', [bob.deviceId], () => bodyWith(delivered))], acks: [], lastSeen: [] },
          T0,
        );
        if (outcome?.status !== 'stored') throw new Error('not stored');
        await store.applyWrites(
          { sends: [], acks: [{ deviceId: bob.deviceId, seqs: outcome.entries.map((e) => e.seq) }], lastSeen: [] },
          T0 + 1,
        );
        // Another process holds a read transaction open, as the backup API does while it copies.
        reader.exec('BEGIN');
        reader.prepare('SELECT count(*) FROM mailbox').get();

        // Waiting on the reader's lock (busy_timeout, 5 s a try) would hold the relay's event loop: the sweep must
        // end, with the event loop turning meanwhile, and the delivered entry's earlier page still in the WAL.
        let turns = 0;
        const ticker = setInterval(() => turns++, 20);
        try {
          await store.sweepExpired({ mailboxBefore: 0, sentBefore: 0, now: T0 + 2 });
        } finally {
          clearInterval(ticker);
        }
        expect(turns).toBeGreaterThan(0);
        expect(copiesOnDisk(file, delivered)).toBeGreaterThan(0);

        reader.exec('COMMIT');
        await store.sweepExpired({ mailboxBefore: 0, sentBefore: 0, now: T0 + 3 });
        expect(copiesOnDisk(file, delivered)).toBe(0);
      } finally {
        reader.close();
        await store.close();
      }
    },
  );
});
