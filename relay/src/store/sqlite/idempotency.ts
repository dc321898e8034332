// The idempotency records of the SQLite store: (sending device, message id) → ts of every stored send of the last
// 30 days. The table is append-only, without an index (rowid order is commit order, and pruning deletes the oldest
// rows: PRUNE_SENT), so a send dirties only the table's last page. The lookup index lives in memory, compactly:
// a 53-bit keyed hash and the rowid of each record in typed arrays (16 bytes a slot, about 23–46 bytes a record),
// and every hash hit is confirmed against the row on disk, so a hash collision can never swallow a new message.
import type BetterSqlite3 from 'better-sqlite3';

const HOUR_MS = 3600 * 1000;
const TWO_32 = 4294967296;
/** Records per INSERT statement (5 parameters each). */
const INSERT_CHUNK = 128;
/** Grow the table beyond this share of used slots (linear probing stays short below it). */
const MAX_LOAD = 0.7;

/** The hour a record belongs to; pruning drops whole hours. */
export const sentBucket = (ts: number): number => Math.floor(ts / HOUR_MS);

/**
 * Deletes the records of every hour that ended before the bucket given (so a record lives at least until then): the
 * rows before the first one, in rowid order, of a later hour. Rowids follow commit order, so those are the old
 * hours, read from the start of the table and no further. Should the relay's clock ever step back, a record of an old
 * hour committed after a younger one stays until that one goes: pruning is late then, never early.
 */
export const PRUNE_SENT = `DELETE FROM sent_ids WHERE rowid < coalesce(
  (SELECT rowid FROM sent_ids WHERE bucket >= ? ORDER BY rowid LIMIT 1),
  (SELECT max(rowid) FROM sent_ids) + 1)`;

/** A 53-bit hash split as `hi` (21 bits) and `lo` (32 bits); `lo` picks the slot. */
export interface SentHash {
  hi: number;
  lo: number;
}

/**
 * cyrb53 over (sender length, sender, id), seeded with the database's random seed so that clients cannot aim ids
 * at one run of slots. Not cryptographic: equal hashes are told apart by the row on disk.
 */
export function hashSent(seed1: number, seed2: number, sender: string, id: string, out: SentHash): void {
  let h1 = 0xdeadbeef ^ seed1;
  let h2 = 0x41c6ce57 ^ seed2;
  h1 = Math.imul(h1 ^ sender.length, 2654435761);
  h2 = Math.imul(h2 ^ sender.length, 1597334677);
  for (let i = 0; i < sender.length; i++) {
    const ch = sender.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  for (let i = 0; i < id.length; i++) {
    const ch = id.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  out.hi = h2 & 0x1fffff;
  out.lo = h1 >>> 0;
}

/**
 * An open-addressing (linear probing) multimap from a 53-bit hash to rowids, in three typed arrays. Equal hashes
 * may hold several rowids; the caller confirms each candidate. Entries leave only by `retain` (a rebuild).
 */
export class SentHashIndex {
  private his: Uint32Array;
  private los: Uint32Array;
  /** 0 marks an empty slot (SQLite rowids start at 1). */
  private rowids: Float64Array;
  private mask: number;
  private used = 0;

  constructor(capacity = 1024) {
    let size = 1024;
    while (size < capacity) size *= 2;
    this.his = new Uint32Array(size);
    this.los = new Uint32Array(size);
    this.rowids = new Float64Array(size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.used;
  }

  /** Bytes held by the arrays. */
  get byteLength(): number {
    return this.his.byteLength + this.los.byteLength + this.rowids.byteLength;
  }

  add(hi: number, lo: number, rowid: number): void {
    if (this.used + 1 > (this.mask + 1) * MAX_LOAD) this.resize((this.mask + 1) * 2);
    this.place(hi, lo, rowid);
    this.used++;
  }

  /** Calls `confirm` with each rowid stored under this hash until it returns something other than undefined. */
  find<T>(hi: number, lo: number, confirm: (rowid: number) => T | undefined): T | undefined {
    for (let i = lo & this.mask; ; i = (i + 1) & this.mask) {
      const rowid = this.rowids[i] ?? 0;
      if (rowid === 0) return undefined;
      if (this.los[i] === lo && this.his[i] === hi) {
        const found = confirm(rowid);
        if (found !== undefined) return found;
      }
    }
  }

  /** Keeps only the entries with rowid >= `minRowid` (after the rows below it were deleted). */
  retain(minRowid: number): void {
    const { his, los, rowids } = this;
    let kept = 0;
    for (let i = 0; i < rowids.length; i++) if ((rowids[i] ?? 0) >= minRowid) kept++;
    let size = 1024;
    while (kept > size * MAX_LOAD * 0.5) size *= 2;
    this.allocate(size);
    for (let i = 0; i < rowids.length; i++) {
      const rowid = rowids[i] ?? 0;
      if (rowid !== 0 && rowid >= minRowid) this.place(his[i] ?? 0, los[i] ?? 0, rowid);
    }
    this.used = kept;
  }

  private resize(size: number): void {
    const { his, los, rowids } = this;
    this.allocate(size);
    for (let i = 0; i < rowids.length; i++) {
      const rowid = rowids[i] ?? 0;
      if (rowid !== 0) this.place(his[i] ?? 0, los[i] ?? 0, rowid);
    }
  }

  private allocate(size: number): void {
    this.his = new Uint32Array(size);
    this.los = new Uint32Array(size);
    this.rowids = new Float64Array(size);
    this.mask = size - 1;
  }

  private place(hi: number, lo: number, rowid: number): void {
    let i = lo & this.mask;
    while ((this.rowids[i] ?? 0) !== 0) i = (i + 1) & this.mask;
    this.his[i] = hi;
    this.los[i] = lo;
    this.rowids[i] = rowid;
  }
}

interface SentRow {
  sender_device_id: string;
  message_id: string;
  ts: number;
}

/** The idempotency records: the sent_ids table and its in-memory hash index. Writes join the store's transaction. */
export class IdempotencyRecords {
  private readonly index = new SentHashIndex();
  /** Records written by the transaction in progress, for duplicates within one batch; cleared at its end. */
  private staged = new Map<string, number>();
  /** Their hashes and rowids, which join the index only once the transaction commits. */
  private stagedRows: number[] = [];
  private readonly seed1: number;
  private readonly seed2: number;
  private readonly hash: SentHash = { hi: 0, lo: 0 };
  /** Records of the transaction in progress not yet inserted: 5 parameters each, and their hashes (hi, lo). */
  private pendingParams: unknown[] = [];
  private pendingHashes: number[] = [];
  /** `INSERT … VALUES (…), (…)` by number of rows. */
  private readonly inserts = new Map<number, BetterSqlite3.Statement<unknown[]>>();
  private readonly byRowid: BetterSqlite3.Statement<[number], SentRow>;
  private readonly firstRowid: BetterSqlite3.Statement<[], { first: number | null }>;

  constructor(private readonly db: BetterSqlite3.Database) {
    const seed = db
      .prepare<[], { value: Buffer }>("SELECT value FROM store_meta WHERE name = 'idempotency_seed'")
      .get()?.value;
    if (seed?.length !== 8) throw new Error('the database has no idempotency seed');
    this.seed1 = seed.readUInt32LE(0);
    this.seed2 = seed.readUInt32LE(4);
    this.byRowid = db.prepare('SELECT sender_device_id, message_id, ts FROM sent_ids WHERE rowid = ?');
    this.firstRowid = db.prepare('SELECT min(rowid) AS first FROM sent_ids');
    this.fillMissingKeys();
    const all = db.prepare<[], { rowid: number; key: number }>('SELECT rowid, key FROM sent_ids');
    for (const r of all.iterate()) this.index.add(Math.floor(r.key / TWO_32), r.key % TWO_32, r.rowid);
  }

  /** Records held in memory, and the bytes their index takes. */
  stats(): { records: number; bytes: number } {
    return { records: this.index.size, bytes: this.index.byteLength };
  }

  /** The ts of the stored send (sender, id), or undefined. */
  lookup(sender: string, id: string): number | undefined {
    const staged = this.staged.size > 0 ? this.staged.get(stagedKey(sender, id)) : undefined;
    if (staged !== undefined) return staged;
    hashSent(this.seed1, this.seed2, sender, id, this.hash);
    return this.index.find(this.hash.hi, this.hash.lo, (rowid) => {
      const row = this.byRowid.get(rowid);
      return row && row.sender_device_id === sender && row.message_id === id ? row.ts : undefined;
    });
  }

  /** Stages the record; flush() writes it inside the caller's transaction. lookup() finds it at once. */
  record(sender: string, id: string, ts: number): void {
    hashSent(this.seed1, this.seed2, sender, id, this.hash);
    const { hi, lo } = this.hash;
    this.pendingParams.push(sentBucket(ts), hi * TWO_32 + lo, sender, id, ts);
    this.pendingHashes.push(hi, lo);
    this.staged.set(stagedKey(sender, id), ts);
  }

  /**
   * Inserts the staged records, a few multi-row INSERTs for a whole batch. Their rowids (max + 1 each, the write lock
   * held) are consecutive; the index learns them once the transaction commits.
   */
  flush(): void {
    const total = this.pendingHashes.length / 2;
    for (let start = 0; start < total; start += INSERT_CHUNK) {
      const n = Math.min(INSERT_CHUNK, total - start);
      const result = this.insertStatement(n).run(this.pendingParams.slice(start * 5, (start + n) * 5));
      if (result.changes !== n) throw new Error('an idempotency insert stored fewer rows than it held');
      const first = Number(result.lastInsertRowid) - n + 1;
      for (let i = 0; i < n; i++) {
        const at = (start + i) * 2;
        this.stagedRows.push(this.pendingHashes[at] ?? 0, this.pendingHashes[at + 1] ?? 0, first + i);
      }
    }
    this.pendingParams = [];
    this.pendingHashes = [];
  }

  private insertStatement(n: number): BetterSqlite3.Statement<unknown[]> {
    let statement = this.inserts.get(n);
    if (!statement) {
      statement = this.db.prepare(
        `INSERT INTO sent_ids (bucket, key, sender_device_id, message_id, ts) VALUES ${Array.from(
          { length: n },
          () => '(?, ?, ?, ?, ?)',
        ).join(', ')}`,
      );
      this.inserts.set(n, statement);
    }
    return statement;
  }

  committed(): void {
    const rows = this.stagedRows;
    for (let i = 0; i < rows.length; i += 3) this.index.add(rows[i] ?? 0, rows[i + 1] ?? 0, rows[i + 2] ?? 0);
    this.clearStaged();
  }

  rolledBack(): void {
    this.clearStaged();
  }

  /** Drops from memory the records below the oldest row left on disk (after PRUNE_SENT committed). */
  forgetPruned(): void {
    this.index.retain(this.firstRowid.get()?.first ?? Number.MAX_SAFE_INTEGER);
  }

  private clearStaged(): void {
    if (this.staged.size > 0) this.staged = new Map();
    if (this.stagedRows.length > 0) this.stagedRows = [];
    if (this.pendingHashes.length > 0) {
      this.pendingParams = [];
      this.pendingHashes = [];
    }
  }

  /** Rows carried over from schema 1 have no hash yet (SQL cannot compute it): computed once, here. */
  private fillMissingKeys(): void {
    const missing = this.db
      .prepare<[], SentRow & { rowid: number }>(
        'SELECT rowid, sender_device_id, message_id, ts FROM sent_ids WHERE key IS NULL',
      )
      .all();
    if (missing.length === 0) return;
    const update = this.db.prepare<[number, number]>('UPDATE sent_ids SET key = ? WHERE rowid = ?');
    this.db.transaction(() => {
      for (const r of missing) {
        hashSent(this.seed1, this.seed2, r.sender_device_id, r.message_id, this.hash);
        update.run(this.hash.hi * TWO_32 + this.hash.lo, r.rowid);
      }
    })();
  }
}

/** Device ids are base64url, so a NUL cannot occur in one: the key is unambiguous. */
const stagedKey = (sender: string, id: string): string => `${sender}\u0000${id}`;
