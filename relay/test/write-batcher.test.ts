// Group commit: sends queued in one turn of the event loop share one transaction, and no sender hears back
// before that transaction has committed. Runs on a real SQLite store whose commits the test can hold back.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WriteBatcher, loopUtilizationProbe } from '../src/service/write-batcher.js';
import type { WriteBatcherOptions } from '../src/service/write-batcher.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { MailboxEntry, SendOutcome, WriteBatch } from '../src/store/store.js';
import { T0, newAccount } from './store.contract.js';

/** Resolves after the current turn of the event loop and its I/O phase (a later turn, not the same one). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A real SQLite store that records each batch and can hold its commits until released. */
class GatedStore extends SqliteStore {
  batches: WriteBatch[] = [];
  private gate: Promise<void> = Promise.resolve();
  private release: () => void = () => undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.release = resolve));
  }
  open(): void {
    this.release();
  }
  override async applyWrites(batch: WriteBatch, now: number): Promise<SendOutcome[]> {
    this.batches.push(batch);
    await this.gate;
    return super.applyWrites(batch, now);
  }
}

let dir: string;
let store: GatedStore;
let committed: MailboxEntry[];
let batcher: WriteBatcher;
const alice = newAccount('alice');
const bob = newAccount('bob');

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weconnect-batcher-'));
  store = new GatedStore({ file: join(dir, 'db') });
  await store.createAccount(alice);
  await store.createAccount(bob);
  committed = [];
  batcher = new WriteBatcher({
    store,
    now: () => T0,
    log: pino({ level: 'silent' }),
    onCommitted: (e) => committed.push(...e),
  });
});
afterEach(async () => {
  await batcher.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends one message from alice to bob under `id` through batcher `b`. */
const sendVia = (b: WriteBatcher) => (id: string) =>
  b.send({
    senderUserId: alice.userId,
    senderDeviceId: alice.deviceId,
    id,
    target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: randomBytes(16) }] },
  });
const send = (id: string) => sendVia(batcher)(id);
const sendIdsOf = (batches: WriteBatch[]): string[][] => batches.map((b) => b.sends.map((s) => s.id));

/** A batcher over the test's store with these options, and a send of one message to bob under a given id. */
function batcherWith(options: Pick<WriteBatcherOptions, 'commitWindowMs' | 'ackHoldMs' | 'loopBusy'>) {
  const b = new WriteBatcher({
    store,
    now: () => T0,
    log: pino({ level: 'silent' }),
    onCommitted: () => undefined,
    ...options,
  });
  return { batcher: b, sendWith: sendVia(b) };
}

describe('the write batcher', () => {
  it('commits sends queued in the same turn in one transaction', async () => {
    const outcomes = await Promise.all(Array.from({ length: 25 }, (_, i) => send(`m${i}`)));
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]?.sends).toHaveLength(25);
    expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
    expect(await store.countMailbox(bob.deviceId)).toBe(25);
  });

  /** A batcher with a commit window, over the test's store; the event loop counts as busy when `busy()` says. */
  const windowedBatcher = (commitWindowMs: number, busy = () => false) =>
    batcherWith({ commitWindowMs, loopBusy: busy });
  const sendIds = () => sendIdsOf(store.batches);

  it('with a commit window, commits sends a few milliseconds apart together; without one, apart', async () => {
    const { batcher: windowed, sendWith } = windowedBatcher(1_000);
    // The first write has none just before it: nothing to gather, so it does not wait.
    await sendWith('w0');
    await nextTurn(); // (what is queued while a commit runs goes next, without a window)
    const first = sendWith('w1');
    await nextTurn();
    // A later turn, and the window still holds w1 back (without a window it would have committed by now).
    expect(sendIds()).toEqual([['w0']]);
    await Promise.all([first, sendWith('w2')]);
    expect(sendIds()).toEqual([['w0'], ['w1', 'w2']]);
    await windowed.close();

    store.batches = [];
    const alone = send('n1');
    await vi.waitFor(() => expect(store.batches).toHaveLength(1)); // n1's commit has begun
    await Promise.all([alone, send('n2')]);
    expect(sendIds()).toEqual([['n1'], ['n2']]);
  });

  it('skips the window for a lone write, for writes too far apart to gather two, and while the event loop is busy', async () => {
    // A window no test waits out: each send is answered only if its commit does not wait.
    const quiet = windowedBatcher(60_000);
    expect((await quiet.sendWith('lone')).status).toBe('stored');
    await quiet.batcher.close();

    // Writes 30 ms apart, with a window of 40 ms: fewer than two would arrive in it, so it is not worth waiting.
    store.batches = [];
    const sparse = windowedBatcher(40);
    await sparse.sendWith('s0');
    await new Promise((resolve) => setTimeout(resolve, 30));
    const s1 = sparse.sendWith('s1');
    await nextTurn();
    expect(sendIds()).toEqual([['s0'], ['s1']]); // s1's commit began after the turn it was sent in
    await s1;
    await sparse.batcher.close();

    store.batches = [];
    const busy = windowedBatcher(60_000, () => true);
    await busy.sendWith('b0');
    const next = busy.sendWith('b1'); // right after b0: the window would hold it, but the loop is busy
    await vi.waitFor(() => expect(store.batches).toHaveLength(2)); // b1's commit has begun without b2
    await Promise.all([next, busy.sendWith('b2')]);
    expect(sendIds()).toEqual([['b0'], ['b1'], ['b2']]);
    await busy.batcher.close();
  });

  it('ends the commit window once 16 sends are queued, whichever turn they arrived in', async () => {
    // A window no test waits out: the sends are answered only if the queue ends it.
    const { batcher: windowed, sendWith } = windowedBatcher(60_000);
    await sendWith('p0');
    await nextTurn();
    const early = Array.from({ length: 5 }, (_, i) => sendWith(`a${i}`));
    await nextTurn();
    const late = Array.from({ length: 10 }, (_, i) => sendWith(`b${i}`));
    await nextTurn();
    expect(sendIds()).toEqual([['p0']]); // 15 queued: the window holds them
    const outcomes = await Promise.all([...early, ...late, sendWith('c0'), sendWith('c1')]);
    expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
    // One commit of all 17: the 16th ended the window, and the 17th, in the same turn, joined it.
    expect(store.batches.map((b) => b.sends.length)).toEqual([1, 17]);
    await windowed.close();
  });

  it('finds the event loop busy after a long synchronous stretch, and not once it has idled', async () => {
    const busy = loopUtilizationProbe(0.5, 50);
    const until = performance.now() + 120;
    while (performance.now() < until); // the event loop held for 120 ms
    expect(busy()).toBe(true);
    await vi.waitFor(() => expect(busy()).toBe(false), { timeout: 5_000, interval: 20 });
  });

  it('answers no sender before the commit, and hands the entries to delivery first', async () => {
    store.hold();
    let answered = false;
    const pending = send('held').then((o) => {
      answered = true;
      expect(committed.map((e) => e.id)).toEqual(['held']);
      return o;
    });
    await vi.waitFor(() => expect(store.batches).toHaveLength(1)); // the commit has begun, and is held
    await nextTurn();
    expect(answered).toBe(false);
    expect(await store.countMailbox(bob.deviceId)).toBe(0);
    store.open();
    expect((await pending).status).toBe('stored');
    expect(answered).toBe(true);
  });

  it('reports a commit the store has not finished, with the sends waiting on it, and its end', async () => {
    const logged: { msg: string; sends?: number; queued?: number; runningMs?: number; tookMs?: number }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const watched = new WriteBatcher({ store, now: () => T0, log, onCommitted: () => undefined, stallWarnMs: 30 });
    const sendOn = (id: string) =>
      watched.send({
        senderUserId: alice.userId,
        senderDeviceId: alice.deviceId,
        id,
        target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: randomBytes(16) }] },
      });
    store.hold();
    const held = [sendOn('s1'), sendOn('s2')];
    // The batcher's commit runs on the immediate its first send scheduled, before this one: s3 is queued behind the
    // held commit in the same turn, before any timer (the stall check) can run. (Polling for the commit instead let
    // the check run first on a busy machine, and report no queued send.)
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.batches).toHaveLength(1); // the commit has begun, and is held
    const queued = sendOn('s3');
    await vi.waitFor(() => expect(logged).toHaveLength(1), { timeout: 5_000, interval: 10 });
    expect(logged[0]).toMatchObject({ msg: 'a store commit has not finished; its senders wait', sends: 2, queued: 1 });
    expect(logged[0]?.runningMs).toBeGreaterThanOrEqual(30);
    expect(watched.waitingSends).toBe(3);
    store.open();
    expect((await Promise.all([...held, queued])).map((o) => o.status)).toEqual(['stored', 'stored', 'stored']);
    expect(logged[1]).toMatchObject({ msg: 'the stalled store commit ended' });
    expect(logged[1]?.tookMs).toBeGreaterThanOrEqual(30);
    expect(watched.waitingSends).toBe(0);
    await watched.close();
    expect(logged).toHaveLength(2); // once per stalled commit: the next commit was not held
  });

  it('queues what arrives during a commit for the next one, in order', async () => {
    store.hold();
    const first = send('first');
    await vi.waitFor(() => expect(store.batches).toHaveLength(1)); // first's commit has begun, and is held
    const later = [send('second'), send('third')];
    batcher.ack(bob.deviceId, [12345]);
    store.open();
    await Promise.all([first, ...later]);
    await batcher.idle();
    expect(store.batches.map((b) => b.sends.map((s) => s.id))).toEqual([['first'], ['second', 'third']]);
    expect(store.batches[1]?.acks).toEqual([{ deviceId: bob.deviceId, seqs: [12345] }]);
    expect(committed.map((e) => e.id)).toEqual(['first', 'second', 'third']);
  });

  it('commits queued writes on close and refuses sends after it', async () => {
    const pending = send('last');
    batcher.seen(bob.userId, T0 + 9);
    await batcher.close();
    expect((await pending).status).toBe('stored');
    expect((await store.getPresence([bob.userId]))[0]?.lastSeen).toBe(T0 + 9);
    await expect(send('too late')).rejects.toMatchObject({ code: 'internal' });
  });

  it('rejects the sends of a batch whose commit failed, and keeps working', async () => {
    const failing = new (class extends GatedStore {
      fail = true;
      override applyWrites(batch: WriteBatch, now: number): Promise<SendOutcome[]> {
        if (this.fail) {
          this.fail = false;
          return Promise.reject(new Error('disk full'));
        }
        return super.applyWrites(batch, now);
      }
    })({ file: join(dir, 'failing') });
    await failing.createAccount(newAccount('carol', { userId: alice.userId, deviceId: alice.deviceId }));
    const b = new WriteBatcher({
      store: failing,
      now: () => T0,
      log: pino({ level: 'silent' }),
      onCommitted: () => undefined,
    });
    const lost = b.send({
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id: 'x',
      target: { kind: 'direct', envelopes: [{ to: alice.deviceId, body: randomBytes(4) }] },
    });
    await expect(lost).rejects.toMatchObject({ code: 'internal' });
    const retry = await b.send({
      senderUserId: alice.userId,
      senderDeviceId: alice.deviceId,
      id: 'x',
      target: { kind: 'direct', envelopes: [{ to: alice.deviceId, body: randomBytes(4) }] },
    });
    expect(retry.status).toBe('stored');
    await b.close();
    await failing.close();
  });

  it('fails only the send whose write fails: the other sends and the acks of its batch are committed', async () => {
    // A real SQLite failure for one row: a trigger that aborts the insert of one message id.
    store.db.exec(
      "CREATE TRIGGER poison BEFORE INSERT ON mailbox WHEN NEW.message_id = 'poison' BEGIN SELECT RAISE(ABORT, 'injected write failure'); END",
    );
    const first = await send('acked later');
    if (first.status !== 'stored') throw new Error('setup: not stored');
    const before = await store.countMailbox(bob.deviceId);
    const ids = ['m0', 'm1', 'm2', 'poison', 'm4', 'm5', 'm6', 'm7'];
    batcher.ack(bob.deviceId, [first.entries[0]!.seq]);
    const results = await Promise.allSettled(ids.map((id) => send(id)));
    results.forEach((r, i) => {
      if (ids[i] === 'poison') expect(r).toMatchObject({ status: 'rejected', reason: { code: 'internal' } });
      else expect(r).toMatchObject({ status: 'fulfilled', value: { status: 'stored' } });
    });
    const stored = await store.fetchMailbox(bob.deviceId, 0, 100, 1 << 20);
    expect(stored.map((e) => e.id)).toEqual(ids.filter((id) => id !== 'poison'));
    expect(await store.countMailbox(bob.deviceId)).toBe(before - 1 + ids.length - 1);
  });
});

describe('the ack hold (ACK_HOLD_MS)', () => {
  /** A batcher whose acks and last-seen times wait `ackHoldMs` for a send; a commit window too, if given. */
  const heldBatcher = (ackHoldMs: number, commitWindowMs = 0) => {
    const { batcher: b, sendWith: sendOutcome } = batcherWith({ ackHoldMs, commitWindowMs, loopBusy: () => false });
    const sendWith = async (id: string): Promise<number> => {
      const outcome = await sendOutcome(id);
      if (outcome.status !== 'stored') throw new Error(`${id}: ${outcome.status}`);
      return outcome.entries[0]!.seq;
    };
    return { batcher: b, sendWith };
  };
  const turns = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await nextTurn();
  };
  /** Rejects if `promise` has not settled within `ms` (a hold that idle() failed to end would take a minute). */
  const within = <T>(promise: Promise<T>, ms: number): Promise<T> =>
    Promise.race([
      promise,
      new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms)),
    ]);

  it('holds acks and last-seen times while no send is queued, and commits them with the next send', async () => {
    const { batcher: b, sendWith } = heldBatcher(60_000);
    const first = await sendWith('s0');
    store.batches = [];
    b.ack(bob.deviceId, [first]);
    b.seen(alice.userId, T0 + 5);
    await turns(5);
    expect(store.batches).toEqual([]); // without the hold they would have committed after the first turn
    expect(await store.countMailbox(bob.deviceId)).toBe(1);
    await sendWith('s1');
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]).toMatchObject({
      sends: [{ id: 's1' }],
      acks: [{ deviceId: bob.deviceId, seqs: [first] }],
      lastSeen: [{ userId: alice.userId, ts: T0 + 5 }],
    });
    expect((await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20)).map((e) => e.id)).toEqual(['s1']);
    await b.close();
  });

  it('commits held acks by themselves when the hold is over', async () => {
    const { batcher: b, sendWith } = heldBatcher(300);
    const first = await sendWith('s0');
    store.batches = [];
    b.ack(bob.deviceId, [first]);
    await turns(3);
    expect(store.batches).toEqual([]);
    await vi.waitFor(() => expect(store.batches).toHaveLength(1), { timeout: 10_000 });
    await b.idle();
    expect(await store.countMailbox(bob.deviceId)).toBe(0);
    await b.close();
  });

  it('ends the hold for idle() (a mailbox read sees the deletions) and at 256 acknowledged entries', async () => {
    const { batcher: b, sendWith } = heldBatcher(60_000);
    const first = await sendWith('s0');
    b.ack(bob.deviceId, [first]);
    await turns(3);
    expect(await store.countMailbox(bob.deviceId)).toBe(1); // held
    await within(b.idle(), 5000);
    expect(await store.countMailbox(bob.deviceId)).toBe(0);
    // idle() while the commit of a send is still running (its sender has its answer; the batcher has not finished):
    // the ack queued meanwhile is not held after that commit either.
    const second = await sendWith('s1');
    b.ack(bob.deviceId, [second]);
    await within(b.idle(), 5000);
    expect(await store.countMailbox(bob.deviceId)).toBe(0);

    store.batches = [];
    b.ack(
      bob.deviceId,
      Array.from({ length: 255 }, (_, i) => 1_000_000 + i),
    );
    await turns(3);
    expect(store.batches).toEqual([]);
    b.ack(bob.deviceId, [2_000_000]);
    await vi.waitFor(() => expect(store.batches).toHaveLength(1), { timeout: 5000 });
    expect(store.batches[0]?.acks[0]?.seqs).toHaveLength(256);
    await b.close();
  });

  it('does not hold the ack of a batch read from the mailbox (given `now`)', async () => {
    const { batcher: b, sendWith } = heldBatcher(60_000);
    const first = await sendWith('s0');
    const second = await sendWith('s1');
    store.batches = [];
    b.ack(bob.deviceId, [first]);
    await turns(3);
    expect(store.batches).toEqual([]);
    b.ack(bob.deviceId, [second], true);
    await vi.waitFor(() => expect(store.batches).toHaveLength(1), { timeout: 5000 });
    expect(store.batches[0]?.acks).toEqual([{ deviceId: bob.deviceId, seqs: [first, second] }]);
    await b.close();
  });

  it('lets the commit window gather the sends that end a hold', async () => {
    // A window of a minute: only the sixteenth queued send ends it, so no stall of the machine can end it early.
    const { batcher: b, sendWith } = heldBatcher(60_000, 60_000);
    const first = await sendWith('w0');
    await nextTurn();
    store.batches = [];
    b.ack(bob.deviceId, [first]);
    const w1 = sendWith('w1');
    await turns(2);
    expect(store.batches).toEqual([]); // w1 ended the hold, and the window now waits for more
    const rest = Array.from({ length: 15 }, (_, i) => `w${i + 2}`);
    await Promise.all([w1, ...rest.map((id) => sendWith(id))]);
    expect(sendIdsOf(store.batches)).toEqual([['w1', ...rest]]);
    expect(store.batches[0]?.acks).toEqual([{ deviceId: bob.deviceId, seqs: [first] }]);
    await b.close();
  });
});
