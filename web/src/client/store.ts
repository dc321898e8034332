// LocalStore: typed, sealed access to the engine's IndexedDB. Values are sealed before a transaction opens (an IDB
// transaction closes at the first non-IDB await), then written together so related changes land atomically.

import type { z } from 'zod';
import type { IDBPTransaction, StoreNames } from 'idb';
import type { EngineDB, MessageRow, OutboxRow, SendLogRow, WeConnectDB } from './db';
import {
  contactSchema,
  conversationSummarySchema,
  outboxEntrySchema,
  sendLogEntrySchema,
  storedMessageSchema,
  type Contact,
  type OutboxEntry,
  type SendLogEntry,
} from './schemas';
import type { ChatMessage, Conversation } from './types';
import type { Sealed, Vault } from './vault';
import { ClientError } from './errors';
import { KeyedSerialQueue } from './serial-queue';

type SealedStore = 'secrets' | 'sessions' | 'contacts';
/**
 * A record's key: a string, or an array of parts (IndexedDB array key). Parts are never joined into one string, so no
 * id can spoof another record's key; the vault slot of an array key is its JSON form, unambiguous too.
 */
export type RecordKey = string | readonly string[];

function slotOf(store: SealedStore, key: RecordKey): string {
  return typeof key === 'string' ? `${store}/${key}` : `${store}/${JSON.stringify(key)}`;
}

function idbKey(key: RecordKey): string | string[] {
  return typeof key === 'string' ? key : [...key];
}

/** Pending writes, applied in one readwrite transaction by `LocalStore.commit`. */
export class WriteBatch {
  readonly ops: ((tx: BatchTx) => Promise<unknown>)[] = [];
  readonly stores = new Set<StoreNames<WeConnectDB>>();

  /** Run once the batch has committed (not after a failed commit). */
  readonly committed: (() => void)[] = [];

  add(store: StoreNames<WeConnectDB>, op: (tx: BatchTx) => Promise<unknown>): void {
    this.stores.add(store);
    this.ops.push(op);
  }

  afterCommit(then: () => void): void {
    this.committed.push(then);
  }
}

type BatchTx = IDBPTransaction<WeConnectDB, StoreNames<WeConnectDB>[], 'readwrite'>;

/** A message update staged by `LocalStore.stageMessageUpdate`: whether its row was still there at commit. */
export class StagedUpdate {
  /** True once the committing transaction found the row (and wrote the update). Read it after `commit`. */
  applied = false;
  #settle: (there: boolean) => void = () => undefined;
  /** Settles inside the committing transaction, so that writes which depend on the update can wait for it there. */
  readonly found = new Promise<boolean>((resolve) => (this.#settle = resolve));

  settle(there: boolean): void {
    this.applied = there;
    this.#settle(there);
  }
}

export class LocalStore {
  readonly db: EngineDB;
  readonly vault: Vault;

  #retired: string | null = null;
  readonly #messageChanges = new KeyedSerialQueue();
  #changing = false;

  constructor(db: EngineDB, vault: Vault) {
    this.db = db;
    this.vault = vault;
  }

  /**
   * Refuses every later write (a background task that was already running when the device was removed or signed
   * out must not put a key back after the wipe). IndexedDB runs readwrite transactions on the same stores in the
   * order they were created, so a wipe created after this call comes after every write this store let through.
   */
  retire(why: string): void {
    this.#retired ??= why;
  }

  #assertWritable(): void {
    if (this.#retired !== null)
      throw new ClientError('not_signed_in', `This device's data is closed: ${this.#retired}.`);
  }

  /** Test-only (ChatClient.dangerousTestOnlyAroundCommit): runs every commit, to hold one while others go on. */
  dangerousTestOnlyAroundCommit: ((batch: WriteBatch, commit: () => Promise<void>) => Promise<void>) | null = null;

  async commit(batch: WriteBatch): Promise<void> {
    if (batch.ops.length === 0) return;
    const around = this.dangerousTestOnlyAroundCommit;
    return around ? around(batch, () => this.#commit(batch)) : this.#commit(batch);
  }

  async #commit(batch: WriteBatch): Promise<void> {
    this.#assertWritable();
    const tx = this.db.transaction([...batch.stores], 'readwrite');
    await Promise.all([...batch.ops.map((op) => op(tx)), tx.done]);
    for (const then of batch.committed) then();
  }

  // ── generic sealed key/value stores ──────────────────────────────────────────────────────────────────────

  async read<T>(store: SealedStore, key: RecordKey, schema: z.ZodType<T>): Promise<T | null> {
    const sealed = await this.db.get(store, idbKey(key));
    if (sealed === undefined) return null;
    return this.vault.open(slotOf(store, key), sealed, schema);
  }

  async stage(batch: WriteBatch, store: SealedStore, key: RecordKey, value: unknown): Promise<void> {
    const sealed = await this.vault.seal(slotOf(store, key), value);
    batch.add(store, (tx) => tx.objectStore(store).put(sealed, idbKey(key)));
  }

  stageDelete(batch: WriteBatch, store: SealedStore, key: RecordKey): void {
    batch.add(store, (tx) => tx.objectStore(store).delete(idbKey(key)));
  }

  async write(store: SealedStore, key: RecordKey, value: unknown): Promise<void> {
    const batch = new WriteBatch();
    await this.stage(batch, store, key, value);
    await this.commit(batch);
  }

  /** The string keys that start with `prefix` (array keys are not listed: see `keysUnder`). */
  async keys(store: SealedStore, prefix: string): Promise<string[]> {
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    return (await this.db.getAllKeys(store, range)).filter((k) => typeof k === 'string');
  }

  /** The array keys whose first parts are exactly `parts` (e.g. every device of one user), as string arrays. */
  async keysUnder(store: SealedStore, parts: readonly string[]): Promise<string[][]> {
    // Arrays sort after strings, so [...parts, <any string>] lies between [...parts] and [...parts, []].
    const range = IDBKeyRange.bound([...parts], [...parts, []]);
    const out: string[][] = [];
    for (const k of await this.db.getAllKeys(store, range)) {
      if (Array.isArray(k) && k.length === parts.length + 1 && k.every((p) => typeof p === 'string')) {
        out.push(k as string[]);
      }
    }
    return out;
  }

  // ── contacts ─────────────────────────────────────────────────────────────────────────────────────────────

  contact(userId: string): Promise<Contact | null> {
    return this.read('contacts', userId, contactSchema);
  }

  // ── history ──────────────────────────────────────────────────────────────────────────────────────────────

  async stageMessage(batch: WriteBatch, m: ChatMessage, sort: number): Promise<void> {
    const sealed = await this.vault.seal(`messages/${m.id}`, m);
    const row: MessageRow = { id: m.id, conv: m.conv, sort, sealed };
    batch.add('messages', (tx) => tx.objectStore('messages').put(row));
  }

  /**
   * Stages `m` over its stored row, written only if that row is still there when the batch commits. Every change to
   * a message already stored (a tick, a read mark, an edit, a failure note) reads it, seals the change, and commits
   * later: in between, the disappearing-message sweep may have deleted it, and a plain put would bring the message
   * back with no expiry record left to delete it again. `applied` tells, once the batch committed, whether it was
   * written; a message that is gone must not be shown again either.
   */
  async stageMessageUpdate(batch: WriteBatch, m: ChatMessage, sort: number): Promise<StagedUpdate> {
    if (!this.#changing) throw new Error('A stored message is changed only inside changeMessages()');
    const sealed = await this.vault.seal(`messages/${m.id}`, m);
    const row: MessageRow = { id: m.id, conv: m.conv, sort, sealed };
    const staged = new StagedUpdate();
    batch.add('messages', async (tx) => {
      const messages = tx.objectStore('messages');
      const there = (await messages.getKey(m.id)) !== undefined;
      staged.settle(there);
      if (there) await messages.put(row);
    });
    return staged;
  }

  /**
   * Runs `task`, a change to stored messages (read the rows, seal the change, commit it, tell the page), once every
   * change started before it is done. Two changes must not interleave: one sealed from a row that another has
   * replaced since would write the older row back. A read mark, a tick or our own reaction committed just after an
   * incoming "delete for everyone" would restore the deleted text on this device. One tab writes (boot's lock), so
   * this store sees every writer. Deletes (the disappearing sweep, "delete for me") take no turn: an update writes
   * only a row that is still there (`stageMessageUpdate`). A task must not wait for another change, nor for anything
   * that waits for one (a send's acknowledgement does), or both wait forever.
   */
  changeMessages<T>(task: () => Promise<T>): Promise<T> {
    return this.#messageChanges.run('messages', async () => {
      this.#changing = true;
      try {
        return await task();
      } finally {
        this.#changing = false;
      }
    });
  }

  /** Test-only (ChatClient.dangerousTestOnlyMessageChangesWaiting): changes queued behind the running one. */
  get dangerousTestOnlyChangesWaiting(): number {
    return this.#messageChanges.waiting('messages');
  }

  async message(id: string): Promise<{ message: ChatMessage; sort: number } | null> {
    const row = await this.db.get('messages', id);
    if (!row) return null;
    return { message: await this.openMessage(row), sort: row.sort };
  }

  async openMessage(row: MessageRow): Promise<ChatMessage> {
    const m = await this.vault.open(`messages/${row.id}`, row.sealed, storedMessageSchema);
    if (m.id !== row.id || m.conv !== row.conv) throw new Error(`Stored message ${row.id} does not match its row`);
    return m.failure === undefined ? { ...m, failure: undefined } : m;
  }

  /** One page of a conversation, newest `limit` rows with sort < `before`, returned oldest first. */
  async page(conv: string, before: number | null, limit: number): Promise<{ rows: MessageRow[]; more: boolean }> {
    const upper = before === null ? [conv, Infinity] : [conv, before];
    const range = IDBKeyRange.bound([conv, -Infinity], upper, false, before !== null);
    const rows: MessageRow[] = [];
    let cursor = await this.db.transaction('messages').store.index('byConv').openCursor(range, 'prev');
    while (cursor && rows.length < limit + 1) {
      rows.push(cursor.value);
      cursor = await cursor.continue();
    }
    const more = rows.length > limit;
    return { rows: rows.slice(0, limit).reverse(), more };
  }

  // ── conversations ────────────────────────────────────────────────────────────────────────────────────────

  async stageConversation(batch: WriteBatch, c: Conversation): Promise<void> {
    const { conv, ...summary } = c;
    const sealed: Sealed = await this.vault.seal(`conversations/${conv}`, summary);
    batch.add('conversations', (tx) => tx.objectStore('conversations').put({ conv, sealed }));
  }

  async conversations(): Promise<Conversation[]> {
    const rows = await this.db.getAll('conversations');
    const out: Conversation[] = [];
    for (const row of rows) {
      const s = await this.vault.open(`conversations/${row.conv}`, row.sealed, conversationSummarySchema);
      out.push({ conv: row.conv, ...s });
    }
    return out;
  }

  // ── outbox ───────────────────────────────────────────────────────────────────────────────────────────────

  async stageOutbox(batch: WriteBatch, id: string, conv: string, created: number, entry: OutboxEntry): Promise<void> {
    const sealed = await this.vault.seal(`outbox/${id}`, entry);
    const row: OutboxRow = { id, conv, created, sealed };
    batch.add('outbox', (tx) => tx.objectStore('outbox').put(row));
  }

  async outbox(): Promise<{ row: OutboxRow; entry: OutboxEntry }[]> {
    const rows = await this.db.getAllFromIndex('outbox', 'byCreated');
    const out: { row: OutboxRow; entry: OutboxEntry }[] = [];
    for (const row of rows)
      out.push({ row, entry: await this.vault.open(`outbox/${row.id}`, row.sealed, outboxEntrySchema) });
    return out;
  }

  /** The `created` of the newest outbox row, or 0 when the outbox is empty. */
  async newestOutboxCreated(): Promise<number> {
    const cursor = await this.db.transaction('outbox').store.index('byCreated').openCursor(null, 'prev');
    return cursor?.value.created ?? 0;
  }

  // ── inbound dedupe ───────────────────────────────────────────────────────────────────────────────────────

  async seen(id: string): Promise<boolean> {
    return (await this.db.getKey('seen', id)) !== undefined;
  }

  stageSeen(batch: WriteBatch, id: string, at: number): void {
    batch.add('seen', (tx) => tx.objectStore('seen').put({ id, at }));
  }

  /**
   * Forgets handled ids older than the relay's 30-day idempotency window — but never one handled since `keepSince`,
   * the creation time of the oldest signed prekey this device still holds: a prekey message without a one-time
   * prekey can be accepted again for as long as its signed prekey is held, and its seen id is what refuses the replay.
   */
  async pruneSeen(now: number, keepSince: number): Promise<void> {
    const cutoff = Math.min(now - 31 * 86_400_000, keepSince);
    this.#assertWritable();
    const tx = this.db.transaction('seen', 'readwrite');
    for (let c = await tx.store.openCursor(); c; c = await c.continue()) {
      if (c.value.at < cutoff) await c.delete();
    }
    await tx.done;
  }

  // ── send log (what a `resend` request may ask for) ───────────────────────────────────────────────────────

  async stageSendLog(batch: WriteBatch, id: string, at: number, entry: SendLogEntry): Promise<void> {
    const sealed = await this.vault.seal(`sendlog/${id}`, entry);
    const row: SendLogRow = { id, at, sealed };
    batch.add('sendlog', (tx) => tx.objectStore('sendlog').put(row));
  }

  async sendLog(id: string): Promise<{ at: number; entry: SendLogEntry } | null> {
    const row = await this.db.get('sendlog', id);
    if (!row) return null;
    if (row.id !== id) throw new Error(`Send log row ${id} does not match its key`);
    return { at: row.at, entry: await this.vault.open(`sendlog/${row.id}`, row.sealed, sendLogEntrySchema) };
  }

  /** Forgets sends older than `maxAgeMs`, then the oldest beyond `maxCount`. */
  async pruneSendLog(now: number, maxAgeMs: number, maxCount: number): Promise<void> {
    this.#assertWritable();
    const tx = this.db.transaction('sendlog', 'readwrite');
    const byAt = tx.store.index('byAt');
    for (let c = await byAt.openCursor(IDBKeyRange.upperBound(now - maxAgeMs, true)); c; c = await c.continue()) {
      await c.delete();
    }
    let extra = (await tx.store.count()) - maxCount;
    for (let c = await byAt.openCursor(); c && extra > 0; c = await c.continue(), extra--) await c.delete();
    await tx.done;
  }
}
