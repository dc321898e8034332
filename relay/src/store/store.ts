// The Store: everything the relay persists, behind one backend-neutral, Promise-returning interface.
// Backends (SQLite now, MongoDB later) pass the same contract suite (relay/test/store.contract.ts).
// The store has no clock: every time it needs is passed in by the caller (`now`, cutoffs, expiries).

import type { Readable } from 'node:stream';

/** Binary values are Uint8Array (a Buffer is one). */
export type Bytes = Uint8Array;

export interface UserRecord {
  userId: string;
  /** Lower-cased. */
  username: string;
  salt: Bytes;
  authHash: string;
  identityKey: Bytes;
  sharePresence: boolean;
  lastSeen: number | null;
  /** Deactivated by an operator: it cannot sign in. */
  disabled: boolean;
}

/** One account as the operator's list shows it. */
export interface AccountSummary {
  userId: string;
  username: string;
  disabled: boolean;
  devices: number;
  createdAt: number;
}

export interface SignedPrekeyRecord {
  keyId: number;
  publicKey: Bytes;
  signature: Bytes;
}

export interface OneTimePrekeyRecord {
  keyId: number;
  publicKey: Bytes;
}

/** A signed ML-KEM-768 prekey (PQXDH): one-time, or the device's last-resort one. */
export interface KemPrekeyRecord {
  keyId: number;
  lastResort: boolean;
  publicKey: Bytes;
  signature: Bytes;
}

/** An upload of prekeys for one device; every part optional. */
export interface PrekeyUpload {
  signedPrekey?: SignedPrekeyRecord | undefined;
  oneTimePrekeys?: OneTimePrekeyRecord[] | undefined;
  /** Replaces the last-resort KEM prekey. */
  kemLastResortPrekey?: KemPrekeyRecord | undefined;
  /** Adds one-time KEM prekeys (same keyId replaces). */
  kemOneTimePrekeys?: KemPrekeyRecord[] | undefined;
}

/** Most unused one-time prekeys a device may hold: an upload over either limit stores nothing. */
export interface PrekeyLimits {
  oneTime: number;
  kemOneTime: number;
}

export interface PrekeyCounts {
  oneTimePrekeys: number;
  signedPrekeyId: number | null;
  kemOneTimePrekeys: number;
  kemLastResortPrekeyId: number | null;
}

/** A refresh token as stored: only its SHA-256 hash. */
export interface RefreshTokenRecord {
  tokenHash: Bytes;
  expiresAt: number;
}

export interface NewSession {
  familyId: string;
  refresh: RefreshTokenRecord;
}

export interface NewAccount {
  userId: string;
  username: string;
  salt: Bytes;
  authHash: string;
  identityKey: Bytes;
  deviceId: string;
  signedPrekey: SignedPrekeyRecord;
  oneTimePrekeys: OneTimePrekeyRecord[];
  kemLastResortPrekey?: KemPrekeyRecord | undefined;
  kemOneTimePrekeys?: KemPrekeyRecord[] | undefined;
  session: NewSession;
  now: number;
}

/** A live session family (refresh-token family) whose user and device still exist. */
export interface SessionRecord {
  familyId: string;
  userId: string;
  deviceId: string;
  revoked: boolean;
}

export type RotateOutcome =
  | { status: 'rotated'; session: SessionRecord }
  /** The token was already spent: the store has revoked its whole family. */
  | { status: 'reused'; familyId: string }
  /** Unknown, expired, or of a revoked family or vanished device. */
  | { status: 'invalid' };

export interface BundleRecord {
  userId: string;
  username: string;
  identityKey: Bytes;
  devices: {
    deviceId: string;
    signedPrekey: SignedPrekeyRecord;
    oneTimePrekey: OneTimePrekeyRecord | null;
    /** A one-time KEM prekey taken like the one-time prekey, else the last-resort one; null when none. */
    kemPrekey: KemPrekeyRecord | null;
  }[];
}

export interface GroupMemberRecord {
  userId: string;
  admin: boolean;
}

export interface GroupRecord {
  groupId: string;
  /** Incremented by every change; replaceGroupMembers compares it. */
  version: number;
  /** In join order. */
  members: GroupMemberRecord[];
}

export interface PresenceRecord {
  userId: string;
  sharePresence: boolean;
  lastSeen: number | null;
}

/** One stored mailbox entry of one device. `seq` increases with every commit, so per device it is the order. */
export interface MailboxEntry {
  deviceId: string;
  seq: number;
  id: string;
  ts: number;
  body: Bytes;
  group?: string;
}

export type SendTarget =
  | { kind: 'direct'; envelopes: { to: string; body: Bytes }[] }
  /** Fanned out to every device that has keys (a signed prekey), of every member, except the sending device. */
  | { kind: 'group'; groupId: string; body: Bytes };

export interface SendRequest {
  senderUserId: string;
  senderDeviceId: string;
  /** The client's message id; with the sender device, the idempotency key. */
  id: string;
  target: SendTarget;
}

export type SendOutcome =
  /** `refused`: recipient devices whose mailbox was full (nothing stored for them); absent when none. */
  | { status: 'stored'; ts: number; entries: MailboxEntry[]; refused?: string[] }
  /** Every recipient device's mailbox was full: nothing stored, no idempotency record. */
  | { status: 'mailbox_full' }
  /** MongoDB: the send's document would come near the 16 MiB ceiling (a huge group): nothing stored. */
  | { status: 'too_large' }
  /** The sender device already sent this id: nothing stored, the first send's ts. */
  | { status: 'duplicate'; ts: number }
  /** A direct `to` names no device: nothing stored. */
  | { status: 'unknown_recipient' }
  /** Group sends: no such group. */
  | { status: 'not_found' }
  /** Group sends: the sender is not a member. */
  | { status: 'forbidden' };

export type GroupRecipientsOutcome =
  { status: 'ok'; deviceIds: string[] } | { status: 'not_found' } | { status: 'forbidden' };

/**
 * applyWrites could not learn how a batch ended: the writer (the SQLite writer worker) stopped while it held it. Its
 * sends may or may not be committed, so none is acknowledged (a client's retry with the same id is answered from the
 * idempotency record), and splitting the batch would not help: the next batch goes to a new writer.
 */
export class WriterLostError extends Error {
  override readonly name = 'WriterLostError';
}

/** Everything the write batcher commits in one durable transaction. */
export interface WriteBatch {
  sends: SendRequest[];
  /** Acknowledged mailbox entries to delete: device → seqs. An entry of another device is never touched. */
  acks: { deviceId: string; seqs: number[] }[];
  lastSeen: { userId: string; ts: number }[];
  /**
   * Per recipient device, the most unacknowledged entries and bytes of bodies its mailbox may hold; a delivery that
   * would pass either is refused for that device alone. No caps when absent.
   */
  caps?: MailboxCaps;
}

export interface MailboxCaps {
  maxEntries: number;
  maxBytes: number;
}

export interface SweepCutoffs {
  /** Mailbox entries with ts before this are deleted. */
  mailboxBefore: number;
  /** Idempotency records with ts before this are deleted. */
  sentBefore: number;
  /** Refresh tokens that expired before this are deleted, and families left without tokens. */
  now: number;
}

export interface SweepResult {
  mailbox: number;
  sent: number;
  refreshTokens: number;
  /** Blobs deleted (the relay's sweep adds it after the store's). */
  blobs?: number;
}

/** One device of an account as its owner's device list shows it. */
export interface DeviceRecord {
  deviceId: string;
  createdAt: number;
  lastActiveAt: number | null;
  /** Sealed by the client; opaque to the relay. */
  name: Bytes | null;
}

/** One entry of the key transparency log (issue #16): leaf `index`, the account's `seq`-th entry. */
export interface KtLeafRecord {
  index: number;
  userId: string;
  seq: number;
  /** The canonical entry bytes (relay/src/service/kt-tree.ts). */
  entry: Bytes;
}

/**
 * A witness's cosignature of the checkpoint of `size` leaves (issue #16, C2SP tlog-cosignature), checked by the relay
 * before it is stored: kept so that every node serves it, after restarts too.
 */
export interface KtCosignatureRecord {
  /** The witness's C2SP key id, 8 lowercase hex. */
  keyId: string;
  size: number;
  /** The root hash of the cosigned checkpoint (32 bytes): the body is the relay's origin, `size` and this root. */
  root: Bytes;
  /** The cosignature's time, seconds since the epoch. */
  timestamp: number;
  /** The whole signature line, `— <name> <base64>\n`. */
  line: string;
}

/** A stored hash of a perfect subtree: leaves [index·2^level, (index+1)·2^level); level 0 is the leaf hash. */
export interface KtNodeRecord {
  level: number;
  index: number;
  hash: Bytes;
}

/** How much the store holds (operators: `npm run admin -- counts`, the metrics' mailbox depth). */
export interface StoreCounts {
  users: number;
  devices: number;
  /** Session families not revoked (some may have expired and wait for the sweep). */
  sessions: number;
  oneTimePrekeys: number;
  groups: number;
  /** Stored mailbox entries, one per recipient device, not yet acknowledged. */
  mailboxEntries: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'mongodb';
  close(): Promise<void>;
  /** Resolves when the backend answers a trivial read; rejects (or never settles) when it cannot. For readiness. */
  ping(): Promise<void>;

  // Accounts -----------------------------------------------------------------------------------------------------
  /** Creates user, first device with its prekeys, and the first session, atomically. */
  createAccount(account: NewAccount): Promise<'created' | 'username_taken'>;
  findUserByUsername(username: string): Promise<UserRecord | null>;
  getUser(userId: string): Promise<UserRecord | null>;
  /**
   * Deletes the user with devices, prekeys, sessions, backup, memberships, mailboxes and the idempotency records of
   * what its devices sent: nothing of the account stays (the copies its messages left in others' mailboxes are
   * theirs, and name no sender).
   */
  deleteUser(userId: string): Promise<boolean>;
  /** At most `limit` users whose username starts with `prefix` (taken literally), by username. */
  searchUsers(prefix: string, limit: number): Promise<{ userId: string; username: string }[]>;
  /** Of these user ids, the ones that name no user. */
  findUnknownUsers(userIds: string[]): Promise<string[]>;
  setSharePresence(userId: string, share: boolean): Promise<void>;
  /** Unknown ids are left out. */
  getPresence(userIds: string[]): Promise<PresenceRecord[]>;
  putBackup(userId: string, backup: Bytes): Promise<void>;
  /**
   * Replaces salt, auth hash and key backup of the user in one atomic write, only while its auth hash is still
   * `expectedAuthHash` (a compare-and-set: of two concurrent changes one wins). False when nothing was written.
   */
  changePassword(
    userId: string,
    expectedAuthHash: string,
    next: { salt: Bytes; authHash: string; backup: Bytes },
  ): Promise<boolean>;
  /** Stores an invite (only the SHA-256 of its token) that one sign-up may spend before `expiresAt`. */
  putInvite(tokenHash: Bytes, expiresAt: number): Promise<void>;
  /** Spends an invite: its expiry when it existed unexpired (it is gone now), else null. */
  takeInvite(tokenHash: Bytes, now: number): Promise<number | null>;
  getBackup(userId: string): Promise<Bytes | null>;
  /** Replaces the user's sealed profile (opaque to the relay). */
  putProfile(userId: string, profile: Bytes): Promise<void>;
  /** The user's sealed profile (null when none was stored); null for no such user. */
  getProfile(userId: string): Promise<{ profile: Bytes | null } | null>;

  // Devices and sessions -------------------------------------------------------------------------------------------
  /** The owner of a device, or null. */
  getDeviceOwner(deviceId: string): Promise<string | null>;
  /** Of these device ids, the ones that name no device. */
  findUnknownDevices(deviceIds: string[]): Promise<string[]>;
  /**
   * Starts a session family on a device, creating the device first when `newDevice`. With `maxDevices`, a new
   * device that would give the user more than that many is not created ('device_limit', nothing stored).
   */
  startSession(args: {
    userId: string;
    deviceId: string;
    newDevice: boolean;
    session: NewSession;
    now: number;
    maxDevices?: number;
  }): Promise<'started' | 'device_limit'>;
  countDevices(userId: string): Promise<number>;
  getSession(familyId: string): Promise<SessionRecord | null>;
  /**
   * Spends one refresh token and stores its successor, atomically; see RotateOutcome. A family that started at or
   * before `startedAfter` is over (the absolute session lifetime): `invalid`, and nothing is written. The
   * successor's expiry is cut to the family's end (its start + now − startedAfter).
   */
  rotateRefreshToken(
    tokenHash: Bytes,
    next: RefreshTokenRecord,
    now: number,
    startedAfter: number,
  ): Promise<RotateOutcome>;
  revokeFamily(familyId: string): Promise<void>;

  // Prekeys ------------------------------------------------------------------------------------------------------
  /**
   * Replaces the signed and last-resort KEM prekeys and adds one-time (KEM) prekeys (same keyId replaces), in one
   * transaction. 'too_many' stores nothing.
   */
  putPrekeys(deviceId: string, keys: PrekeyUpload, max: PrekeyLimits): Promise<'stored' | 'too_many'>;
  countPrekeys(deviceId: string): Promise<PrekeyCounts>;
  /**
   * The user's devices that have a signed prekey, oldest first, each with one one-time prekey and one one-time KEM
   * prekey taken (handed out once; the last-resort KEM prekey when no one-time one is left); with `takeFor`, only the
   * devices in it get one-time ones (the others `null`, and their last-resort KEM prekey).
   */
  takeBundle(userId: string, takeFor?: ReadonlySet<string> | null): Promise<BundleRecord | null>;

  // Groups -------------------------------------------------------------------------------------------------------
  createGroup(groupId: string, members: GroupMemberRecord[], now: number): Promise<GroupRecord>;
  getGroup(groupId: string): Promise<GroupRecord | null>;
  listGroups(userId: string): Promise<GroupRecord[]>;
  /** Compare-and-set on `version`; an empty member list deletes the group. False when the version moved. */
  replaceGroupMembers(
    groupId: string,
    expectedVersion: number,
    members: GroupMemberRecord[],
    now: number,
  ): Promise<boolean>;
  /** How many groups each of these users is a member of (users in none, or unknown, count 0). */
  countGroups(userIds: string[]): Promise<Map<string, number>>;
  /** Who an ephemeral group send reaches (read-only; stored sends resolve this inside applyWrites). */
  groupRecipients(groupId: string, senderUserId: string, senderDeviceId: string): Promise<GroupRecipientsOutcome>;

  // Mailbox ------------------------------------------------------------------------------------------------------
  /** Commits a whole batch in one durable transaction; one outcome per send, in order. ts of new sends = now. */
  applyWrites(batch: WriteBatch, now: number): Promise<SendOutcome[]>;
  /** A device's entries with seq > afterSeq in seq order, at most `limit` and about `maxBytes` of bodies (≥ 1). */
  fetchMailbox(deviceId: string, afterSeq: number, limit: number, maxBytes: number): Promise<MailboxEntry[]>;
  countMailbox(deviceId: string): Promise<number>;
  /**
   * The devices that still hold an unacknowledged entry of the stored send (senderDeviceId, id) committed at `ts`
   * (the ts its duplicate outcome answered). May include a device of another send that reused the same id in the
   * same commit; never a device that holds no entry of that id.
   */
  pendingRecipients(senderDeviceId: string, id: string, ts: number): Promise<string[]>;

  // Contacts (who has written to whom; presence is shared along them) ----------------------------------------------
  /**
   * Records that `fromUserId` has written to the owners of these devices (the sender's own devices are skipped);
   * resolves to those owners.
   */
  recordContacts(fromUserId: string, toDeviceIds: string[]): Promise<string[]>;
  /** Of `fromUserIds`, the users who have written to `toUserId`. */
  contactsWritingTo(toUserId: string, fromUserIds: string[]): Promise<string[]>;
  sweepExpired(cutoffs: SweepCutoffs): Promise<SweepResult>;

  // Operations -----------------------------------------------------------------------------------------------------
  counts(): Promise<StoreCounts>;
  /** At most `limit` accounts with a username after `after` (exclusive; '' for the first page), by username. */
  listAccounts(after: string, limit: number): Promise<AccountSummary[]>;
  /** Sets or clears the account's deactivation; false when there is no such user. */
  setUserDisabled(userId: string, disabled: boolean): Promise<boolean>;
  /** Revokes every live session family of the user; returns their ids. */
  revokeUserSessions(userId: string): Promise<string[]>;
  /**
   * Deletes one device with its prekeys, sessions, mailbox entries and the idempotency records of what it sent;
   * returns the ids of the session families that went with it, or null when there was no such device.
   */
  deleteDevice(deviceId: string): Promise<string[] | null>;

  // Devices as their owner manages them (issue #14) ----------------------------------------------------------------
  /** The user's devices, oldest first. */
  listDevices(userId: string): Promise<DeviceRecord[]>;
  /** Stores the sealed name of the user's device; false when the user has no such device. */
  setDeviceName(userId: string, deviceId: string, name: Bytes): Promise<boolean>;
  /** Records activity of a device (sign-in, refresh, connection); an unknown device is ignored. */
  touchDevice(deviceId: string, at: number): Promise<void>;
  /**
   * Removes one of the user's devices as `deleteDevice` does, and remembers that it was removed (so that its
   * still-valid access tokens are answered `device_removed`); returns the session families that went with it, or
   * null when the user has no such device (nothing changed).
   */
  removeOwnDevice(userId: string, deviceId: string, now: number): Promise<string[] | null>;
  /** When the device was removed by its owner, or null. */
  deviceRemovedAt(deviceId: string): Promise<number | null>;
  // Blocks (who refuses what whom sends; see relay/PROTOCOL.md "Blocks") ------------------------------------------
  /** `blocker` blocks `blocked` (already blocked: no change). 'limit' when `blocker` already blocks `max` users. */
  putBlock(blocker: string, blocked: string, now: number, max: number): Promise<'stored' | 'limit'>;
  /** Ends the block, if any. */
  deleteBlock(blocker: string, blocked: string): Promise<void>;
  /** The users `blocker` blocks, oldest block first (users deleted since are gone from the list). */
  listBlocks(blocker: string): Promise<{ userId: string; username: string }[]>;
  /** Of `userIds`, the users who block `blocked`. */
  usersBlocking(blocked: string, userIds: string[]): Promise<string[]>;
  /** Of these device ids, the ones whose owner blocks `sender` (unknown devices are left out). */
  devicesBlocking(sender: string, deviceIds: string[]): Promise<string[]>;
  /** Every user someone blocks, once each (the relay's in-memory block index is built from it). */
  blockedUsers(): Promise<string[]>;
  // Key transparency log (issue #16): append-only; deleting accounts or devices never touches it -------------------
  /** Leaves whose nodes are all stored: the tree size the relay may sign. */
  ktSize(): Promise<number>;
  /**
   * Appends a leaf at `leaf.index` with the nodes it completes, only while the size is `leaf.index` and the account
   * has no entry `leaf.seq` yet (a compare-and-set: of two concurrent appends one wins); 'conflict' otherwise.
   */
  ktAppend(leaf: KtLeafRecord, nodes: KtNodeRecord[]): Promise<'appended' | 'conflict'>;
  /**
   * Completes an append that stored its leaf but not yet its nodes (a crash or a racing node on MongoDB, which has
   * no transactions): stores the nodes and moves the size to `size` if it was lower.
   */
  ktFinish(size: number, nodes: KtNodeRecord[]): Promise<void>;
  /** The stored nodes among `keys` (missing ones are left out). */
  ktNodes(keys: { level: number; index: number }[]): Promise<KtNodeRecord[]>;
  ktLeaf(index: number): Promise<KtLeafRecord | null>;
  /** The account's latest entry with an index below `size`, or null. */
  ktLatestOf(userId: string, size: number): Promise<KtLeafRecord | null>;
  /**
   * Erases what the log says about a deleted account: its entries' bytes and user id (replaced by `~<index>`). Their
   * hashes stay in the tree, so every proof still verifies, and nothing readable of the account remains.
   */
  ktForget(userId: string): Promise<void>;
  /** The account's entries with `from` ≤ index < `to`, oldest first, at most `limit`. */
  ktEntriesOf(userId: string, from: number, to: number, limit: number): Promise<KtLeafRecord[]>;
  /**
   * Stores a witness's cosignature (replacing the one of the same witness and size), then keeps only that witness's
   * `keep` newest sizes: bounded, whatever the witness posts.
   */
  ktPutCosignature(cosignature: KtCosignatureRecord, keep: number): Promise<void>;
  /** The stored cosignatures of these witnesses (key ids), largest size first. */
  ktCosignatures(keyIds: string[]): Promise<KtCosignatureRecord[]>;
  // Blobs (issue #15): attachment ciphertext, see BlobStore. `deleteUser` deletes the user's blobs too. ------------
  readonly blobs: BlobStore;
}

// Blobs (issue #15) ----------------------------------------------------------------------------------------------

/** One blob's metadata. `received` counts the bytes durably stored; complete once `completedAt` is set. */
export interface BlobRecord {
  blobId: string;
  /** The uploading user. */
  owner: string;
  size: number;
  received: number;
  /** The declared SHA-256 (base64url) that the bytes must have on completion. */
  sha256: string;
  createdAt: number;
  completedAt: number | null;
  expiresAt: number;
}

/** BlobStore.write: another writer committed this offset first (several relay nodes); `received` moved past it. */
export class BlobWriteConflict extends Error {
  constructor() {
    super('another request committed this offset');
  }
}

export interface NewBlob {
  blobId: string;
  owner: string;
  size: number;
  sha256: string;
  now: number;
  expiresAt: number;
}

/**
 * Attachment blobs: metadata and bytes (SQLite relay: files under DATA_DIR/blobs; MongoDB relay: GridFS). No method
 * holds a whole blob in memory. Writers are serialised per blob by the caller (BlobService).
 */
export interface BlobStore {
  /** Reserves an upload; 'quota_exceeded' (nothing stored) when the owner's blobs' sizes plus `size` pass `quota`. */
  create(blob: NewBlob, quota: number): Promise<'created' | 'quota_exceeded'>;
  get(blobId: string): Promise<BlobRecord | null>;
  /**
   * Appends the bytes of `source` at `offset` (the blob's `received`), makes them durable, then records the new
   * `received` and returns it. When `source` throws (an aborted request, a limit), none of its bytes are kept and
   * `received` stays as it was; the error is rethrown.
   */
  write(blobId: string, offset: number, source: AsyncIterable<Uint8Array>): Promise<number>;
  /** Bytes `start` to `end` (inclusive) of a blob, streamed. */
  read(blobId: string, start: number, end: number): Readable;
  /** Marks a fully received blob complete (its digest was checked) with its expiry. */
  complete(blobId: string, now: number, expiresAt: number): Promise<void>;
  /** Deletes blobs (metadata, links and bytes); unknown ids are ignored. */
  delete(blobIds: string[]): Promise<void>;
  /**
   * Links the owner's complete blobs among `blobIds` to a stored message (its sending device, id and commit ts, as
   * `pendingRecipients` takes them); returns those linked.
   */
  link(owner: string, senderDeviceId: string, blobIds: string[], messageId: string, ts: number): Promise<string[]>;
  /**
   * Drops the links whose message has no mailbox entry left (every recipient device acknowledged it, or it expired);
   * a blob left with no link then expires at `graceUntil` at the latest. Returns how many blobs got that expiry.
   */
  settleLinks(graceUntil: number): Promise<number>;
  /** Deletes the blobs whose expiry is at or before `now` with their bytes; returns how many. */
  sweep(now: number): Promise<number>;
  /** Bytes reserved by the owner's blobs (complete or not): what the quota counts. */
  usage(owner: string): Promise<number>;
}
