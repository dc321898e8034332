// Mailbox reads of the SQLite store (a device's entries, their count, a group's recipient devices), prepared once on
// whichever connection reads: the main thread's for fetches, the writer's for group sends inside its transaction.
import type BetterSqlite3 from 'better-sqlite3';
import { BOUND_LIMIT } from './statements.js';
import type { GroupRecipientsOutcome, MailboxEntry } from '../store.js';

interface EntryRow {
  seq: number;
  message_id: string;
  group_id: string | null;
  ts: number;
  body: Buffer;
}

export class MailboxReads {
  private readonly groupExists: BetterSqlite3.Statement<[string], { one: number }>;
  private readonly isMember: BetterSqlite3.Statement<[string, string], { one: number }>;
  private readonly memberDevices: BetterSqlite3.Statement<[string, string], { device_id: string }>;
  private readonly selectEntries: BetterSqlite3.Statement<[string, number, number], EntryRow>;
  private readonly countEntries: BetterSqlite3.Statement<[string], { n: number }>;

  constructor(db: BetterSqlite3.Database) {
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
       WHERE m.device_id = ? AND m.seq > ? ORDER BY m.seq ${BOUND_LIMIT}`,
    );
    this.countEntries = db.prepare('SELECT count(*) AS n FROM mailbox WHERE device_id = ?');
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
}
