// The embedded Store backend: one SQLite file in WAL mode through better-sqlite3 (synchronous, so every method's
// work is atomic with respect to the event loop; the Promise wrapper keeps the interface backend-neutral).
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SqliteBlobs } from './blobs.js';
import { BlockTables } from './blocks.js';
import { KtTables } from './transparency.js';
import { migrate } from './migrate.js';
import { GroupTables } from './groups.js';
import { isPageSize } from './page-size.js';
import { PRUNE_SENT, sentBucket } from './idempotency.js';
import { MailboxReads } from './mailbox-reads.js';
import { drainDevices, drainExpired } from './mailbox-drain.js';
import { WorkerWriter } from './worker-writer.js';
import { InlineWriter, openConnection } from './writer.js';
import type { SqliteWriter } from './writer.js';
import { PrekeyTables } from './prekeys.js';
import { TurnBatch } from '../turn-batch.js';
import { BOUND_LIMIT, immediate, statementCache } from './statements.js';
import type { Prepare } from './statements.js';
import type {
  BundleRecord,
  KtCosignatureRecord,
  KtLeafRecord,
  KtNodeRecord,
  DeviceRecord,
  Bytes,
  GroupMemberRecord,
  GroupRecipientsOutcome,
  GroupRecord,
  MailboxEntry,
  NewAccount,
  NewSession,
  PrekeyCounts,
  PrekeyLimits,
  PrekeyUpload,
  PresenceRecord,
  RefreshTokenRecord,
  RotateOutcome,
  SendOutcome,
  SessionRecord,
  AccountSummary,
  Store,
  StoreCounts,
  SweepCutoffs,
  SweepResult,
  UserRecord,
  WriteBatch,
} from '../store.js';

export interface SqliteStoreOptions {
  /** Path of the database file (created when missing). */
  file: string;
  /**
   * NORMAL (default; WAL): a commit survives a crash or SIGKILL of the relay process, but an OS crash or power
   * loss can lose the last commits. FULL: every commit is fsynced before it returns (survives power loss).
   */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * The page size of a database file created by this open (a power of two, 512–65,536 bytes; SQLite's default 4,096).
   * An existing file keeps its own: see `pageSize`. Every page a commit changes is written whole to the WAL and again at
   * the checkpoint, so smaller pages write fewer bytes per message at low rates and cost CPU at high ones
   * (relay/README.md, SQLITE_PAGE_SIZE).
   */
  newFilePageSize?: number;
  /** Where blob files go (default: `blobs` next to the database file). */
  blobDir?: string;
  /**
   * Who commits the write batches (sends, acks, last-seen): `worker` a worker thread with its own connection, so that
   * the main thread keeps serving during each commit (SQLITE_WRITER=auto picks it with SQLITE_SYNCHRONOUS=FULL);
   * `inline` (this option's default) the main thread's connection.
   */
  writer?: 'inline' | 'worker';
}

interface UserRow {
  user_id: string;
  username: string;
  salt: Buffer;
  auth_hash: string;
  identity_key: Buffer;
  share_presence: number;
  last_seen: number | null;
  disabled: number;
}

const toUser = (r: UserRow): UserRecord => ({
  userId: r.user_id,
  username: r.username,
  salt: r.salt,
  authHash: r.auth_hash,
  identityKey: r.identity_key,
  sharePresence: r.share_presence === 1,
  lastSeen: r.last_seen,
  disabled: r.disabled === 1,
});

/** Tries of the sweep's WAL truncation (SqliteStore.emptyWal), 100, 200, ... ms apart. */
const WAL_TRUNCATE_TRIES = 5;

/** Runs `fn` and turns its result or exception into a Promise, as an async backend would. */
function later<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** Splits a list for `IN (...)` queries, well below SQLite's bound-parameter limit. */
function chunks<T>(items: T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** What rewriteFile did: the page sizes before and after, and the file's bytes (with its WAL) before and after. */
export interface Rewritten {
  from: number;
  to: number;
  bytesBefore: number;
  bytesAfter: number;
}

/** The bytes of a database file and of its WAL (0 for a file that is not there). */
function bytesOnDisk(file: string): number {
  const size = (path: string): number => (existsSync(path) ? statSync(path).size : 0);
  return size(file) + size(`${file}-wal`);
}

/**
 * Rewrites an existing database file whole (`npm run admin -- compact`, and `page-size` with `size`): out of WAL mode,
 * VACUUM (with `size`-byte pages, if given), back into WAL mode. The rewritten file holds no free pages: a file that
 * grew (a mailbox that once held many entries, or migration 016's copy of the mailbox) shrinks to what it holds.
 * Refuses while anything else has the file open (the relay must be stopped): the journal mode cannot change then.
 * VACUUM's copy of the database stays in memory, not in a temporary file; on the way, the WAL is checkpointed and
 * deleted, and the rollback journal VACUUM writes is deleted when it is done. With `size` equal to the file's page
 * size, nothing is rewritten.
 */
export function rewriteFile(file: string, size?: number): Rewritten {
  if (size !== undefined && !isPageSize(size))
    throw new Error(`page size ${size}: a power of two from 512 to 65536 bytes`);
  const bytesBefore = bytesOnDisk(file);
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 0');
    const from = db.pragma('page_size', { simple: true }) as number;
    if (size === from) return { from, to: size, bytesBefore, bytesAfter: bytesBefore };
    let mode: unknown;
    try {
      mode = db.pragma('journal_mode = DELETE', { simple: true });
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY') throw err;
    }
    if (mode !== 'delete') throw new Error(`${file} is open in another process: stop the relay first`);
    db.pragma('temp_store = MEMORY');
    if (size !== undefined) db.pragma(`page_size = ${size}`);
    db.exec('VACUUM');
    db.pragma('journal_mode = WAL');
    const to = db.pragma('page_size', { simple: true }) as number;
    if (size !== undefined && to !== size) throw new Error(`SQLite kept ${to}-byte pages`);
    return { from, to, bytesBefore, bytesAfter: bytesOnDisk(file) };
  } finally {
    db.close();
  }
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly db: BetterSqlite3.Database;
  private readonly mailbox: MailboxReads;
  /** Runs the write batches; the main connection stays the reader and the writer of everything else. */
  readonly writer: SqliteWriter;
  /** The file's page size, fixed when it was created (newFilePageSize applies only then). */
  readonly pageSize: number;
  private readonly prekeys: PrekeyTables;
  private readonly groups: GroupTables;
  private readonly blocks: BlockTables;
  readonly blobs: SqliteBlobs;
  private readonly kt: KtTables;
  private readonly prepare: Prepare;
  private closed = false;
  /** Activity times of one turn, written in one transaction (see TurnBatch). */
  private readonly touches: TurnBatch;

  constructor(options: SqliteStoreOptions) {
    const synchronous = options.synchronous ?? 'NORMAL';
    if (options.newFilePageSize !== undefined && !isPageSize(options.newFilePageSize)) {
      throw new Error(`page size ${options.newFilePageSize}: a power of two from 512 to 65536 bytes`);
    }
    this.db = openConnection(options.file, synchronous, options.newFilePageSize);
    migrate(this.db);
    this.pageSize = this.db.pragma('page_size', { simple: true }) as number;
    this.prepare = statementCache(this.db);
    this.prekeys = new PrekeyTables(this.db, this.prepare);
    this.groups = new GroupTables(this.db, this.prepare);
    this.blocks = new BlockTables(this.db, this.prepare);
    this.blobs = new SqliteBlobs(this.db, this.prepare, options.blobDir ?? join(dirname(options.file), 'blobs'));
    this.kt = new KtTables(this.db, this.prepare);
    this.mailbox = new MailboxReads(this.db);
    const touch = this.prepare<[number, string, number]>(
      'UPDATE devices SET last_active_at = ? WHERE device_id = ? AND (last_active_at IS NULL OR last_active_at < ?)',
    );
    this.touches = new TurnBatch(
      immediate(this.db, (touches: ReadonlyMap<string, number>) => {
        for (const [deviceId, at] of touches) touch.run(at, deviceId, at);
      }),
    );
    // The worker opens its own connection once the schema is migrated.
    this.writer =
      options.writer === 'worker' ? new WorkerWriter({ file: options.file, synchronous }) : new InlineWriter(this.db);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.touches.close();
    await this.writer.close();
    this.db.close();
  }

  /** The file's pages in bytes, and those of its free pages (which SQLite reuses, and `rewriteFile` gives back). */
  pages(): { fileBytes: number; freeBytes: number } {
    const count = (pragma: string): number => this.db.pragma(pragma, { simple: true }) as number;
    return { fileBytes: count('page_count') * this.pageSize, freeBytes: count('freelist_count') * this.pageSize };
  }

  ping(): Promise<void> {
    return later(() => {
      this.prepare('SELECT 1 FROM schema_migrations LIMIT 1').get();
    });
  }

  // Accounts -------------------------------------------------------------------------------------------------------

  createAccount(a: NewAccount): Promise<'created' | 'username_taken'> {
    return later(() =>
      immediate(this.db, () => {
        const inserted = this.prepare(
          `INSERT INTO users (user_id, username, salt, auth_hash, identity_key, created_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING`,
        ).run(a.userId, a.username, a.salt, a.authHash, a.identityKey, a.now);
        if (inserted.changes === 0) return 'username_taken' as const;
        this.insertDevice(a.userId, a.deviceId, a.now);
        this.prekeys.write(a.deviceId, {
          signedPrekey: a.signedPrekey,
          oneTimePrekeys: a.oneTimePrekeys,
          kemLastResortPrekey: a.kemLastResortPrekey,
          kemOneTimePrekeys: a.kemOneTimePrekeys,
        });
        this.insertSession(a.userId, a.deviceId, a.session, a.now);
        return 'created' as const;
      })(),
    );
  }

  findUserByUsername(username: string): Promise<UserRecord | null> {
    return later(() => {
      const row = this.prepare<[string], UserRow>('SELECT * FROM users WHERE username = ?').get(username);
      return row ? toUser(row) : null;
    });
  }

  getUser(userId: string): Promise<UserRecord | null> {
    return later(() => {
      const row = this.prepare<[string], UserRow>('SELECT * FROM users WHERE user_id = ?').get(userId);
      return row ? toUser(row) : null;
    });
  }

  async deleteUser(userId: string): Promise<boolean> {
    const blobIds = this.blobs.idsOf(userId); // their rows go by cascade, their files below
    await this.drainMailboxes(
      this.prepare<[string], { device_id: string }>('SELECT device_id FROM devices WHERE user_id = ?')
        .all(userId)
        .map((r) => r.device_id),
    );
    const gone = await later(() =>
      immediate(this.db, () => {
        this.prepare(
          'DELETE FROM sent_ids WHERE sender_device_id IN (SELECT device_id FROM devices WHERE user_id = ?)',
        ).run(userId);
        // Its groups keep an admin, and an emptied group goes (as when a last member leaves).
        this.groups.dropFromAll(userId);
        // Its devices, prekeys, sessions, memberships and mailbox entries go with it (ON DELETE CASCADE).
        const deleted = this.prepare('DELETE FROM users WHERE user_id = ?').run(userId).changes > 0;
        if (deleted) this.writer.forgetDevices();
        return deleted;
      })(),
    );
    if (gone) await this.blobs.removeFiles(blobIds);
    return gone;
  }

  searchUsers(prefix: string, limit: number): Promise<{ userId: string; username: string }[]> {
    // A range over the unique index instead of LIKE: the prefix is taken literally (no wildcards), and every
    // username character sorts below U+007F.
    return later(() =>
      this.prepare<[string, string, number], { user_id: string; username: string }>(
        `SELECT user_id, username FROM users WHERE username >= ? AND username < ? ORDER BY username ${BOUND_LIMIT}`,
      )
        .all(prefix, `${prefix}\u007f`, limit)
        .map((r) => ({ userId: r.user_id, username: r.username })),
    );
  }

  findUnknownUsers(userIds: string[]): Promise<string[]> {
    return later(() => this.unknownIds('users', 'user_id', userIds));
  }

  setSharePresence(userId: string, share: boolean): Promise<void> {
    return later(() => {
      // Sharing off: the last-seen time is forgotten too (and applyWrites stores none while it is off).
      const sql = share
        ? 'UPDATE users SET share_presence = 1 WHERE user_id = ?'
        : 'UPDATE users SET share_presence = 0, last_seen = NULL WHERE user_id = ?';
      this.prepare(sql).run(userId);
    });
  }

  getPresence(userIds: string[]): Promise<PresenceRecord[]> {
    return later(() =>
      chunks(userIds).flatMap((part) =>
        this.prepare<string[], { user_id: string; share_presence: number; last_seen: number | null }>(
          `SELECT user_id, share_presence, last_seen FROM users WHERE user_id IN (${part.map(() => '?').join(',')})`,
        )
          .all(...part)
          .map((r) => ({ userId: r.user_id, sharePresence: r.share_presence === 1, lastSeen: r.last_seen })),
      ),
    );
  }

  putBackup(userId: string, backup: Bytes): Promise<void> {
    return later(() => {
      this.prepare('UPDATE users SET backup = ? WHERE user_id = ?').run(backup, userId);
    });
  }

  changePassword(
    userId: string,
    expectedAuthHash: string,
    next: { salt: Bytes; authHash: string; backup: Bytes },
  ): Promise<boolean> {
    // One UPDATE: salt, hash and backup change together or not at all.
    return later(
      () =>
        this.prepare('UPDATE users SET salt = ?, auth_hash = ?, backup = ? WHERE user_id = ? AND auth_hash = ?').run(
          next.salt,
          next.authHash,
          next.backup,
          userId,
          expectedAuthHash,
        ).changes === 1,
    );
  }

  getBackup(userId: string): Promise<Bytes | null> {
    return later(
      () =>
        this.prepare<[string], { backup: Buffer | null }>('SELECT backup FROM users WHERE user_id = ?').get(userId)
          ?.backup ?? null,
    );
  }

  putProfile(userId: string, profile: Bytes): Promise<void> {
    return later(() => {
      this.prepare('UPDATE users SET profile = ? WHERE user_id = ?').run(profile, userId);
    });
  }

  getProfile(userId: string): Promise<{ profile: Bytes | null } | null> {
    return later(() => {
      const row = this.prepare<[string], { profile: Buffer | null }>('SELECT profile FROM users WHERE user_id = ?').get(
        userId,
      );
      return row ? { profile: row.profile } : null;
    });
  }

  putInvite(tokenHash: Bytes, expiresAt: number): Promise<void> {
    return later(() => {
      this.prepare('INSERT OR REPLACE INTO invites (token_hash, expires_at) VALUES (?, ?)').run(tokenHash, expiresAt);
    });
  }

  takeInvite(tokenHash: Bytes, now: number): Promise<number | null> {
    return later(
      () =>
        this.prepare<[Bytes, number], { expires_at: number }>(
          'DELETE FROM invites WHERE token_hash = ? AND expires_at > ? RETURNING expires_at',
        ).get(tokenHash, now)?.expires_at ?? null,
    );
  }

  // Devices and sessions ---------------------------------------------------------------------------------------------

  getDeviceOwner(deviceId: string): Promise<string | null> {
    return later(() => this.ownerOf(deviceId));
  }

  /** The user a device belongs to, or null. */
  private ownerOf(deviceId: string): string | null {
    return (
      this.prepare<[string], { user_id: string }>('SELECT user_id FROM devices WHERE device_id = ?').get(deviceId)
        ?.user_id ?? null
    );
  }

  findUnknownDevices(deviceIds: string[]): Promise<string[]> {
    return later(() => this.unknownIds('devices', 'device_id', deviceIds));
  }

  startSession(args: {
    userId: string;
    deviceId: string;
    newDevice: boolean;
    session: NewSession;
    now: number;
    maxDevices?: number;
  }): Promise<'started' | 'device_limit'> {
    return later(() =>
      immediate(this.db, (): 'started' | 'device_limit' => {
        if (args.newDevice) {
          if (args.maxDevices !== undefined && this.deviceCount(args.userId) >= args.maxDevices) return 'device_limit';
          this.insertDevice(args.userId, args.deviceId, args.now);
        }
        this.insertSession(args.userId, args.deviceId, args.session, args.now);
        return 'started';
      })(),
    );
  }

  countDevices(userId: string): Promise<number> {
    return later(() => this.deviceCount(userId));
  }

  getSession(familyId: string): Promise<SessionRecord | null> {
    return later(() => {
      const row = this.prepare<[string], { user_id: string; device_id: string; revoked: number }>(
        `SELECT f.user_id, f.device_id, f.revoked FROM session_families f
           JOIN devices d ON d.device_id = f.device_id AND d.user_id = f.user_id WHERE f.family_id = ?`,
      ).get(familyId);
      return row ? { familyId, userId: row.user_id, deviceId: row.device_id, revoked: row.revoked === 1 } : null;
    });
  }

  rotateRefreshToken(
    tokenHash: Bytes,
    next: RefreshTokenRecord,
    now: number,
    startedAfter: number,
  ): Promise<RotateOutcome> {
    return later(() =>
      immediate(this.db, (): RotateOutcome => {
        const row = this.prepare<
          [Bytes],
          {
            family_id: string;
            used: number;
            expires_at: number;
            revoked: number;
            user_id: string;
            device_id: string;
            created_at: number;
          }
        >(
          `SELECT r.family_id, r.used, r.expires_at, f.revoked, f.user_id, f.device_id, f.created_at FROM refresh_tokens r
             JOIN session_families f ON f.family_id = r.family_id
             JOIN devices d ON d.device_id = f.device_id AND d.user_id = f.user_id
             WHERE r.token_hash = ?`,
        ).get(tokenHash);
        if (!row || row.revoked === 1) return { status: 'invalid' };
        if (row.used === 1) {
          this.prepare('UPDATE session_families SET revoked = 1 WHERE family_id = ?').run(row.family_id);
          return { status: 'reused', familyId: row.family_id };
        }
        if (row.expires_at <= now || row.created_at <= startedAfter) return { status: 'invalid' };
        this.prepare('UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?').run(tokenHash);
        this.prepare('INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?, ?, ?)').run(
          next.tokenHash,
          row.family_id,
          Math.min(next.expiresAt, row.created_at + (now - startedAfter)),
        );
        return {
          status: 'rotated',
          session: { familyId: row.family_id, userId: row.user_id, deviceId: row.device_id, revoked: false },
        };
      })(),
    );
  }

  revokeFamily(familyId: string): Promise<void> {
    return later(() => {
      this.prepare('UPDATE session_families SET revoked = 1 WHERE family_id = ?').run(familyId);
    });
  }

  // Prekeys --------------------------------------------------------------------------------------------------------

  putPrekeys(deviceId: string, keys: PrekeyUpload, max: PrekeyLimits): Promise<'stored' | 'too_many'> {
    return later(() => this.prekeys.put(deviceId, keys, max));
  }

  countPrekeys(deviceId: string): Promise<PrekeyCounts> {
    return later(() => this.prekeys.count(deviceId));
  }

  takeBundle(userId: string, takeFor: ReadonlySet<string> | null = null): Promise<BundleRecord | null> {
    return later(() => this.prekeys.takeBundle(userId, takeFor));
  }

  // Groups ---------------------------------------------------------------------------------------------------------

  createGroup(groupId: string, members: GroupMemberRecord[], now: number): Promise<GroupRecord> {
    return later(() => this.groups.create(groupId, members, now));
  }

  getGroup(groupId: string): Promise<GroupRecord | null> {
    return later(() => this.groups.read(groupId));
  }

  listGroups(userId: string): Promise<GroupRecord[]> {
    return later(() => this.groups.listOf(userId));
  }

  countGroups(userIds: string[]): Promise<Map<string, number>> {
    return later(() => {
      const counts = new Map<string, number>();
      for (const part of chunks([...new Set(userIds)])) {
        const rows = this.prepare<string[], { user_id: string; n: number }>(
          `SELECT user_id, COUNT(*) AS n FROM group_members WHERE user_id IN (${part.map(() => '?').join(',')})
           GROUP BY user_id`,
        ).all(...part);
        for (const r of rows) counts.set(r.user_id, r.n);
      }
      for (const id of userIds) if (!counts.has(id)) counts.set(id, 0);
      return counts;
    });
  }

  replaceGroupMembers(
    groupId: string,
    expectedVersion: number,
    members: GroupMemberRecord[],
    _now: number,
  ): Promise<boolean> {
    return later(() => this.groups.replaceMembers(groupId, expectedVersion, members));
  }

  groupRecipients(groupId: string, senderUserId: string, senderDeviceId: string): Promise<GroupRecipientsOutcome> {
    return later(() => this.mailbox.groupRecipients(groupId, senderUserId, senderDeviceId));
  }

  // Mailbox --------------------------------------------------------------------------------------------------------

  applyWrites(batch: WriteBatch, now: number): Promise<SendOutcome[]> {
    return this.writer.apply(batch, now);
  }

  fetchMailbox(deviceId: string, afterSeq: number, limit: number, maxBytes: number): Promise<MailboxEntry[]> {
    return later(() => this.mailbox.fetch(deviceId, afterSeq, limit, maxBytes));
  }

  countMailbox(deviceId: string): Promise<number> {
    return later(() => this.mailbox.count(deviceId));
  }

  pendingRecipients(_senderDeviceId: string, id: string, ts: number): Promise<string[]> {
    // The mailbox does not record the sender: the commit's ts (indexed) and the id pick the entries.
    return later(() =>
      this.prepare<[number, string], { device_id: string }>(
        'SELECT DISTINCT device_id FROM mailbox WHERE ts = ? AND message_id = ?',
      )
        .all(ts, id)
        .map((r) => r.device_id),
    );
  }

  recordContacts(fromUserId: string, toDeviceIds: string[]): Promise<string[]> {
    return later(() => {
      const owners = new Set<string>();
      for (const part of chunks([...new Set(toDeviceIds)])) {
        const rows = this.prepare<string[], { user_id: string }>(
          `SELECT DISTINCT user_id FROM devices WHERE device_id IN (${part.map(() => '?').join(',')})`,
        ).all(...part);
        for (const r of rows) if (r.user_id !== fromUserId) owners.add(r.user_id);
      }
      const insert = this.prepare<[string, string]>(
        'INSERT OR IGNORE INTO contacts (to_user, from_user) VALUES (?, ?)',
      );
      immediate(this.db, () => {
        for (const to of owners) insert.run(to, fromUserId);
      })();
      return [...owners];
    });
  }

  contactsWritingTo(toUserId: string, fromUserIds: string[]): Promise<string[]> {
    return later(() =>
      chunks([...new Set(fromUserIds)]).flatMap((part) =>
        this.prepare<string[], { from_user: string }>(
          `SELECT from_user FROM contacts WHERE to_user = ? AND from_user IN (${part.map(() => '?').join(',')})`,
        )
          .all(toUserId, ...part)
          .map((r) => r.from_user),
      ),
    );
  }

  counts(): Promise<StoreCounts> {
    return later(() => {
      const count = (sql: string): number => this.prepare<[], { n: number }>(sql).get()?.n ?? 0;
      return {
        users: count('SELECT COUNT(*) AS n FROM users'),
        devices: count('SELECT COUNT(*) AS n FROM devices'),
        sessions: count('SELECT COUNT(*) AS n FROM session_families WHERE revoked = 0'),
        oneTimePrekeys: count('SELECT COUNT(*) AS n FROM one_time_prekeys'),
        groups: count('SELECT COUNT(*) AS n FROM groups'),
        mailboxEntries: count('SELECT COUNT(*) AS n FROM mailbox'),
      };
    });
  }

  listAccounts(after: string, limit: number): Promise<AccountSummary[]> {
    return later(() =>
      this.prepare<
        [string, number],
        { user_id: string; username: string; disabled: number; devices: number; created_at: number }
      >(
        `SELECT u.user_id, u.username, u.disabled, u.created_at,
                (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.user_id) AS devices
           FROM users u WHERE u.username > ? ORDER BY u.username ${BOUND_LIMIT}`,
      )
        .all(after, limit)
        .map((r) => ({
          userId: r.user_id,
          username: r.username,
          disabled: r.disabled === 1,
          devices: r.devices,
          createdAt: r.created_at,
        })),
    );
  }

  setUserDisabled(userId: string, disabled: boolean): Promise<boolean> {
    return later(
      () => this.prepare('UPDATE users SET disabled = ? WHERE user_id = ?').run(disabled ? 1 : 0, userId).changes > 0,
    );
  }

  revokeUserSessions(userId: string): Promise<string[]> {
    return later(() =>
      immediate(this.db, () => {
        const ids = this.prepare<[string], { family_id: string }>(
          'SELECT family_id FROM session_families WHERE user_id = ? AND revoked = 0',
        )
          .all(userId)
          .map((r) => r.family_id);
        this.prepare('UPDATE session_families SET revoked = 1 WHERE user_id = ?').run(userId);
        return ids;
      })(),
    );
  }

  async deleteDevice(deviceId: string): Promise<string[] | null> {
    await this.drainMailboxes([deviceId]);
    return immediate(this.db, () => this.deleteDeviceRows(deviceId))();
  }

  /**
   * Empties these devices' mailboxes a slice at a time (mailbox-drain.ts) before their rows are deleted in one
   * transaction, which takes the entries that arrived meanwhile.
   */
  private async drainMailboxes(deviceIds: string[]): Promise<void> {
    if ((await drainDevices(this.db, this.prepare, deviceIds)) > 0) this.writer.forgetUsage();
  }

  // Devices as their owner manages them ------------------------------------------------------------------------------

  listDevices(userId: string): Promise<DeviceRecord[]> {
    return later(() =>
      this.prepare<
        [string],
        { device_id: string; created_at: number; last_active_at: number | null; name: Buffer | null }
      >(
        'SELECT device_id, created_at, last_active_at, name FROM devices WHERE user_id = ? ORDER BY created_at, device_id',
      )
        .all(userId)
        .map((r) => ({ deviceId: r.device_id, createdAt: r.created_at, lastActiveAt: r.last_active_at, name: r.name })),
    );
  }

  setDeviceName(userId: string, deviceId: string, name: Bytes): Promise<boolean> {
    return later(
      () =>
        this.prepare('UPDATE devices SET name = ? WHERE device_id = ? AND user_id = ?').run(
          Buffer.from(name),
          deviceId,
          userId,
        ).changes > 0,
    );
  }

  /**
   * Activity times are written once per turn of the event loop, all in one transaction. After a relay restarts, every
   * device connects again within seconds, and a commit per connection wrote a 4 KiB page to the disk each; gathered,
   * the bench's connections write 0.39x the bytes (bench/BEFORE-AFTER-18.md, "Reconnects"). The promise settles with
   * that commit.
   */
  touchDevice(deviceId: string, at: number): Promise<void> {
    return this.touches.add(deviceId, at);
  }

  async removeOwnDevice(userId: string, deviceId: string, now: number): Promise<string[] | null> {
    // Another account's device is neither drained nor removed (the transaction below checks again).
    if (this.ownerOf(deviceId) !== userId) return null;
    await this.drainMailboxes([deviceId]);
    return later(() =>
      immediate(this.db, () => {
        if (this.ownerOf(deviceId) !== userId) return null;
        this.prepare('INSERT OR REPLACE INTO removed_devices (device_id, user_id, removed_at) VALUES (?, ?, ?)').run(
          deviceId,
          userId,
          now,
        );
        return this.deleteDeviceRows(deviceId);
      })(),
    );
  }

  deviceRemovedAt(deviceId: string): Promise<number | null> {
    return later(
      () =>
        this.prepare<[string], { removed_at: number }>(
          'SELECT removed_at FROM removed_devices WHERE device_id = ?',
        ).get(deviceId)?.removed_at ?? null,
    );
  }

  // Blocks (migration 010) ------------------------------------------------------------------------------------------

  putBlock(blocker: string, blocked: string, now: number, max: number): Promise<'stored' | 'limit'> {
    return later(() => this.blocks.put(blocker, blocked, now, max));
  }

  deleteBlock(blocker: string, blocked: string): Promise<void> {
    return later(() => this.blocks.delete(blocker, blocked));
  }

  listBlocks(blocker: string): Promise<{ userId: string; username: string }[]> {
    return later(() => this.blocks.list(blocker));
  }

  usersBlocking(blocked: string, userIds: string[]): Promise<string[]> {
    return later(() => this.blocks.usersBlocking(blocked, userIds));
  }

  devicesBlocking(sender: string, deviceIds: string[]): Promise<string[]> {
    return later(() => this.blocks.devicesBlocking(sender, deviceIds));
  }

  blockedUsers(): Promise<string[]> {
    return later(() => this.blocks.blockedUsers());
  }

  async sweepExpired(cutoffs: SweepCutoffs): Promise<SweepResult> {
    const drained = await drainExpired(this.db, this.prepare, cutoffs.mailboxBefore);
    return later(() =>
      immediate(this.db, (): SweepResult => {
        // What expired while the slices were drained.
        const mailbox = drained + this.prepare('DELETE FROM mailbox WHERE ts < ?').run(cutoffs.mailboxBefore).changes;
        // The hours of idempotency records that ended before the cutoff (the writer's index drops them below).
        const sent = this.prepare(PRUNE_SENT).run(sentBucket(cutoffs.sentBefore)).changes;
        const refreshTokens = this.prepare('DELETE FROM refresh_tokens WHERE expires_at < ?').run(cutoffs.now).changes;
        this.prepare('DELETE FROM invites WHERE expires_at <= ?').run(cutoffs.now);
        this.prepare(
          `DELETE FROM session_families WHERE NOT EXISTS
               (SELECT 1 FROM refresh_tokens r WHERE r.family_id = session_families.family_id)`,
        ).run();
        return { mailbox, sent, refreshTokens };
      })(),
    ).then(async (result) => {
      if (result.sent > 0) this.writer.forgetPruned();
      // Also when no entry expired: the kept usage starts over from the file at least once per sweep.
      this.writer.forgetUsage();
      await this.emptyWal();
      return result;
    });
  }

  /**
   * Deleted rows are zeroed where they lay (every connection sets `secure_delete`), but the write-ahead log still
   * holds the page versions written before, an entry's sealed body among them, until SQLite writes over them. The
   * sweep copies the log into the database file and truncates it to nothing, so that the bytes of a delivered entry
   * last on disk about one sweep interval. Truncating waits for every reader of the file (an online backup,
   * `npm run admin`) and for the writer worker; with busy_timeout that wait would hold the event loop, so each try
   * waits for nobody, and a few later tries follow before the next sweep's.
   */
  private async emptyWal(): Promise<void> {
    for (let attempt = 1; attempt <= WAL_TRUNCATE_TRIES; attempt++) {
      if (!this.db.open || this.truncateWalNow()) return;
      if (attempt < WAL_TRUNCATE_TRIES) await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }

  /** One TRUNCATE checkpoint that waits on no lock; true when the log is now empty. */
  private truncateWalNow(): boolean {
    const wait = this.db.pragma('busy_timeout', { simple: true }) as number;
    this.db.pragma('busy_timeout = 0');
    try {
      const [result] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      return result?.busy === 0;
    } finally {
      this.db.pragma(`busy_timeout = ${wait}`);
    }
  }

  // Helpers (run inside the caller's transaction) ------------------------------------------------------------------

  /** Deletes a device and what hangs on it; the session families that went with it, or null. In a transaction. */
  private deleteDeviceRows(deviceId: string): string[] | null {
    const families = this.prepare<[string], { family_id: string }>(
      'SELECT family_id FROM session_families WHERE device_id = ?',
    )
      .all(deviceId)
      .map((r) => r.family_id);
    this.prepare('DELETE FROM sent_ids WHERE sender_device_id = ?').run(deviceId);
    // Prekeys, sessions and mailbox entries go with it (ON DELETE CASCADE).
    const deleted = this.prepare('DELETE FROM devices WHERE device_id = ?').run(deviceId).changes > 0;
    if (!deleted) return null;
    this.writer.forgetDevices();
    return families;
  }

  private deviceCount(userId: string): number {
    return (
      this.prepare<[string], { n: number }>('SELECT count(*) AS n FROM devices WHERE user_id = ?').get(userId)?.n ?? 0
    );
  }

  private insertDevice(userId: string, deviceId: string, now: number): void {
    this.prepare('INSERT INTO devices (device_id, user_id, created_at) VALUES (?, ?, ?)').run(deviceId, userId, now);
  }

  private insertSession(userId: string, deviceId: string, session: NewSession, now: number): void {
    this.prepare('INSERT INTO session_families (family_id, user_id, device_id, created_at) VALUES (?, ?, ?, ?)').run(
      session.familyId,
      userId,
      deviceId,
      now,
    );
    this.prepare('INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?, ?, ?)').run(
      session.refresh.tokenHash,
      session.familyId,
      session.refresh.expiresAt,
    );
  }

  private unknownIds(table: 'users' | 'devices', column: 'user_id' | 'device_id', ids: string[]): string[] {
    const unique = [...new Set(ids)];
    const found = new Set<string>();
    for (const part of chunks(unique)) {
      const rows = this.prepare<string[], Record<string, string>>(
        `SELECT ${column} AS id FROM ${table} WHERE ${column} IN (${part.map(() => '?').join(',')})`,
      ).all(...part);
      for (const r of rows) if (r.id !== undefined) found.add(r.id);
    }
    return unique.filter((id) => !found.has(id));
  }

  // Key transparency (migration 013) ---------------------------------------------------------------------------------

  ktSize(): Promise<number> {
    return later(() => this.kt.size());
  }

  ktAppend(leaf: KtLeafRecord, nodes: KtNodeRecord[]): Promise<'appended' | 'conflict'> {
    return later(() => this.kt.append(leaf, nodes));
  }

  /** Never needed here (an append is one transaction); stores the nodes for the contract's sake. */
  ktFinish(_size: number, nodes: KtNodeRecord[]): Promise<void> {
    return later(() => this.kt.putNodes(nodes));
  }

  ktNodes(keys: { level: number; index: number }[]): Promise<KtNodeRecord[]> {
    return later(() => this.kt.nodes(keys));
  }

  ktForget(userId: string): Promise<void> {
    return later(() => this.kt.forget(userId));
  }

  ktLeaf(index: number): Promise<KtLeafRecord | null> {
    return later(() => this.kt.leaf(index));
  }

  ktLatestOf(userId: string, size: number): Promise<KtLeafRecord | null> {
    return later(() => this.kt.latestOf(userId, size));
  }

  ktEntriesOf(userId: string, from: number, to: number, limit: number): Promise<KtLeafRecord[]> {
    return later(() => this.kt.entriesOf(userId, from, to, limit));
  }

  ktPutCosignature(cosignature: KtCosignatureRecord, keep: number): Promise<void> {
    return later(() => this.kt.putCosignature(cosignature, keep));
  }

  ktCosignatures(keyIds: string[]): Promise<KtCosignatureRecord[]> {
    return later(() => this.kt.cosignatures(keyIds));
  }
}
