// Block rows of the SQLite store (migration 010). Synchronous; the SqliteStore wraps each call in a Promise.
import type BetterSqlite3 from 'better-sqlite3';
import { immediate } from './statements.js';
import type { Prepare } from './statements.js';

/** Lists for `IN (...)`, well below SQLite's bound-parameter limit. */
const CHUNK = 500;

function inChunks<T>(items: T[], each: (part: T[]) => T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(...each(items.slice(i, i + CHUNK)));
  return out;
}

const marks = (n: number): string => new Array<string>(n).fill('?').join(',');

export class BlockTables {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly prepare: Prepare,
  ) {}

  put(blocker: string, blocked: string, now: number, max: number): 'stored' | 'limit' {
    return immediate(this.db, (): 'stored' | 'limit' => {
      const exists = this.prepare<[string, string]>('SELECT 1 FROM blocks WHERE blocker = ? AND blocked = ?').get(
        blocker,
        blocked,
      );
      if (exists) return 'stored';
      const count =
        this.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM blocks WHERE blocker = ?').get(blocker)?.n ??
        0;
      if (count >= max) return 'limit';
      this.prepare('INSERT INTO blocks (blocker, blocked, created_at) VALUES (?, ?, ?)').run(blocker, blocked, now);
      return 'stored';
    })();
  }

  delete(blocker: string, blocked: string): void {
    this.prepare('DELETE FROM blocks WHERE blocker = ? AND blocked = ?').run(blocker, blocked);
  }

  list(blocker: string): { userId: string; username: string }[] {
    return this.prepare<[string], { user_id: string; username: string }>(
      `SELECT u.user_id, u.username FROM blocks b JOIN users u ON u.user_id = b.blocked
       WHERE b.blocker = ? ORDER BY b.created_at, u.username`,
    )
      .all(blocker)
      .map((r) => ({ userId: r.user_id, username: r.username }));
  }

  usersBlocking(blocked: string, userIds: string[]): string[] {
    return inChunks([...new Set(userIds)], (part) =>
      this.prepare<string[], { blocker: string }>(
        `SELECT blocker FROM blocks WHERE blocked = ? AND blocker IN (${marks(part.length)})`,
      )
        .all(blocked, ...part)
        .map((r) => r.blocker),
    );
  }

  blockedUsers(): string[] {
    // The index blocks_by_blocked (blocked, blocker) is read in order: no sort, no table rows.
    return this.prepare<[], { blocked: string }>('SELECT DISTINCT blocked FROM blocks')
      .all()
      .map((r) => r.blocked);
  }

  devicesBlocking(sender: string, deviceIds: string[]): string[] {
    return inChunks([...new Set(deviceIds)], (part) =>
      this.prepare<string[], { device_id: string }>(
        `SELECT d.device_id FROM devices d JOIN blocks b ON b.blocker = d.user_id AND b.blocked = ?
         WHERE d.device_id IN (${marks(part.length)})`,
      )
        .all(sender, ...part)
        .map((r) => r.device_id),
    );
  }
}
