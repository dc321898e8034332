// The SQLite writer worker (SQLITE_WRITER=worker): the same outcomes and stored bytes as the inline writer, a device
// deleted on the main connection is seen by the worker, a worker that dies fails only its batch (never acked) and
// is replaced, and close() commits what was handed over before it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RelayError } from '../src/errors.js';
import { WriteBatcher } from '../src/service/write-batcher.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { WorkerWriter } from '../src/store/sqlite/worker-writer.js';
import { WriterLostError } from '../src/store/store.js';
import type { MailboxCaps, NewAccount, SendRequest, WriteBatch } from '../src/store/store.js';
import { T0, newAccount } from './store.contract.js';
import { connectDevice, messageId, signUp, startRelay } from './helpers.js';
import type { TestRelay } from './helpers.js';

const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-writer-'));
  dirs.push(dir);
  return join(dir, 'weconnect.db');
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const open: SqliteStore[] = [];
function makeStore(writer: 'inline' | 'worker', file = tempFile()): SqliteStore {
  const store = new SqliteStore({ file, writer });
  open.push(store);
  return store;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function workerOf(store: SqliteStore): WorkerWriter {
  if (!(store.writer instanceof WorkerWriter)) throw new Error('not a worker-writer store');
  return store.writer;
}

const direct = (sender: NewAccount, id: string, envelopes: { to: string; body: Uint8Array }[]): SendRequest => ({
  senderUserId: sender.userId,
  senderDeviceId: sender.deviceId,
  id,
  target: { kind: 'direct', envelopes },
});
const group = (sender: NewAccount, id: string, groupId: string, body: Uint8Array): SendRequest => ({
  senderUserId: sender.userId,
  senderDeviceId: sender.deviceId,
  id,
  target: { kind: 'group', groupId, body },
});
const batch = (sends: SendRequest[], more: Partial<WriteBatch> = {}): WriteBatch => ({
  sends,
  acks: [],
  lastSeen: [],
  ...more,
});

/** Bodies as a socket hands them over: views into one larger buffer, at odd offsets. */
function slicesOf(sizes: number[]): Buffer[] {
  const frame = randomBytes(sizes.reduce((a, b) => a + b + 3, 0));
  let offset = 3;
  return sizes.map((size) => {
    const slice = frame.subarray(offset, offset + size);
    offset += size + 3;
    return slice;
  });
}

describe('the SQLite writer worker', () => {
  it('answers every batch as the inline writer does, and stores the same bytes in the same seqs', async () => {
    const alice = newAccount('alice');
    const bob = newAccount('bob');
    const carol = newAccount('carol');
    const groupId = 'g'.repeat(22);
    const aliceOnly = 'h'.repeat(22);
    const caps: MailboxCaps = { maxEntries: 3, maxBytes: 1 << 20 };
    const [b1, b2, b3, b4, b5, b6, b7, b8] = slicesOf([10, 200, 1, 4096, 33, 7, 64, 5]) as [
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
    ];
    const batches: WriteBatch[] = [
      // Stored, a duplicate within the batch, an unknown recipient beside a good send, a group send.
      batch([
        direct(alice, 'm1', [
          { to: bob.deviceId, body: b1 },
          { to: carol.deviceId, body: b2 },
        ]),
        direct(alice, 'm1', [{ to: bob.deviceId, body: b3 }]),
        direct(alice, 'm2', [{ to: 'x'.repeat(22), body: b3 }]),
        group(alice, 'm3', groupId, b4),
        group(alice, 'm4', 'n'.repeat(22), b4),
        group(carol, 'm5', aliceOnly, b4),
      ]),
      // A duplicate across batches, the caps: bob is at 2 of 3 entries, so one more fits and then none.
      batch(
        [
          direct(alice, 'm1', [{ to: bob.deviceId, body: b5 }]),
          direct(alice, 'm6', [
            { to: bob.deviceId, body: b5 },
            { to: carol.deviceId, body: b6 },
          ]),
          direct(alice, 'm7', [
            { to: bob.deviceId, body: b6 },
            { to: carol.deviceId, body: b7 },
          ]),
          direct(carol, 'm8', [{ to: bob.deviceId, body: b8 }]),
          group(bob, 'm9', groupId, b8),
        ],
        { caps, lastSeen: [{ userId: alice.userId, ts: T0 + 5 }] },
      ),
      // Acks of bob's first entries (seqs 1 and 3 in both stores; acks apply after the sends of their batch)...
      batch([], { acks: [{ deviceId: bob.deviceId, seqs: [1, 3] }] }),
      // ... so that the id refused for a full mailbox is stored now.
      batch([direct(carol, 'm8', [{ to: bob.deviceId, body: b8 }])], { caps }),
    ];

    const answers = [];
    const mailboxes = [];
    for (const writer of ['inline', 'worker'] as const) {
      const store = makeStore(writer);
      for (const account of [alice, bob, carol]) await store.createAccount(account);
      await store.createGroup(
        groupId,
        [
          { userId: alice.userId, admin: true },
          { userId: bob.userId, admin: false },
          { userId: carol.userId, admin: false },
        ],
        T0,
      );
      await store.createGroup(aliceOnly, [{ userId: alice.userId, admin: true }], T0);
      const outcomes = [];
      for (const [i, b] of batches.entries()) outcomes.push(await store.applyWrites(b, T0 + i));
      answers.push(outcomes);
      mailboxes.push(
        await Promise.all(
          [alice, bob, carol].map(async (a) =>
            (await store.fetchMailbox(a.deviceId, 0, 100, 1 << 20)).map((e) => ({ ...e, body: Buffer.from(e.body) })),
          ),
        ),
      );
    }
    const [inline, worker] = answers;
    expect(worker).toEqual(inline);
    expect(mailboxes[1]).toEqual(mailboxes[0]);
    // The comparison means something: every kind of outcome occurred.
    const statuses = new Set(inline?.flat().map((o) => o.status));
    expect([...statuses].sort()).toEqual(
      ['duplicate', 'forbidden', 'mailbox_full', 'not_found', 'stored', 'unknown_recipient'].sort(),
    );
    expect(inline?.flat().some((o) => o.status === 'stored' && o.refused !== undefined)).toBe(true);
    // Stored bodies are the bytes of each view, not of the buffer around it.
    const bobEntries = mailboxes[1]?.[1] ?? [];
    expect(bobEntries.map((e) => e.id)).toEqual(['m6', 'm8']);
    expect(bobEntries.map((e) => e.body)).toEqual([b5, b8].map((b) => Buffer.from(b)));
    expect((mailboxes[1]?.[2] ?? []).map((e) => [e.id, e.body])).toEqual([
      ['m1', Buffer.from(b2)],
      ['m3', Buffer.from(b4)],
      ['m6', Buffer.from(b6)],
    ]);
  });

  it('sees a device deleted on the main connection: a send to it is unknown_recipient and the rest commits', async () => {
    const store = makeStore('worker');
    const alice = newAccount('alice');
    const bob = newAccount('bob');
    await store.createAccount(alice);
    await store.createAccount(bob);
    // The worker now knows bob's device (its cache of device ids).
    const [first] = await store.applyWrites(
      batch([direct(alice, 'a', [{ to: bob.deviceId, body: randomBytes(4) }])]),
      T0,
    );
    expect(first?.status).toBe('stored');

    expect(await store.deleteDevice(bob.deviceId)).not.toBeNull();
    const outcomes = await store.applyWrites(
      batch([
        direct(alice, 'b', [{ to: bob.deviceId, body: randomBytes(4) }]),
        direct(alice, 'c', [{ to: alice.deviceId, body: randomBytes(4) }]),
      ]),
      T0 + 1,
    );
    expect(outcomes.map((o) => o.status)).toEqual(['unknown_recipient', 'stored']);
    expect(await store.countMailbox(alice.deviceId)).toBe(1);
  });

  it('fails the batch in flight when the worker dies before its commit, stores none of it, and replaces the worker', async () => {
    const store = makeStore('worker');
    const alice = newAccount('alice');
    await store.createAccount(alice);
    const send = direct(alice, 'a', [{ to: alice.deviceId, body: randomBytes(4) }]);

    workerOf(store).dangerousTestOnlyExitOnNextBatch('before-commit');
    await expect(store.applyWrites(batch([send]), T0)).rejects.toBeInstanceOf(WriterLostError);
    expect(workerOf(store).exits).toBe(1);
    expect(await store.countMailbox(alice.deviceId)).toBe(0);

    const [again] = await store.applyWrites(batch([send]), T0 + 1);
    expect(again?.status).toBe('stored');
    expect(await store.countMailbox(alice.deviceId)).toBe(1);
  });

  it('fails the batch when the worker dies after its commit; its retry is answered as a duplicate, stored once', async () => {
    const store = makeStore('worker');
    const alice = newAccount('alice');
    await store.createAccount(alice);
    const send = direct(alice, 'a', [{ to: alice.deviceId, body: randomBytes(4) }]);

    workerOf(store).dangerousTestOnlyExitOnNextBatch('after-commit');
    await expect(store.applyWrites(batch([send]), T0)).rejects.toBeInstanceOf(WriterLostError);
    // The new worker reads the idempotency records of the commit from the file.
    expect(await store.applyWrites(batch([send]), T0 + 1)).toEqual([{ status: 'duplicate', ts: T0 }]);
    expect(await store.countMailbox(alice.deviceId)).toBe(1);
  });

  it('commits every batch handed over before close(), then ends the worker', async () => {
    const file = tempFile();
    const store = new SqliteStore({ file, writer: 'worker' });
    const alice = newAccount('alice');
    await store.createAccount(alice);
    const pending = Array.from({ length: 20 }, (_, i) =>
      store.applyWrites(batch([direct(alice, `m${i}`, [{ to: alice.deviceId, body: randomBytes(16) }])]), T0 + i),
    );
    await store.close();
    const outcomes = (await Promise.all(pending)).flat();
    expect(outcomes.map((o) => o.status)).toEqual(Array<string>(20).fill('stored'));
    expect(workerOf(store).exits).toBe(0);

    const reopened = makeStore('inline', file);
    expect(await reopened.countMailbox(alice.deviceId)).toBe(20);
  });
});

describe('the write batcher on a writer worker that dies', () => {
  it('answers internal to every send of the lost batch, retries none of them, and commits its acks again', async () => {
    const store = makeStore('worker');
    const alice = newAccount('alice');
    await store.createAccount(alice);
    const batcher = new WriteBatcher({
      store,
      now: () => T0,
      log: pino({ level: 'silent' }),
      onCommitted: () => undefined,
    });
    const to = (id: string): SendRequest => direct(alice, id, [{ to: alice.deviceId, body: randomBytes(8) }]);
    const first = await batcher.send(to('first'));
    if (first.status !== 'stored') throw new Error('the first send was not stored');

    workerOf(store).dangerousTestOnlyExitOnNextBatch('before-commit');
    // One turn of the event loop: one batch with two sends and an ack.
    const lost = [batcher.send(to('a')), batcher.send(to('b'))];
    batcher.ack(alice.deviceId, [first.entries[0]?.seq ?? 0]);
    for (const answer of await Promise.allSettled(lost)) {
      expect(answer).toMatchObject({ status: 'rejected', reason: expect.any(RelayError) });
      if (answer.status === 'rejected') expect((answer.reason as RelayError).code).toBe('internal');
    }
    await batcher.idle();
    // Neither send was stored behind the senders' backs, and the ack went through on the new worker.
    expect(await store.countMailbox(alice.deviceId)).toBe(0);
    await batcher.close();
  });
});

describe('a relay whose SQLite writer worker dies', () => {
  let t: TestRelay;
  afterEach(async () => {
    await t.close();
  });

  it('answers internal for the send in flight (no ack), keeps serving, and stores a resend once', async () => {
    t = await startRelay({ SQLITE_WRITER: 'worker' });
    const [alice, bob] = await Promise.all([signUp(t.url), signUp(t.url)]);
    const sender = await connectDevice(t.url, alice.accessToken);
    const writer = workerOf(t.relay.store as SqliteStore);

    for (const when of ['before-commit', 'after-commit'] as const) {
      const payload = { id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(32) }] };
      const before = await t.relay.store.countMailbox(bob.deviceId);
      writer.dangerousTestOnlyExitOnNextBatch(when);
      const lost = await sender.send(payload);
      expect(lost, when).toMatchObject({ ok: false, error: { code: 'internal' } });
      const resent = await sender.send(payload);
      expect(resent.ok, when).toBe(true);
      expect(await t.relay.store.countMailbox(bob.deviceId), when).toBe(before + 1);
    }
    const next = await sender.send({ id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(8) }] });
    expect(next.ok).toBe(true);
    expect(writer.exits).toBe(2);
    sender.close();
  });
});
