// A prepared-statement cache: compiling a statement costs more than running most of them.
import type BetterSqlite3 from 'better-sqlite3';

/**
 * A LIMIT given per call, for a statement's SQL. SQLite (3.53 here) reads the value bound to a bare `LIMIT ?` while it
 * plans the statement, so every call that binds it makes SQLite prepare the statement again. A read of an empty
 * mailbox took 18 µs so, and takes 3.3–3.7 µs with this form; a read of 20 entries took 87–88 µs, and takes 67–70
 * (two runs of `npx tsx --conditions=source scripts/bench-bound-limit.ts` from relay/). An expression of the
 * parameter is evaluated when the statement runs, as a bare one is, and is not read while planning.
 */
export const BOUND_LIMIT = 'LIMIT ? + 0';

export type Prepare = <P extends unknown[] = unknown[], R = unknown>(source: string) => BetterSqlite3.Statement<P, R>;

export function statementCache(db: BetterSqlite3.Database): Prepare {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return <P extends unknown[] = unknown[], R = unknown>(source: string) => {
    let statement = statements.get(source);
    if (!statement) {
      statement = db.prepare(source);
      statements.set(source, statement);
    }
    return statement as unknown as BetterSqlite3.Statement<P, R>;
  };
}

/**
 * `db.transaction(fn)` that begins IMMEDIATE. The file has two writing connections (the main thread's and the writer
 * worker's): a deferred transaction that reads first and then writes fails with SQLITE_BUSY (no wait) when the other
 * connection committed after its read began; one that takes the write lock at BEGIN waits (busy_timeout) instead.
 */
export function immediate<A extends unknown[], R>(
  db: BetterSqlite3.Database,
  fn: (...args: A) => R,
): (...args: A) => R {
  const transaction = db.transaction(fn);
  return (...args: A) => transaction.immediate(...args);
}
