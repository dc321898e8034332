// Emptying many mailbox entries at once (an account or a device deleted, the TTL sweep) a slice at a time. Every
// connection sets secure_delete, so each deleted byte is overwritten: one full mailbox (64 MiB by default) deleted
// in one statement held the event loop about 400 ms (55 ms without secure_delete), and an account has up to ten
// devices. A slice is a transaction of its own, at most DRAIN_ROWS entries and DRAIN_BYTES of bodies (or one entry),
// with a turn of the event loop between slices.
import type BetterSqlite3 from 'better-sqlite3';
import { BOUND_LIMIT, immediate } from './statements.js';
import type { Prepare } from './statements.js';

export const DRAIN_ROWS = 256;
export const DRAIN_BYTES = 1024 * 1024;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Which entries to drain: `where` picks them (its parameters `params`), `order` is the order slices take them in, and
 * an index must serve both.
 */
interface Selection {
  where: string;
  order: string;
  params: unknown[];
}

/** Deletes every entry `selection` picks, slice by slice; returns how many. */
async function drain(db: BetterSqlite3.Database, prepare: Prepare, selection: Selection): Promise<number> {
  const sizes = prepare<unknown[], { size: number }>(
    `SELECT size FROM mailbox WHERE ${selection.where} ORDER BY ${selection.order} LIMIT ${DRAIN_ROWS}`,
  );
  const remove = prepare(
    `DELETE FROM mailbox WHERE seq IN
       (SELECT seq FROM mailbox WHERE ${selection.where} ORDER BY ${selection.order} ${BOUND_LIMIT})`,
  );
  const slice = immediate(db, (): number => {
    let rows = 0;
    let bytes = 0;
    for (const { size } of sizes.all(...selection.params)) {
      if (rows > 0 && bytes + size > DRAIN_BYTES) break;
      rows++;
      bytes += size;
    }
    return rows === 0 ? 0 : remove.run(...selection.params, rows).changes;
  });
  let deleted = 0;
  for (;;) {
    const n = slice();
    deleted += n;
    if (n === 0) return deleted;
    await nextTurn();
  }
}

/** Deletes the entries of these devices (entries that arrive meanwhile go with the device rows themselves). */
export async function drainDevices(db: BetterSqlite3.Database, prepare: Prepare, deviceIds: string[]): Promise<number> {
  let deleted = 0;
  for (const deviceId of deviceIds) {
    deleted += await drain(db, prepare, { where: 'device_id = ?', order: 'seq', params: [deviceId] });
  }
  return deleted;
}

/** Deletes the entries stored before `before` (ms since the epoch). */
export function drainExpired(db: BetterSqlite3.Database, prepare: Prepare, before: number): Promise<number> {
  return drain(db, prepare, { where: 'ts < ?', order: 'ts, seq', params: [before] });
}
