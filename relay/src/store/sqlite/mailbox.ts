// The hot path of the SQLite store: the statements of a write batch (sends, acks, last-seen) and mailbox reads,
// prepared once, the idempotency records, and a cache of known device ids. `apply` runs inside the store's
// transaction; the caller then calls committed() or rolledBack().
import type BetterSqlite3 from 'better-sqlite3';
import { IdempotencyRecords } from './idempotency.js';
import type {
  GroupRecipientsOutcome,
  MailboxCaps,
  MailboxEntry,
  SendOutcome,
  SendRequest,
  WriteBatch,
} from '../store.js';

interface EntryRow {
  seq: number;
  message_id: string;
  group_id: string | null;
  ts: number;
  body: Buffer;
}

/** Known device ids kept at most; beyond it the cache starts over (it only saves reads). */
const MAX_KNOWN_DEVICES = 200_000;

export class MailboxStatements {
  readonly sent: IdempotencyRecords;
  /**
   * Device ids known to exist, so that a send costs no read per envelope. Only deleteUser deletes devices, and it
   * calls forgetDevices(); a device created later is simply not cached yet. A change committed by another connection
   * to the file (an operator's tool, a test) moves `PRAGMA data_version`, and the cache starts over: a stale id would
   * otherwise fail the whole batch on the mailbox's foreign key.
   */
  private knownDevices = new Set<string>();
  private dataVersion = -1;
  private readonly readDataVersion: BetterSqlite3.Statement<[], number>;
  private readonly deviceExists: BetterSqlite3.Statement<[string], { one: number }>;
  private readonly insertEntry: BetterSqlite3.Statement<[string, string, number, Uint8Array, number]>;
  private readonly insertGroupEntry: BetterSqlite3.Statement<[string, string, string, number, number, number]>;
  private readonly insertBody: BetterSqlite3.Statement<[number, Uint8Array]>;
  private readonly usage: BetterSqlite3.Statement<[string], { n: number; bytes: number }>;
  private readonly deleteEntry: BetterSqlite3.Statement<[string, number]>;
  private readonly updateLastSeen: BetterSqlite3.Statement<[number, string]>;
  private readonly groupExists: BetterSqlite3.Statement<[string], { one: number }>;
  private readonly isMember: BetterSqlite3.Statement<[string, string], { one: number }>;
  private readonly memberDevices: BetterSqlite3.Statement<[string, string], { device_id: string }>;
  private readonly selectEntries: BetterSqlite3.Statement<[string, number, number], EntryRow>;
  private readonly countEntries: BetterSqlite3.Statement<[string], { n: number }>;

  constructor(db: BetterSqlite3.Database) {
    this.sent = new IdempotencyRecords(db);
    this.deviceExists = db.prepare('SELECT 1 AS one FROM devices WHERE device_id = ?');
    this.readDataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.insertEntry = db.prepare(
      'INSERT INTO mailbox (device_id, message_id, group_id, ts, body, size) VALUES (?, ?, NULL, ?, ?, ?)',
    );
    // A group entry names its body in `bodies` (stored once per send) and holds an empty one itself.
    this.insertGroupEntry = db.prepare(
      `INSERT INTO mailbox (device_id, message_id, group_id, ts, body, body_id, size) VALUES (?, ?, ?, ?, x'', ?, ?)`,
    );
    this.insertBody = db.prepare('INSERT INTO bodies (refs, body) VALUES (?, ?)');
    this.usage = db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM mailbox WHERE device_id = ?');
    this.deleteEntry = db.prepare('DELETE FROM mailbox WHERE device_id = ? AND seq = ?');
    this.updateLastSeen = db.prepare('UPDATE users SET last_seen = ? WHERE user_id = ? AND share_presence = 1');
    this.groupExists = db.prepare('SELECT 1 AS one FROM groups WHERE group_id = ?');
    this.isMember = db.prepare('SELECT 1 AS one FROM group_members WHERE group_id = ? AND user_id = ?');
    this.memberDevices = db.prepare(
      `SELECT d.device_id FROM group_members m JOIN devices d ON d.user_id = m.user_id
       WHERE m.group_id = ? AND d.device_id <> ? AND d.signed_prekey IS NOT NULL
       ORDER BY m.position, d.created_at, d.device_id`,
    );
    this.selectEntries = db.prepare(
      `SELECT m.seq, m.message_id, m.group_id, m.ts, CASE WHEN m.body_id IS NULL THEN m.body ELSE b.body END AS body
       FROM mailbox m LEFT JOIN bodies b ON b.body_id = m.body_id
       WHERE m.device_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`,
    );
    this.countEntries = db.prepare('SELECT count(*) AS n FROM mailbox WHERE device_id = ?');
  }

  /** The transaction that ran apply() committed. */
  committed(): void {
    this.sent.committed();
  }

  /** The transaction that ran apply() was rolled back. */
  rolledBack(): void {
    this.sent.rolledBack();
  }

  /** Devices were deleted: known ids must be read again. */
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

  apply(batch: WriteBatch, now: number): SendOutcome[] {
    if (batch.sends.length > 0) {
      const version = this.readDataVersion.get() ?? -1;
      if (version !== this.dataVersion) {
        this.dataVersion = version;
        this.forgetDevices();
      }
    }
    const usage = new Map<string, { n: number; bytes: number }>();
    const outcomes = batch.sends.map((send) => this.applySend(send, now, batch.caps, usage));
    for (const ack of batch.acks) for (const seq of ack.seqs) this.deleteEntry.run(ack.deviceId, seq);
    for (const seen of batch.lastSeen) this.updateLastSeen.run(seen.ts, seen.userId);
    return outcomes;
  }

  groupRecipients(groupId: string, senderUserId: string, senderDeviceId: string): GroupRecipientsOutcome {
    if (!this.groupExists.get(groupId)) return { status: 'not_found' };
    if (!this.isMember.get(groupId, senderUserId)) return { status: 'forbidden' };
    return { status: 'ok', deviceIds: this.memberDevices.all(groupId, senderDeviceId).map((r) => r.device_id) };
  }

  fetch(deviceId: string, afterSeq: number, limit: number, maxBytes: number): MailboxEntry[] {
    const entries: MailboxEntry[] = [];
    let bytes = 0;
    for (const row of this.selectEntries.iterate(deviceId, afterSeq, limit)) {
      if (entries.length > 0 && bytes + row.body.length > maxBytes) break;
      bytes += row.body.length;
      const entry: MailboxEntry = { deviceId, seq: row.seq, id: row.message_id, ts: row.ts, body: row.body };
      if (row.group_id !== null) entry.group = row.group_id;
      entries.push(entry);
    }
    return entries;
  }

  count(deviceId: string): number {
    return this.countEntries.get(deviceId)?.n ?? 0;
  }

  private applySend(
    send: SendRequest,
    now: number,
    caps: MailboxCaps | undefined,
    usage: Map<string, { n: number; bytes: number }>,
  ): SendOutcome {
    const previous = this.sent.lookup(send.senderDeviceId, send.id);
    if (previous !== undefined) return { status: 'duplicate', ts: previous };

    let deliveries: { to: string; body: Uint8Array }[];
    let group: string | null = null;
    if (send.target.kind === 'direct') {
      for (const env of send.target.envelopes) {
        if (!this.deviceKnown(env.to)) return { status: 'unknown_recipient' };
      }
      deliveries = send.target.envelopes;
    } else {
      const recipients = this.groupRecipients(send.target.groupId, send.senderUserId, send.senderDeviceId);
      if (recipients.status !== 'ok') return recipients;
      group = send.target.groupId;
      const body = send.target.body;
      deliveries = recipients.deviceIds.map((to) => ({ to, body }));
    }

    const refused: string[] = [];
    if (caps) {
      deliveries = deliveries.filter(({ to, body }) => {
        let used = usage.get(to);
        if (!used) {
          used = this.usage.get(to) ?? { n: 0, bytes: 0 };
          usage.set(to, used);
        }
        if (used.n + 1 > caps.maxEntries || used.bytes + body.length > caps.maxBytes) {
          refused.push(to);
          return false;
        }
        used.n += 1;
        used.bytes += body.length;
        return true;
      });
      // A send that reaches nobody stores nothing, not even its idempotency record: it may come again.
      if (deliveries.length === 0 && refused.length > 0) return { status: 'mailbox_full' };
    }

    this.sent.record(send.senderDeviceId, send.id, now);
    let entries: MailboxEntry[];
    if (group === null) {
      entries = deliveries.map(({ to, body }): MailboxEntry => {
        const seq = Number(this.insertEntry.run(to, send.id, now, body, body.length).lastInsertRowid);
        return { deviceId: to, seq, id: send.id, ts: now, body };
      });
    } else {
      const groupId = group;
      const body = send.target.kind === 'group' ? send.target.body : new Uint8Array();
      const bodyId = deliveries.length > 0 ? Number(this.insertBody.run(deliveries.length, body).lastInsertRowid) : 0;
      entries = deliveries.map(({ to }): MailboxEntry => {
        const seq = Number(this.insertGroupEntry.run(to, send.id, groupId, now, bodyId, body.length).lastInsertRowid);
        return { deviceId: to, seq, id: send.id, ts: now, body, group: groupId };
      });
    }
    return refused.length > 0
      ? { status: 'stored', ts: now, entries, refused }
      : { status: 'stored', ts: now, entries };
  }
}
