// Key transparency rows of the SQLite store (migration 013). Synchronous; the SqliteStore wraps each call in a
// Promise. An append is one transaction, so the size (the leaf count) never runs ahead of the stored nodes.
import type BetterSqlite3 from 'better-sqlite3';
import type { KtCosignatureRecord, KtLeafRecord, KtNodeRecord } from '../store.js';
import { BOUND_LIMIT, immediate } from './statements.js';
import type { Prepare } from './statements.js';

interface LeafRow {
  idx: number;
  user_id: string;
  seq: number;
  entry: Buffer;
}

interface CosignatureRow {
  key_id: string;
  size: number;
  root: Buffer;
  timestamp: number;
  line: string;
}

const toLeaf = (r: LeafRow): KtLeafRecord => ({ index: r.idx, userId: r.user_id, seq: r.seq, entry: r.entry });

export class KtTables {
  private readonly appendTx: (leaf: KtLeafRecord, nodes: KtNodeRecord[]) => 'appended' | 'conflict';

  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly prepare: Prepare,
  ) {
    this.appendTx = immediate(this.db, (leaf: KtLeafRecord, nodes: KtNodeRecord[]) => {
      if (this.size() !== leaf.index) return 'conflict';
      const taken = this.prepare<[string, number]>('SELECT 1 FROM kt_leaves WHERE user_id = ? AND seq = ?').get(
        leaf.userId,
        leaf.seq,
      );
      if (taken) return 'conflict';
      this.prepare('INSERT INTO kt_leaves (idx, user_id, seq, entry) VALUES (?, ?, ?, ?)').run(
        leaf.index,
        leaf.userId,
        leaf.seq,
        leaf.entry,
      );
      this.putNodes(nodes);
      return 'appended';
    });
  }

  size(): number {
    return this.prepare<[], { n: number | null }>('SELECT MAX(idx) + 1 AS n FROM kt_leaves').get()?.n ?? 0;
  }

  append(leaf: KtLeafRecord, nodes: KtNodeRecord[]): 'appended' | 'conflict' {
    return this.appendTx(leaf, nodes);
  }

  putNodes(nodes: KtNodeRecord[]): void {
    const put = this.prepare('INSERT OR IGNORE INTO kt_nodes (level, idx, hash) VALUES (?, ?, ?)');
    for (const n of nodes) put.run(n.level, n.index, n.hash);
  }

  nodes(keys: { level: number; index: number }[]): KtNodeRecord[] {
    const get = this.prepare<[number, number], { hash: Buffer }>(
      'SELECT hash FROM kt_nodes WHERE level = ? AND idx = ?',
    );
    return keys.flatMap((k) => {
      const row = get.get(k.level, k.index);
      return row ? [{ level: k.level, index: k.index, hash: row.hash }] : [];
    });
  }

  forget(userId: string): void {
    this.prepare("UPDATE kt_leaves SET user_id = '~' || idx, entry = x'' WHERE user_id = ?").run(userId);
  }

  leaf(index: number): KtLeafRecord | null {
    const row = this.prepare<[number], LeafRow>('SELECT * FROM kt_leaves WHERE idx = ?').get(index);
    return row ? toLeaf(row) : null;
  }

  latestOf(userId: string, size: number): KtLeafRecord | null {
    const row = this.prepare<[string, number], LeafRow>(
      'SELECT * FROM kt_leaves WHERE user_id = ? AND idx < ? ORDER BY idx DESC LIMIT 1',
    ).get(userId, size);
    return row ? toLeaf(row) : null;
  }

  entriesOf(userId: string, from: number, to: number, limit: number): KtLeafRecord[] {
    return this.prepare<[string, number, number, number], LeafRow>(
      `SELECT * FROM kt_leaves WHERE user_id = ? AND idx >= ? AND idx < ? ORDER BY idx ${BOUND_LIMIT}`,
    )
      .all(userId, from, to, limit)
      .map(toLeaf);
  }

  /** Migration 014: upsert, then drop all but the witness's `keep` largest sizes, in one transaction. */
  putCosignature(c: KtCosignatureRecord, keep: number): void {
    this.db
      .transaction(() => {
        this.prepare(
          `INSERT INTO kt_cosignatures (key_id, size, root, timestamp, line) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (key_id, size) DO UPDATE SET root = excluded.root, timestamp = excluded.timestamp, line = excluded.line`,
        ).run(c.keyId, c.size, Buffer.from(c.root), c.timestamp, c.line);
        this.prepare(
          `DELETE FROM kt_cosignatures WHERE key_id = ? AND size NOT IN
         (SELECT size FROM kt_cosignatures WHERE key_id = ? ORDER BY size DESC ${BOUND_LIMIT})`,
        ).run(c.keyId, c.keyId, keep);
      })
      .immediate(); // two writing connections (see immediate() in statements.ts)
  }

  cosignatures(keyIds: string[]): KtCosignatureRecord[] {
    if (keyIds.length === 0) return [];
    return this.prepare<string[], CosignatureRow>(
      `SELECT * FROM kt_cosignatures WHERE key_id IN (${keyIds.map(() => '?').join(', ')}) ORDER BY size DESC, key_id`,
    )
      .all(...keyIds)
      .map((r) => ({ keyId: r.key_id, size: r.size, root: r.root, timestamp: r.timestamp, line: r.line }));
  }
}
