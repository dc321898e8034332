// The write side of the SQLite store's hot path: the statements of a write batch (sends, acks, last-seen), prepared
// once, the idempotency records, and a cache of known device ids. `apply` runs inside the writer's transaction (on
// the main thread or on the writer worker); the caller then calls committed() or rolledBack().
import type BetterSqlite3 from 'better-sqlite3';
import { IdempotencyRecords } from './idempotency.js';
import { MailboxReads } from './mailbox-reads.js';
import type { RawOutcome } from './write-outcomes.js';
import type { GroupRecipientsOutcome, MailboxCaps, SendRequest, WriteBatch } from '../store.js';

/** Known device ids kept at most; beyond it the cache starts over (it only saves reads). */
const MAX_KNOWN_DEVICES = 200_000;
/** Devices whose mailbox usage is kept at most; beyond it the longest-kept are dropped (and read again if needed). */
const MAX_USAGE_KEPT = 100_000;
/** Mailbox rows per INSERT statement (8 parameters each). */
const INSERT_CHUNK = 128;
/**
 * Seqs a writer reserves at a time in `counters` (one page write per block, where AUTOINCREMENT wrote one per commit).
 * A writer's start, and a rolled-back batch, leave the rest of its block unused: seqs have gaps, never repeats.
 */
const SEQ_BLOCK = 10_000;
/** (seq, device) pairs per ack DELETE statement; shorter lists are padded up to a power of two. */
const DELETE_CHUNK = 256;
/** seq (filled in when the batch's rows are inserted), device, id, group, ts, body, body id, size. */
const ROW_PARAMS = 8;
const EMPTY = Buffer.alloc(0);

/** A device's mailbox: its entries and the bytes of their bodies. */
interface Usage {
  n: number;
  bytes: number;
}

/**
 * A statement per number of rows or values, prepared on first use (a multi-row INSERT or a `seq IN (…)` list);
 * `raw`: its rows come back as arrays.
 */
class SizedStatements {
  private readonly bySize = new Map<number, BetterSqlite3.Statement<unknown[]>>();
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly sql: (n: number) => string,
    private readonly raw = false,
  ) {}

  get(n: number): BetterSqlite3.Statement<unknown[]> {
    let statement = this.bySize.get(n);
    if (!statement) {
      statement = this.db.prepare(this.sql(n));
      if (this.raw) statement.raw(true);
      this.bySize.set(n, statement);
    }
    return statement;
  }
}

export class MailboxStatements {
  readonly sent: IdempotencyRecords;
  private readonly reads: MailboxReads;
  /**
   * Device ids known to exist, so that a send costs no read per envelope. Devices are deleted by deleteUser and the
   * device removals, which call forgetDevices() when they ran on this connection; a device created later is simply
   * not cached yet. A change committed by another connection to the file (the main thread while this runs on the
   * writer worker, an operator's tool, a test) moves `PRAGMA data_version`, and the cache starts over: a stale id
   * would otherwise fail the whole batch on the mailbox's foreign key.
   */
  private knownDevices = new Set<string>();
  private dataVersion = -1;
  private readonly readDataVersion: BetterSqlite3.Statement<[], number>;
  private readonly deviceExists: BetterSqlite3.Statement<[string], { one: number }>;
  private readonly insertEntries: SizedStatements;
  private readonly deleteEntries: SizedStatements;
  private readonly insertBody: BetterSqlite3.Statement<[number, Uint8Array]>;
  private readonly usage: BetterSqlite3.Statement<[string], { n: number; bytes: number }>;
  private readonly updateLastSeen: BetterSqlite3.Statement<[number, string]>;
  private readonly reserveSeqs: BetterSqlite3.Statement<[number], number>;
  /** The next seq to hand out, and the last of the block reserved (0: none yet, or given up by a rollback). */
  private nextSeq = 0;
  private seqLimit = 0;
  /** The mailbox rows of the batch in progress, ROW_PARAMS values each, inserted at its end in a few statements. */
  private rows: unknown[] = [];
  /**
   * Per device, its mailbox's entries and bytes (what the caps count), read once and then kept up to date by this
   * connection's own inserts and deletes: reading it per send would scan the device's whole mailbox, so a group of
   * offline devices would cost each send (members × entries) index reads. Another connection only ever deletes
   * entries (the sweep; device and account deletions, whose devices are then gone), so a kept figure can only be
   * too high, never too low: the caps hold. The sweep calls forgetUsage() after it (and so, once an hour, every
   * figure is read afresh); a rollback drops them all too.
   */
  private usageKept = new Map<string, Usage>();
  /** Usage reads (each scans the device's entries); for the tests that prove they are not made per send. */
  usageReads = 0;

  constructor(db: BetterSqlite3.Database) {
    this.sent = new IdempotencyRecords(db);
    this.reads = new MailboxReads(db);
    this.deviceExists = db.prepare('SELECT 1 AS one FROM devices WHERE device_id = ?');
    this.readDataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    // A group entry names its body in `bodies` (stored once per send) and holds an empty one itself.
    this.insertEntries = new SizedStatements(
      db,
      (n) =>
        `INSERT INTO mailbox (seq, device_id, message_id, group_id, ts, body, body_id, size) VALUES ${Array.from(
          { length: n },
          () => '(?, ?, ?, ?, ?, ?, ?, ?)',
        ).join(', ')}`,
    );
    // All the batch's acks in one statement (per DELETE_CHUNK pairs): a statement per device journaled its pages
    // once per statement and cost about twice as much per entry. An entry goes only with its own device's ack.
    // What it deleted comes back (device, size), for the kept usage figures.
    this.deleteEntries = new SizedStatements(
      db,
      (n) =>
        `DELETE FROM mailbox WHERE (seq, device_id) IN (VALUES ${Array.from({ length: n }, () => '(?, ?)').join(', ')})
         RETURNING device_id, size`,
      true,
    );
    this.insertBody = db.prepare('INSERT INTO bodies (refs, body) VALUES (?, ?)');
    this.usage = db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM mailbox WHERE device_id = ?');
    this.updateLastSeen = db.prepare('UPDATE users SET last_seen = ? WHERE user_id = ? AND share_presence = 1');
    this.reserveSeqs = db
      .prepare<[number], number>("UPDATE counters SET value = value + ? WHERE name = 'mailbox_seq' RETURNING value")
      .pluck();
  }

  /** The transaction that ran apply() committed. */
  committed(): void {
    this.sent.committed();
  }

  /** The transaction that ran apply() was rolled back. */
  rolledBack(): void {
    this.rows = [];
    // The block's reservation was rolled back with the batch: the next batch reserves afresh, above every seq
    // committed, by this writer or any other.
    this.nextSeq = 0;
    this.seqLimit = 0;
    this.usageKept = new Map();
    this.sent.rolledBack();
  }

  /** Mailbox entries were deleted on another connection (the sweep calls it; a deleted device is never read again). */
  forgetUsage(): void {
    this.usageKept = new Map();
  }

  /** Devices were deleted on this connection: known ids must be read again. */
  forgetDevices(): void {
    this.knownDevices = new Set();
  }

  private deviceKnown(deviceId: string): boolean {
    if (this.knownDevices.has(deviceId)) return true;
    if (!this.deviceExists.get(deviceId)) return false;
    if (this.knownDevices.size >= MAX_KNOWN_DEVICES) this.knownDevices = new Set();
    this.knownDevices.add(deviceId);
    return true;
  }

  /**
   * Writes the batch (inside the caller's transaction). The mailbox rows of all its sends go in at the end, in send
   * order, a few multi-row INSERTs in all, with consecutive seqs from this writer's block.
   */
  apply(batch: WriteBatch, now: number): RawOutcome[] {
    if (batch.sends.length > 0) {
      const version = this.readDataVersion.get() ?? -1;
      if (version !== this.dataVersion) {
        this.dataVersion = version;
        this.forgetDevices();
      }
    }
    // Beyond MAX_USAGE_KEPT devices the longest-kept figures go (a Map iterates in insertion order). Only here,
    // between batches: a figure that counts rows this batch has not inserted yet must not be read again meanwhile.
    for (const oldest of this.usageKept.keys()) {
      if (this.usageKept.size <= MAX_USAGE_KEPT) break;
      this.usageKept.delete(oldest);
    }
    // The batch's acks first: what they delete no longer counts against a send's caps in the same batch (acks wait for
    // a send to commit with: WriteBatcher, ackHoldMs).
    this.deleteAcked(batch.acks);
    const outcomes: RawOutcome[] = new Array<RawOutcome>(batch.sends.length);
    const stored: { outcome: RawOutcome & { status: 'stored' }; firstRow: number }[] = [];
    this.rows = [];
    for (let i = 0; i < batch.sends.length; i++) {
      const firstRow = this.rows.length / ROW_PARAMS;
      const outcome = this.applySend(batch.sends[i] as SendRequest, now, batch.caps);
      outcomes[i] = outcome;
      if (outcome.status === 'stored') stored.push({ outcome, firstRow });
    }
    this.sent.flush();
    const firstSeq = this.insertRows();
    for (const s of stored) s.outcome.firstSeq = firstSeq + s.firstRow;
    for (const seen of batch.lastSeen) this.updateLastSeen.run(seen.ts, seen.userId);
    return outcomes;
  }

  groupRecipients(groupId: string, senderUserId: string, senderDeviceId: string): GroupRecipientsOutcome {
    return this.reads.groupRecipients(groupId, senderUserId, senderDeviceId);
  }

  /** Inserts the staged rows with consecutive seqs; the seq of the first (0 when none). */
  private insertRows(): number {
    const rows = this.rows;
    const total = rows.length / ROW_PARAMS;
    if (total === 0) return 0;
    if (this.nextSeq === 0 || this.nextSeq + total - 1 > this.seqLimit) this.reserveBlock(total);
    const firstSeq = this.nextSeq;
    for (let i = 0; i < total; i++) rows[i * ROW_PARAMS] = firstSeq + i;
    this.nextSeq += total;
    for (let start = 0; start < total; start += INSERT_CHUNK) {
      const n = Math.min(INSERT_CHUNK, total - start);
      const result = this.insertEntries.get(n).run(rows.slice(start * ROW_PARAMS, (start + n) * ROW_PARAMS));
      if (result.changes !== n) throw new Error('a mailbox insert stored fewer rows than it held');
    }
    this.rows = [];
    return firstSeq;
  }

  /**
   * Reserves the next block of seqs, in the batch's transaction: above the counter, which is above every seq any
   * writer has committed. What was left of the block before is never used.
   */
  private reserveBlock(atLeast: number): void {
    const size = Math.max(SEQ_BLOCK, atLeast);
    const last = this.reserveSeqs.get(size);
    if (last === undefined) throw new Error('the database has no mailbox seq counter');
    this.nextSeq = last - size + 1;
    this.seqLimit = last;
  }

  /**
   * Deletes the acked entries, DELETE_CHUNK (seq, device) pairs per statement. A shorter list repeats its first
   * pair up to the next power of two, so that only log2(DELETE_CHUNK) + 1 statements are ever prepared.
   */
  private deleteAcked(acks: WriteBatch['acks']): void {
    let params: unknown[] = [];
    for (const { deviceId, seqs } of acks) {
      for (const seq of seqs) {
        params.push(seq, deviceId);
        if (params.length === 2 * DELETE_CHUNK) {
          this.deleted(this.deleteEntries.get(DELETE_CHUNK).all(params));
          params = [];
        }
      }
    }
    const pairs = params.length / 2;
    if (pairs === 0) return;
    let size = 1;
    while (size < pairs) size *= 2;
    for (let i = pairs; i < size; i++) params.push(params[0], params[1]);
    this.deleted(this.deleteEntries.get(size).all(params));
  }

  /** Takes deleted entries ([device, size] each) off the kept usage of their devices. */
  private deleted(rows: unknown[]): void {
    for (const row of rows as [string, number][]) {
      const used = this.usageKept.get(row[0]);
      if (!used) continue;
      used.n -= 1;
      used.bytes -= row[1];
    }
  }

  /** A device's usage: the kept figure, else read (once) from its entries. */
  private usageOf(deviceId: string): Usage {
    let used = this.usageKept.get(deviceId);
    if (used) return used;
    this.usageReads += 1;
    used = this.usage.get(deviceId) ?? { n: 0, bytes: 0 };
    this.usageKept.set(deviceId, used);
    return used;
  }

  /** A delivery stored without caps: counted in its device's kept usage, if any. */
  private uncapped(to: string, size: number): void {
    const used = this.usageKept.get(to);
    if (!used) return;
    used.n += 1;
    used.bytes += size;
  }

  /** Counts a delivery against its device's caps; false when it would pass one (nothing counted then). */
  private admit(to: string, size: number, caps: MailboxCaps): boolean {
    const used = this.usageOf(to);
    if (used.n + 1 > caps.maxEntries || used.bytes + size > caps.maxBytes) return false;
    used.n += 1;
    used.bytes += size;
    return true;
  }

  private applySend(send: SendRequest, now: number, caps: MailboxCaps | undefined): RawOutcome {
    const previous = this.sent.lookup(send.senderDeviceId, send.id);
    if (previous !== undefined) return { status: 'duplicate', ts: previous };
    const rows = this.rows;

    if (send.target.kind === 'direct') {
      const envelopes = send.target.envelopes;
      for (const env of envelopes) {
        if (!this.deviceKnown(env.to)) return { status: 'unknown_recipient' };
      }
      let kept: number[] | undefined;
      let refused: string[] | undefined;
      if (caps) {
        for (let i = 0; i < envelopes.length; i++) {
          const env = envelopes[i] as (typeof envelopes)[number];
          if (this.admit(env.to, env.body.length, caps)) {
            if (refused) (kept ??= []).push(i);
          } else {
            // The first refusal: every envelope before it was kept.
            if (!refused) kept = Array.from({ length: i }, (_, k) => k);
            (refused ??= []).push(env.to);
          }
        }
        // A send that reaches nobody stores nothing, not even its idempotency record: it may come again.
        if (refused && (kept ?? []).length === 0) return { status: 'mailbox_full' };
      }
      this.sent.record(send.senderDeviceId, send.id, now);
      if (kept) {
        for (const i of kept) {
          const env = envelopes[i] as (typeof envelopes)[number];
          rows.push(0, env.to, send.id, null, now, env.body, null, env.body.length);
        }
      } else {
        for (const env of envelopes) {
          rows.push(0, env.to, send.id, null, now, env.body, null, env.body.length);
          if (!caps) this.uncapped(env.to, env.body.length);
        }
      }
      const outcome: RawOutcome = { status: 'stored', ts: now, firstSeq: 0 };
      if (kept) outcome.kept = kept;
      if (refused) outcome.refused = refused;
      return outcome;
    }

    const { groupId, body } = send.target;
    const recipients = this.reads.groupRecipients(groupId, send.senderUserId, send.senderDeviceId);
    if (recipients.status !== 'ok') return recipients;
    let to = recipients.deviceIds;
    let refused: string[] | undefined;
    if (caps) {
      const admitted: string[] = [];
      for (const device of to) {
        if (this.admit(device, body.length, caps)) admitted.push(device);
        else (refused ??= []).push(device);
      }
      if (refused && admitted.length === 0) return { status: 'mailbox_full' };
      to = admitted;
    }
    this.sent.record(send.senderDeviceId, send.id, now);
    if (to.length > 0) {
      const bodyId = Number(this.insertBody.run(to.length, body).lastInsertRowid);
      for (const device of to) {
        rows.push(0, device, send.id, groupId, now, EMPTY, bodyId, body.length);
        if (!caps) this.uncapped(device, body.length);
      }
    }
    const outcome: RawOutcome = { status: 'stored', ts: now, firstSeq: 0, to };
    if (refused) outcome.refused = refused;
    return outcome;
  }
}
