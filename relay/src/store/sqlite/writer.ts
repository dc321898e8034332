// Who runs the SQLite store's write batches: inline on the main connection, or a writer worker with its own
// connection (worker-writer.ts). Both run MailboxStatements.apply in one IMMEDIATE transaction and answer after COMMIT.
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { MailboxStatements } from './mailbox.js';
import { toOutcomes } from './write-outcomes.js';
import type { RawOutcome } from './write-outcomes.js';
import type { SendOutcome, WriteBatch } from '../store.js';

export type Synchronous = 'FULL' | 'NORMAL';

/**
 * Opens a connection to the store's file with the pragmas every connection uses. busy_timeout matters on each: with
 * a writer worker there are two writing connections, and each waits for the other's commit instead of failing.
 */
export function openConnection(
  file: string,
  synchronous: Synchronous,
  newFilePageSize?: number,
): BetterSqlite3.Database {
  const db = new Database(file);
  // Only a file without pages takes it (before WAL mode writes the first); an existing file keeps its own.
  if (newFilePageSize !== undefined) db.pragma(`page_size = ${newFilePageSize}`);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -65536');
  // A deleted row's bytes (a delivered entry's device, id, time and sealed body) are overwritten with zeros, not
  // left in the page's free space or in free pages for anyone who copies the file: see SqliteStore.emptyWal for the
  // write-ahead log. It costs about 5% of the CPU per delivery at 5,000/s, 1% in the closed loop and nothing
  // measurable at 2,000/s (bench/BEFORE-AFTER-18.md); mailbox-drain.ts keeps big deletions off the event loop.
  db.pragma('secure_delete = ON');
  return db;
}

export interface SqliteWriter {
  /** Commits the batch in one durable transaction; resolves after COMMIT, one outcome per send. */
  apply(batch: WriteBatch, now: number): Promise<SendOutcome[]>;
  /** Devices were deleted on the main connection. */
  forgetDevices(): void;
  /** sent_ids rows were pruned on the main connection: the in-memory index drops them too. */
  forgetPruned(): void;
  /** Mailbox entries were deleted on the main connection: the kept per-device usage is read again. */
  forgetUsage(): void;
  /** Waits for the batches in flight, then stops. */
  close(): Promise<void>;
}

/** Runs one write batch on `mailbox`'s connection; the raw outcomes, after COMMIT (throws after a rollback). */
export function runBatch(
  transaction: BetterSqlite3.Transaction<(batch: WriteBatch, now: number) => RawOutcome[]>,
  mailbox: MailboxStatements,
  batch: WriteBatch,
  now: number,
): RawOutcome[] {
  try {
    // IMMEDIATE: the write lock is taken (or waited for) at BEGIN, so the data_version read and the reads of the
    // batch see the newest commit, and no upgrade from a stale read snapshot can fail with SQLITE_BUSY.
    const raw = transaction.immediate(batch, now);
    mailbox.committed();
    return raw;
  } catch (err) {
    mailbox.rolledBack();
    throw err;
  }
}

/** The write batch prepared for `db`. */
export function batchTransaction(
  db: BetterSqlite3.Database,
  mailbox: MailboxStatements,
): BetterSqlite3.Transaction<(batch: WriteBatch, now: number) => RawOutcome[]> {
  return db.transaction((batch: WriteBatch, now: number) => mailbox.apply(batch, now));
}

/** The writer on the main thread's own connection (SQLITE_WRITER=inline): every commit blocks the event loop. */
export class InlineWriter implements SqliteWriter {
  readonly mailbox: MailboxStatements;
  private readonly transaction: BetterSqlite3.Transaction<(batch: WriteBatch, now: number) => RawOutcome[]>;

  constructor(db: BetterSqlite3.Database) {
    this.mailbox = new MailboxStatements(db);
    this.transaction = batchTransaction(db, this.mailbox);
  }

  apply(batch: WriteBatch, now: number): Promise<SendOutcome[]> {
    try {
      return Promise.resolve(toOutcomes(batch.sends, runBatch(this.transaction, this.mailbox, batch, now)));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  forgetDevices(): void {
    this.mailbox.forgetDevices();
  }

  forgetPruned(): void {
    this.mailbox.sent.forgetPruned();
  }

  forgetUsage(): void {
    this.mailbox.forgetUsage();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
