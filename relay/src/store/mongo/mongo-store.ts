// The MongoDB Store backend (mongoose), for relays that share one database across nodes. Writes that must be atomic
// are single-document writes guarded by unique indexes or compare-and-set filters; writes use write concern
// "majority", so an acknowledged send survives the loss of the primary. Also runs on FerretDB 1.x (no TTL indexes,
// no transactions): the relay's periodic sweep is the portable expiry, TTL indexes the backstop where they exist.
import mongoose from 'mongoose';
import type { Connection } from 'mongoose';
import type {
  KtCosignatureRecord,
  KtLeafRecord,
  KtNodeRecord,
  BundleRecord,
  Bytes,
  DeviceRecord,
  GroupMemberRecord,
  GroupRecipientsOutcome,
  GroupRecord,
  MailboxEntry,
  NewAccount,
  NewSession,
  KemPrekeyRecord,
  PrekeyCounts,
  PrekeyLimits,
  PrekeyUpload,
  PresenceRecord,
  RefreshTokenRecord,
  RotateOutcome,
  SendOutcome,
  SessionRecord,
  SignedPrekeyRecord,
  AccountSummary,
  Store,
  StoreCounts,
  SweepCutoffs,
  SweepResult,
  UserRecord,
  WriteBatch,
} from '../store.js';
import { withoutMember } from '../group-rules.js';
import { MongoBlobs } from './blobs.js';
import { MongoBlocks } from './blocks.js';
import { MongoKt } from './transparency.js';
import { MongoMailbox } from './mailbox.js';
import { TTL_INDEXES, defineModels } from './models.js';
import type { DeviceDoc, FamilyDoc, GroupDoc, KemPrekeyDoc, Models, PrekeyDoc, UserDoc } from './models.js';
import { redactUrl } from '../../log.js';
import { TurnBatch } from '../turn-batch.js';
import { bytesOf, inBoundedRequests, isDuplicateKey, isNotImplemented, requiredBytes } from './util.js';

export interface MongoStoreOptions {
  /** mongodb:// or mongodb+srv:// URI; its path names the database (default `weconnect`). */
  uri: string;
  /** Overrides the database named by the URI (tests use one per store). */
  dbName?: string;
  /** How long a message document may live at most: the longer of mailbox TTL and idempotency window. */
  retentionDays: number;
  /** Create TTL indexes (default true). Tests with fixed past times turn them off: the server's clock would expire them. */
  ttlIndexes?: boolean;
  /** How long to look for a server before giving up (default 5000 ms). */
  serverSelectionTimeoutMs?: number;
}

const toUser = (d: UserDoc): UserRecord => ({
  userId: d._id,
  username: d.username,
  salt: requiredBytes(d.salt),
  authHash: d.authHash,
  identityKey: requiredBytes(d.identityKey),
  sharePresence: d.sharePresence,
  lastSeen: d.lastSeen ?? null,
  disabled: d.disabled === true,
});

const toGroup = (d: GroupDoc): GroupRecord => ({
  groupId: d._id,
  version: d.version,
  members: d.members.map((m) => ({ userId: m.userId, admin: m.admin })),
});

const kemDoc = (deviceId: string, k: KemPrekeyRecord): KemPrekeyDoc => ({
  deviceId,
  lastResort: k.lastResort,
  keyId: k.keyId,
  publicKey: Buffer.from(k.publicKey),
  signature: Buffer.from(k.signature),
});

const signedOf = (d: DeviceDoc): SignedPrekeyRecord | null =>
  d.signedPrekey
    ? {
        keyId: d.signedPrekey.keyId,
        publicKey: requiredBytes(d.signedPrekey.publicKey),
        signature: requiredBytes(d.signedPrekey.signature),
      }
    : null;

export class MongoStore implements Store {
  readonly kind = 'mongodb' as const;
  private closed = false;
  private blockDocs: MongoBlocks | null = null;
  private blobDocs: MongoBlobs | null = null;
  private ktDocs: MongoKt | null = null;
  /**
   * Activity times of one turn, written in unordered bulk writes (see TurnBatch), of `updateMany` statements: each
   * matches one device, but ends its read before the next (see BULK_STATEMENTS_PER_REQUEST).
   */
  private readonly touches = new TurnBatch(async (times) => {
    const ops = [...times].map(([deviceId, at]) => ({
      updateMany: {
        filter: { _id: deviceId, $or: [{ lastActiveAt: null }, { lastActiveAt: { $lt: at } }] },
        update: { $set: { lastActiveAt: at } },
      },
    }));
    await inBoundedRequests(ops, (chunk) => this.m.devices.bulkWrite(chunk, { ordered: false }));
  });

  private constructor(
    private readonly connection: Connection,
    private readonly m: Models,
    private readonly mailbox: MongoMailbox,
    /** Whether the server accepted the TTL indexes (FerretDB 1.x does not: the sweep alone expires). */
    readonly ttlIndexes: boolean,
  ) {}

  /** Connects (failing within serverSelectionTimeoutMs when no server answers) and creates the indexes. */
  static async open(options: MongoStoreOptions): Promise<MongoStore> {
    const timeout = options.serverSelectionTimeoutMs ?? 5000;
    const connection = mongoose.createConnection(options.uri, {
      bufferCommands: false,
      autoIndex: false,
      autoCreate: false,
      serverSelectionTimeoutMS: timeout,
      writeConcern: { w: 'majority' },
      ...(options.dbName !== undefined ? { dbName: options.dbName } : {}),
    });
    try {
      await connection.asPromise();
    } catch (err) {
      await connection.close().catch(() => undefined);
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot reach MongoDB at ${redactUrl(options.uri)} within ${timeout} ms: ${reason}`);
    }
    try {
      const models = defineModels(connection);
      for (const model of Object.values(models)) await model.createIndexes();
      let ttl = options.ttlIndexes ?? true;
      if (ttl) {
        for (const { model, field } of TTL_INDEXES) {
          try {
            await models[model].collection.createIndex({ [field]: 1 }, { expireAfterSeconds: 0 });
          } catch (err) {
            if (!isNotImplemented(err)) throw err;
            ttl = false;
          }
        }
      }
      const mailbox = new MongoMailbox(models, { retentionDays: options.retentionDays });
      await mailbox.init();
      const store = new MongoStore(connection, models, mailbox, ttl);
      await store.blobs.init();
      return store;
    } catch (err) {
      await connection.close().catch(() => undefined);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.touches.close();
    // Forced: the relay has already waited for its queued writes; an operation the server never answers must not
    // keep the process alive.
    await this.connection.close(true);
  }

  async ping(): Promise<void> {
    const db = this.connection.db;
    if (this.closed || !db) throw new Error('the MongoDB store is closed');
    await db.command({ ping: 1 });
  }

  /** Drops this store's database (tests). */
  async dangerousTestOnlyDropDatabase(): Promise<void> {
    if (process.env.VITEST === undefined) throw new Error('dangerousTestOnlyDropDatabase is for tests only');
    await this.connection.dropDatabase();
  }

  /** How many device usage figures the caps read from the database so far (tests). */
  dangerousTestOnlyUsageReads(): number {
    return this.mailbox.usage.reads;
  }

  // Accounts -------------------------------------------------------------------------------------------------------

  /**
   * The device, its keys and the session are written first, under ids nobody knows yet; inserting the user (whose
   * username is unique) is the commit point. A taken name removes what was written.
   */
  async createAccount(a: NewAccount): Promise<'created' | 'username_taken'> {
    if (await this.m.users.exists({ username: a.username })) return 'username_taken';
    await this.insertDevice(a.userId, a.deviceId, a.now, a.signedPrekey);
    if (a.oneTimePrekeys.length > 0) {
      await this.m.prekeys.insertMany(
        a.oneTimePrekeys.map((k) => ({ deviceId: a.deviceId, keyId: k.keyId, publicKey: Buffer.from(k.publicKey) })),
        { ordered: true, lean: true },
      );
    }
    const kem = [...(a.kemLastResortPrekey ? [a.kemLastResortPrekey] : []), ...(a.kemOneTimePrekeys ?? [])];
    if (kem.length > 0) {
      await this.m.kemPrekeys.insertMany(
        kem.map((k) => kemDoc(a.deviceId, k)),
        { ordered: true, lean: true },
      );
    }
    await this.insertFamily(a.userId, a.deviceId, a.session, a.now);
    try {
      await this.m.users.create({
        _id: a.userId,
        username: a.username,
        salt: Buffer.from(a.salt),
        authHash: a.authHash,
        identityKey: Buffer.from(a.identityKey),
        sharePresence: true,
        lastSeen: null,
        backup: null,
        createdAt: a.now,
      });
      return 'created';
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      await Promise.all([
        this.m.families.deleteOne({ _id: a.session.familyId }),
        this.m.prekeys.deleteMany({ deviceId: a.deviceId }),
        this.m.kemPrekeys.deleteMany({ deviceId: a.deviceId }),
        this.m.devices.deleteOne({ _id: a.deviceId }),
      ]);
      return 'username_taken';
    }
  }

  async findUserByUsername(username: string): Promise<UserRecord | null> {
    const doc = await this.m.users.findOne({ username }, { backup: 0, profile: 0 }).lean();
    return doc ? toUser(doc) : null;
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const doc = await this.m.users.findById(userId, { backup: 0, profile: 0 }).lean();
    return doc ? toUser(doc) : null;
  }

  async deleteUser(userId: string): Promise<boolean> {
    await this.blobs.deleteOwned(userId);
    const deleted = await this.m.users.deleteOne({ _id: userId });
    const devices = (await this.m.devices.find({ userId }, { _id: 1 }).lean()).map((d) => d._id);
    for (const deviceId of devices) {
      await this.m.messages.updateMany(
        { to: deviceId },
        { $unset: { [`entries.${deviceId}`]: '' }, $pull: { to: deviceId } },
      );
    }
    for (const deviceId of devices) await this.forgetSender(deviceId);
    await Promise.all([
      this.m.prekeys.deleteMany({ deviceId: { $in: devices } }),
      this.m.kemPrekeys.deleteMany({ deviceId: { $in: devices } }),
      this.m.families.deleteMany({ userId }),
      this.m.devices.deleteMany({ userId }),
      this.m.contacts.deleteMany({ $or: [{ to: userId }, { from: userId }] }),
      this.m.removedDevices.deleteMany({ userId }),
      this.blocks.forgetUser(userId),
    ]);
    for (const group of await this.m.groups.find({ memberIds: userId }).lean()) {
      await this.removeMember(group, userId);
    }
    return deleted.deletedCount > 0;
  }

  async searchUsers(prefix: string, limit: number): Promise<{ userId: string; username: string }[]> {
    // A range instead of a regex: the prefix is literal, and every username character sorts below U+007F.
    const docs = await this.m.users
      .find({ username: { $gte: prefix, $lt: `${prefix}\u007f` } }, { username: 1 })
      .sort({ username: 1 })
      .limit(limit)
      .lean();
    return docs.map((d) => ({ userId: d._id, username: d.username }));
  }

  async findUnknownUsers(userIds: string[]): Promise<string[]> {
    const unique = [...new Set(userIds)];
    const found = new Set((await this.m.users.find({ _id: { $in: unique } }, { _id: 1 }).lean()).map((d) => d._id));
    return unique.filter((id) => !found.has(id));
  }

  async setSharePresence(userId: string, share: boolean): Promise<void> {
    // Sharing off: the last-seen time is forgotten too (and applyWrites stores none while it is off).
    const update = share ? { $set: { sharePresence: true } } : { $set: { sharePresence: false, lastSeen: null } };
    await this.m.users.updateOne({ _id: userId }, update);
  }

  async getPresence(userIds: string[]): Promise<PresenceRecord[]> {
    const docs = await this.m.users
      .find({ _id: { $in: [...new Set(userIds)] } }, { sharePresence: 1, lastSeen: 1 })
      .lean();
    return docs.map((d) => ({ userId: d._id, sharePresence: d.sharePresence, lastSeen: d.lastSeen ?? null }));
  }

  async putBackup(userId: string, backup: Bytes): Promise<void> {
    await this.m.users.updateOne({ _id: userId }, { $set: { backup: Buffer.from(backup) } });
  }

  async changePassword(
    userId: string,
    expectedAuthHash: string,
    next: { salt: Bytes; authHash: string; backup: Bytes },
  ): Promise<boolean> {
    // Salt, hash and backup live in the one user document: a single conditional update is atomic.
    const result = await this.m.users.updateOne(
      { _id: userId, authHash: expectedAuthHash },
      { $set: { salt: Buffer.from(next.salt), authHash: next.authHash, backup: Buffer.from(next.backup) } },
    );
    return result.matchedCount === 1;
  }

  async getBackup(userId: string): Promise<Bytes | null> {
    const doc = await this.m.users.findById(userId, { backup: 1 }).lean();
    return bytesOf(doc?.backup);
  }

  async putProfile(userId: string, profile: Bytes): Promise<void> {
    await this.m.users.updateOne({ _id: userId }, { $set: { profile: Buffer.from(profile) } });
  }

  async getProfile(userId: string): Promise<{ profile: Bytes | null } | null> {
    const doc = await this.m.users.findById(userId, { profile: 1 }).lean();
    return doc ? { profile: bytesOf(doc.profile) } : null;
  }

  async putInvite(tokenHash: Bytes, expiresAt: number): Promise<void> {
    const _id = Buffer.from(tokenHash).toString('hex');
    await this.m.invites.replaceOne({ _id }, { _id, expiresAt }, { upsert: true });
  }

  async takeInvite(tokenHash: Bytes, now: number): Promise<number | null> {
    const _id = Buffer.from(tokenHash).toString('hex');
    const doc = await this.m.invites.findOneAndDelete({ _id, expiresAt: { $gt: now } }).lean();
    return doc?.expiresAt ?? null;
  }

  // Devices and sessions ---------------------------------------------------------------------------------------------

  async getDeviceOwner(deviceId: string): Promise<string | null> {
    return (await this.m.devices.findById(deviceId, { userId: 1 }).lean())?.userId ?? null;
  }

  async findUnknownDevices(deviceIds: string[]): Promise<string[]> {
    const unique = [...new Set(deviceIds)];
    const found = new Set((await this.m.devices.find({ _id: { $in: unique } }, { _id: 1 }).lean()).map((d) => d._id));
    return unique.filter((id) => !found.has(id));
  }

  async startSession(args: {
    userId: string;
    deviceId: string;
    newDevice: boolean;
    session: NewSession;
    now: number;
    maxDevices?: number;
  }): Promise<'started' | 'device_limit'> {
    if (args.newDevice) {
      const max = args.maxDevices;
      if (max !== undefined && (await this.countDevices(args.userId)) >= max) return 'device_limit';
      await this.insertDevice(args.userId, args.deviceId, args.now, null);
      if (max !== undefined) {
        // No transaction: concurrent sign-ins may all pass the count. The devices beyond the cap in (age, id)
        // order take themselves back out, so the account never keeps more than `max`.
        const kept = await this.m.devices
          .find({ userId: args.userId }, { _id: 1 })
          .sort({ createdAt: 1, _id: 1 })
          .limit(max)
          .lean();
        if (!kept.some((d) => d._id === args.deviceId)) {
          await this.m.devices.deleteOne({ _id: args.deviceId });
          return 'device_limit';
        }
      }
    }
    await this.insertFamily(args.userId, args.deviceId, args.session, args.now);
    return 'started';
  }

  countDevices(userId: string): Promise<number> {
    return this.m.devices.countDocuments({ userId });
  }

  async getSession(familyId: string): Promise<SessionRecord | null> {
    const family = await this.m.families.findById(familyId, { userId: 1, deviceId: 1, revoked: 1 }).lean();
    if (!family || !(await this.deviceBelongs(family.deviceId, family.userId))) return null;
    return { familyId, userId: family.userId, deviceId: family.deviceId, revoked: family.revoked };
  }

  async rotateRefreshToken(
    tokenHash: Bytes,
    next: RefreshTokenRecord,
    now: number,
    startedAfter: number,
  ): Promise<RotateOutcome> {
    const hash = Buffer.from(tokenHash);
    const family = await this.familyOfToken(hash);
    if (!family || family.revoked || !(await this.deviceBelongs(family.deviceId, family.userId))) {
      return { status: 'invalid' };
    }
    if (!requiredBytes(family.token).equals(hash)) return this.revokeReused(family._id);
    if (family.tokenExpiresAt <= now || family.createdAt <= startedAfter) return { status: 'invalid' };
    const expiresAt = Math.min(next.expiresAt, family.createdAt + (now - startedAfter));
    // Compare-and-set on the live token: of two concurrent refreshes with one token, exactly one rotates.
    const rotated = await this.m.families.updateOne(
      { _id: family._id, token: hash, revoked: false },
      {
        $set: {
          token: Buffer.from(next.tokenHash),
          tokenExpiresAt: expiresAt,
          expireAt: new Date(expiresAt),
        },
        $push: { spent: { hash, expiresAt: family.tokenExpiresAt } },
        $min: { spentExpiresFirst: family.tokenExpiresAt },
      },
    );
    if (rotated.modifiedCount === 1) {
      return {
        status: 'rotated',
        session: { familyId: family._id, userId: family.userId, deviceId: family.deviceId, revoked: false },
      };
    }
    const now2 = await this.familyOfToken(hash);
    if (!now2 || now2.revoked) return { status: 'invalid' };
    return this.revokeReused(now2._id); // the race was lost: the token is spent now
  }

  async revokeFamily(familyId: string): Promise<void> {
    await this.m.families.updateOne({ _id: familyId }, { $set: { revoked: true } });
  }

  // Prekeys --------------------------------------------------------------------------------------------------------

  /**
   * Checks the cap, then writes. Without a transaction two uploads of one device that run at the same moment can
   * both pass the check: the cap can then be exceeded by one upload (at most 100 keys).
   */
  async putPrekeys(deviceId: string, keys: PrekeyUpload, max: PrekeyLimits): Promise<'stored' | 'too_many'> {
    const oneTime = keys.oneTimePrekeys ?? [];
    const kemOneTime = keys.kemOneTimePrekeys ?? [];
    if (oneTime.length > 0) {
      const keyIds = [...new Set(oneTime.map((k) => k.keyId))];
      const [stored, replaced] = await Promise.all([
        this.m.prekeys.countDocuments({ deviceId }),
        this.m.prekeys.countDocuments({ deviceId, keyId: { $in: keyIds } }),
      ]);
      if (stored + keyIds.length - replaced > max.oneTime) return 'too_many';
    }
    if (kemOneTime.length > 0) {
      const keyIds = [...new Set(kemOneTime.map((k) => k.keyId))];
      const [stored, replaced] = await Promise.all([
        this.m.kemPrekeys.countDocuments({ deviceId, lastResort: false }),
        this.m.kemPrekeys.countDocuments({ deviceId, lastResort: false, keyId: { $in: keyIds } }),
      ]);
      if (stored + keyIds.length - replaced > max.kemOneTime) return 'too_many';
    }
    if (keys.signedPrekey) {
      const s = keys.signedPrekey;
      await this.m.devices.updateOne(
        { _id: deviceId },
        {
          $set: {
            signedPrekey: { keyId: s.keyId, publicKey: Buffer.from(s.publicKey), signature: Buffer.from(s.signature) },
          },
        },
      );
    }
    if (oneTime.length > 0) {
      // updateMany on the unique (deviceId, keyId), in bounded requests: see BULK_STATEMENTS_PER_REQUEST.
      const ops = oneTime.map((k) => ({
        updateMany: {
          filter: { deviceId, keyId: k.keyId },
          update: { $set: { publicKey: Buffer.from(k.publicKey) } },
          upsert: true,
        },
      }));
      await inBoundedRequests(ops, (chunk) => this.m.prekeys.bulkWrite(chunk, { ordered: true }));
    }
    if (keys.kemLastResortPrekey) {
      // The new last-resort key first, then the older ones go: a bundle in between finds one or the other.
      const k = keys.kemLastResortPrekey;
      await this.m.kemPrekeys.updateMany(
        { deviceId, lastResort: true, keyId: k.keyId },
        { $set: { publicKey: Buffer.from(k.publicKey), signature: Buffer.from(k.signature) } },
        { upsert: true },
      );
      await this.m.kemPrekeys.deleteMany({ deviceId, lastResort: true, keyId: { $ne: k.keyId } });
    }
    if (kemOneTime.length > 0) {
      const ops = kemOneTime.map((k) => ({
        updateMany: {
          filter: { deviceId, lastResort: false, keyId: k.keyId },
          update: { $set: { publicKey: Buffer.from(k.publicKey), signature: Buffer.from(k.signature) } },
          upsert: true,
        },
      }));
      await inBoundedRequests(ops, (chunk) => this.m.kemPrekeys.bulkWrite(chunk, { ordered: true }));
    }
    return 'stored';
  }

  async countPrekeys(deviceId: string): Promise<PrekeyCounts> {
    const [count, device, kemCount, lastResort] = await Promise.all([
      this.m.prekeys.countDocuments({ deviceId }),
      this.m.devices.findById(deviceId, { signedPrekey: 1 }).lean(),
      this.m.kemPrekeys.countDocuments({ deviceId, lastResort: false }),
      this.m.kemPrekeys.findOne({ deviceId, lastResort: true }, { keyId: 1 }).lean(),
    ]);
    return {
      oneTimePrekeys: count,
      signedPrekeyId: device?.signedPrekey?.keyId ?? null,
      kemOneTimePrekeys: kemCount,
      kemLastResortPrekeyId: lastResort?.keyId ?? null,
    };
  }

  /** Each device's lowest one-time prekey, claimed by a delete that only one taker can win (handed out once). */
  async takeBundle(userId: string, takeFor: ReadonlySet<string> | null = null): Promise<BundleRecord | null> {
    const user = await this.m.users.findById(userId, { username: 1, identityKey: 1 }).lean();
    if (!user) return null;
    const devices = await this.m.devices.find({ userId }).sort({ createdAt: 1, _id: 1 }).lean();
    const bundle: BundleRecord = {
      userId,
      username: user.username,
      identityKey: requiredBytes(user.identityKey),
      devices: [],
    };
    for (const device of devices) {
      const signedPrekey = signedOf(device);
      if (!signedPrekey) continue;
      const takes = !takeFor || takeFor.has(device._id);
      const taken = takes ? await this.takeOneTimePrekey(device._id) : null;
      const kem =
        (takes ? await this.takeKemOneTimePrekey(device._id) : null) ??
        (await this.m.kemPrekeys.findOne({ deviceId: device._id, lastResort: true }).lean());
      bundle.devices.push({
        deviceId: device._id,
        signedPrekey,
        oneTimePrekey: taken ? { keyId: taken.keyId, publicKey: requiredBytes(taken.publicKey) } : null,
        kemPrekey: kem
          ? {
              keyId: kem.keyId,
              lastResort: kem.lastResort,
              publicKey: requiredBytes(kem.publicKey),
              signature: requiredBytes(kem.signature),
            }
          : null,
      });
    }
    return bundle;
  }

  // Groups ---------------------------------------------------------------------------------------------------------

  async createGroup(groupId: string, members: GroupMemberRecord[], now: number): Promise<GroupRecord> {
    const doc: GroupDoc = {
      _id: groupId,
      version: 1,
      members: members.map((m) => ({ userId: m.userId, admin: m.admin })),
      memberIds: members.map((m) => m.userId),
      createdAt: now,
    };
    await this.m.groups.create(doc);
    return toGroup(doc);
  }

  async getGroup(groupId: string): Promise<GroupRecord | null> {
    const doc = await this.m.groups.findById(groupId).lean();
    return doc ? toGroup(doc) : null;
  }

  async countGroups(userIds: string[]): Promise<Map<string, number>> {
    const wanted = [...new Set(userIds)];
    const rows = await this.m.groups.aggregate<{ _id: string; n: number }>([
      { $match: { memberIds: { $in: wanted } } },
      { $unwind: '$memberIds' },
      { $match: { memberIds: { $in: wanted } } },
      { $group: { _id: '$memberIds', n: { $sum: 1 } } },
    ]);
    const counts = new Map(rows.map((r) => [r._id, r.n]));
    for (const id of userIds) if (!counts.has(id)) counts.set(id, 0);
    return counts;
  }

  async listGroups(userId: string): Promise<GroupRecord[]> {
    const docs = await this.m.groups.find({ memberIds: userId }).sort({ createdAt: 1, _id: 1 }).lean();
    return docs.map(toGroup);
  }

  async replaceGroupMembers(
    groupId: string,
    expectedVersion: number,
    members: GroupMemberRecord[],
    _now: number,
  ): Promise<boolean> {
    if (members.length === 0) {
      return (await this.m.groups.deleteOne({ _id: groupId, version: expectedVersion })).deletedCount === 1;
    }
    const res = await this.m.groups.updateOne(
      { _id: groupId, version: expectedVersion },
      {
        $set: {
          version: expectedVersion + 1,
          members: members.map((m) => ({ userId: m.userId, admin: m.admin })),
          memberIds: members.map((m) => m.userId),
        },
      },
    );
    return res.matchedCount === 1;
  }

  groupRecipients(groupId: string, senderUserId: string, senderDeviceId: string): Promise<GroupRecipientsOutcome> {
    return this.mailbox.groupRecipients(groupId, senderUserId, senderDeviceId);
  }

  // Mailbox --------------------------------------------------------------------------------------------------------

  /**
   * Not one transaction: each stored send is one atomic insert (its idempotency key and every entry), acks and
   * last-seen times are idempotent updates. A failure part-way leaves every send either wholly stored or absent;
   * the batch then rejects and its senders, unanswered, send again (a duplicate answers the first ts).
   */
  applyWrites(batch: WriteBatch, now: number): Promise<SendOutcome[]> {
    return this.mailbox.apply(batch, now);
  }

  fetchMailbox(deviceId: string, afterSeq: number, limit: number, maxBytes: number): Promise<MailboxEntry[]> {
    return this.mailbox.fetch(deviceId, afterSeq, limit, maxBytes);
  }

  countMailbox(deviceId: string): Promise<number> {
    return this.mailbox.count(deviceId);
  }

  async pendingRecipients(senderDeviceId: string, id: string, _ts: number): Promise<string[]> {
    const doc = await this.m.messages.findOne({ key: `${senderDeviceId}:${id}` }, { to: 1 }).lean();
    return doc?.to ?? [];
  }

  async recordContacts(fromUserId: string, toDeviceIds: string[]): Promise<string[]> {
    const devices = await this.m.devices.find({ _id: { $in: [...new Set(toDeviceIds)] } }, { userId: 1 }).lean();
    const owners = [...new Set(devices.map((d) => d.userId))].filter((u) => u !== fromUserId);
    if (owners.length === 0) return owners;
    // updateMany on the unique _id, in bounded requests: FerretDB holds a pooled connection per matched updateOne
    // until its whole request returns, so a large group's pairs as updateOnes in one request could stall the store.
    const ops = owners.map((to) => ({
      updateMany: { filter: { _id: `${to}:${fromUserId}` }, update: { $set: { to, from: fromUserId } }, upsert: true },
    }));
    // Unordered, and a duplicate key is success: two sends recording the same pair at once race on the upsert's _id,
    // which FerretDB does not retry; the loser's document is the winner's (to and from follow from _id). Ordered, the
    // rest of the chunk was skipped too (issue #18's two-node bench logged it on every run).
    await inBoundedRequests(ops, async (chunk) => {
      try {
        await this.m.contacts.bulkWrite(chunk, { ordered: false });
      } catch (err) {
        const writeErrors = (err as { writeErrors?: { err?: unknown; code?: number }[] }).writeErrors;
        if (writeErrors && writeErrors.length > 0 && writeErrors.every((w) => isDuplicateKey(w.err ?? w))) return;
        if (!writeErrors && isDuplicateKey(err)) return;
        throw err;
      }
    });
    return owners;
  }

  async contactsWritingTo(toUserId: string, fromUserIds: string[]): Promise<string[]> {
    const ids = [...new Set(fromUserIds)].map((from) => `${toUserId}:${from}`);
    const docs = await this.m.contacts.find({ _id: { $in: ids } }, { from: 1 }).lean();
    return docs.map((d) => d.from);
  }

  async counts(): Promise<StoreCounts> {
    const [users, devices, sessions, oneTimePrekeys, groups, mailbox] = await Promise.all([
      this.m.users.countDocuments({}),
      this.m.devices.countDocuments({}),
      this.m.families.countDocuments({ revoked: false }),
      this.m.prekeys.countDocuments({}),
      this.m.groups.countDocuments({}),
      this.m.messages.aggregate<{ n: number }>([
        { $match: { 'to.0': { $exists: true } } },
        { $project: { to: 1 } },
        { $unwind: '$to' },
        { $count: 'n' },
      ]),
    ]);
    return { users, devices, sessions, oneTimePrekeys, groups, mailboxEntries: mailbox[0]?.n ?? 0 };
  }

  async listAccounts(after: string, limit: number): Promise<AccountSummary[]> {
    const users = await this.m.users
      .find({ username: { $gt: after } }, { username: 1, disabled: 1, createdAt: 1 })
      .sort({ username: 1 })
      .limit(limit)
      .lean();
    return Promise.all(
      users.map(async (u) => ({
        userId: u._id,
        username: u.username,
        disabled: u.disabled === true,
        devices: await this.m.devices.countDocuments({ userId: u._id }),
        createdAt: u.createdAt,
      })),
    );
  }

  async setUserDisabled(userId: string, disabled: boolean): Promise<boolean> {
    const res = await this.m.users.updateOne({ _id: userId }, { $set: { disabled } });
    return res.matchedCount > 0;
  }

  async revokeUserSessions(userId: string): Promise<string[]> {
    const live = await this.m.families.find({ userId, revoked: false }, { _id: 1 }).lean();
    const ids = live.map((f) => f._id);
    await this.m.families.updateMany({ userId }, { $set: { revoked: true } });
    return ids;
  }

  async deleteDevice(deviceId: string): Promise<string[] | null> {
    const device = await this.m.devices.findById(deviceId, { _id: 1 }).lean();
    if (!device) return null;
    const families = (await this.m.families.find({ deviceId }, { _id: 1 }).lean()).map((f) => f._id);
    await this.m.messages.updateMany(
      { to: deviceId },
      { $unset: { [`entries.${deviceId}`]: '' }, $pull: { to: deviceId } },
    );
    await this.forgetSender(deviceId);
    await Promise.all([
      this.m.prekeys.deleteMany({ deviceId }),
      this.m.kemPrekeys.deleteMany({ deviceId }),
      this.m.families.deleteMany({ deviceId }),
      this.m.devices.deleteOne({ _id: deviceId }),
    ]);
    return families;
  }

  // Devices as their owner manages them ------------------------------------------------------------------------------

  async listDevices(userId: string): Promise<DeviceRecord[]> {
    const devices = await this.m.devices
      .find({ userId }, { _id: 1, createdAt: 1, lastActiveAt: 1, name: 1 })
      .sort({ createdAt: 1, _id: 1 })
      .lean();
    return devices.map((d) => ({
      deviceId: d._id,
      createdAt: d.createdAt,
      lastActiveAt: d.lastActiveAt ?? null,
      name: d.name ? bytesOf(d.name) : null,
    }));
  }

  async setDeviceName(userId: string, deviceId: string, name: Bytes): Promise<boolean> {
    const result = await this.m.devices.updateOne({ _id: deviceId, userId }, { $set: { name: Buffer.from(name) } });
    return result.matchedCount > 0;
  }

  touchDevice(deviceId: string, at: number): Promise<void> {
    return this.touches.add(deviceId, at);
  }

  async removeOwnDevice(userId: string, deviceId: string, now: number): Promise<string[] | null> {
    if ((await this.m.devices.exists({ _id: deviceId, userId })) === null) return null;
    // The record first: from the moment the device is gone, its tokens must read as removed, not as ended.
    await this.m.removedDevices.updateOne({ _id: deviceId }, { $set: { userId, removedAt: now } }, { upsert: true });
    return this.deleteDevice(deviceId);
  }

  async deviceRemovedAt(deviceId: string): Promise<number | null> {
    return (await this.m.removedDevices.findById(deviceId, { removedAt: 1 }).lean())?.removedAt ?? null;
  }

  // Blobs (issue #15) ----------------------------------------------------------------------------------------------

  get blobs(): MongoBlobs {
    return (this.blobDocs ??= new MongoBlobs(this.connection, (d, id, ts) => this.pendingRecipients(d, id, ts)));
  }

  // Blocks ---------------------------------------------------------------------------------------------------------

  private get blocks(): MongoBlocks {
    return (this.blockDocs ??= new MongoBlocks(this.m));
  }

  putBlock(blocker: string, blocked: string, now: number, max: number): Promise<'stored' | 'limit'> {
    return this.blocks.put(blocker, blocked, now, max);
  }

  deleteBlock(blocker: string, blocked: string): Promise<void> {
    return this.blocks.delete(blocker, blocked);
  }

  listBlocks(blocker: string): Promise<{ userId: string; username: string }[]> {
    return this.blocks.list(blocker);
  }

  usersBlocking(blocked: string, userIds: string[]): Promise<string[]> {
    return this.blocks.usersBlocking(blocked, userIds);
  }

  devicesBlocking(sender: string, deviceIds: string[]): Promise<string[]> {
    return this.blocks.devicesBlocking(sender, deviceIds);
  }

  blockedUsers(): Promise<string[]> {
    return this.blocks.blockedUsers();
  }

  async sweepExpired(cutoffs: SweepCutoffs): Promise<SweepResult> {
    const { mailbox, sent } = await this.mailbox.sweep(cutoffs);
    await this.m.invites.deleteMany({ expiresAt: { $lte: cutoffs.now } });
    return { mailbox, sent, refreshTokens: await this.sweepRefreshTokens(cutoffs.now) };
  }

  // Helpers --------------------------------------------------------------------------------------------------------

  private async insertDevice(
    userId: string,
    deviceId: string,
    now: number,
    signed: SignedPrekeyRecord | null,
  ): Promise<void> {
    await this.m.devices.create({
      _id: deviceId,
      userId,
      signedPrekey: signed
        ? { keyId: signed.keyId, publicKey: Buffer.from(signed.publicKey), signature: Buffer.from(signed.signature) }
        : null,
      createdAt: now,
    });
  }

  private async insertFamily(userId: string, deviceId: string, session: NewSession, now: number): Promise<void> {
    await this.m.families.create({
      _id: session.familyId,
      userId,
      deviceId,
      revoked: false,
      token: Buffer.from(session.refresh.tokenHash),
      tokenExpiresAt: session.refresh.expiresAt,
      spent: [],
      spentExpiresFirst: null,
      expireAt: new Date(session.refresh.expiresAt),
      createdAt: now,
    });
  }

  /**
   * Claims the lowest unused one-time prekey: the taker whose deleteOne removed the document owns it. Not
   * findOneAndDelete: FerretDB 1.x runs it as a read and a delete, and hands one key to several concurrent callers
   * (measured here); a deleteOne counts once on MongoDB and on FerretDB alike.
   */
  private async takeOneTimePrekey(deviceId: string): Promise<PrekeyDoc | null> {
    for (;;) {
      const candidates = await this.m.prekeys.find({ deviceId }).sort({ keyId: 1 }).limit(8).lean();
      if (candidates.length === 0) return null;
      for (const candidate of candidates) {
        if ((await this.m.prekeys.deleteOne({ _id: candidate._id })).deletedCount === 1) return candidate;
      }
      // Every candidate went to a concurrent taker: look again.
    }
  }

  /** The same claim for the lowest one-time KEM prekey. */
  private async takeKemOneTimePrekey(deviceId: string): Promise<KemPrekeyDoc | null> {
    for (;;) {
      const candidates = await this.m.kemPrekeys
        .find({ deviceId, lastResort: false })
        .sort({ keyId: 1 })
        .limit(8)
        .lean();
      if (candidates.length === 0) return null;
      for (const candidate of candidates) {
        if ((await this.m.kemPrekeys.deleteOne({ _id: candidate._id })).deletedCount === 1) return candidate;
      }
    }
  }

  private async deviceBelongs(deviceId: string, userId: string): Promise<boolean> {
    return (await this.m.devices.exists({ _id: deviceId, userId })) !== null;
  }

  private familyOfToken(hash: Buffer): Promise<FamilyDoc | null> {
    return this.m.families.findOne({ $or: [{ token: hash }, { 'spent.hash': hash }] }).lean();
  }

  private async revokeReused(familyId: string): Promise<RotateOutcome> {
    await this.m.families.updateOne({ _id: familyId }, { $set: { revoked: true } });
    return { status: 'reused', familyId };
  }

  /** Families whose live token expired go whole; spent tokens that expired leave their family. */
  private async sweepRefreshTokens(now: number): Promise<number> {
    let removed = 0;
    const expired = await this.m.families.find({ tokenExpiresAt: { $lt: now } }, { spent: 1 }).lean();
    for (const family of expired) {
      const res = await this.m.families.deleteOne({ _id: family._id, tokenExpiresAt: { $lt: now } });
      if (res.deletedCount === 1) removed += 1 + family.spent.length;
    }
    const partly = await this.m.families.find({ spentExpiresFirst: { $lt: now } }, { token: 1, spent: 1 }).lean();
    for (const family of partly) {
      const keep = family.spent.filter((s) => s.expiresAt >= now);
      const first = keep.reduce<number | null>(
        (min, s) => (min === null || s.expiresAt < min ? s.expiresAt : min),
        null,
      );
      // Guarded by the live token: a rotation in between makes this a no-op until the next sweep.
      const res = await this.m.families.updateOne(
        { _id: family._id, token: family.token },
        { $set: { spent: keep, spentExpiresFirst: first } },
      );
      if (res.modifiedCount === 1) removed += family.spent.length - keep.length;
    }
    return removed;
  }

  /** Removes a member with compare-and-set on the version (a deleted user leaves every group). */
  /**
   * The idempotency records of what a device sent (message documents keyed `<device>:<id>`): deleted, or, while
   * other devices still have entries in them, re-keyed as the sweep does (`~<_id>`), which names no sender.
   */
  private async forgetSender(deviceId: string): Promise<void> {
    const docs = await this.m.messages.find({ key: { $regex: `^${deviceId}:` } }, { _id: 1, to: 1 }).lean();
    for (const doc of docs) {
      if (doc.to.length === 0) await this.m.messages.deleteOne({ _id: doc._id });
      else await this.m.messages.updateOne({ _id: doc._id }, { $set: { key: `~${doc._id}` } });
    }
  }

  private async removeMember(group: GroupDoc, userId: string): Promise<void> {
    let current: GroupDoc | null = group;
    for (let attempt = 0; current && attempt < 10; attempt++) {
      // As leaving: the group keeps an admin, and an emptied group is deleted.
      const members = withoutMember(current.members, userId);
      if (members.length === 0) {
        const gone = await this.m.groups.deleteOne({ _id: current._id, version: current.version });
        if (gone.deletedCount === 1) return;
        current = await this.m.groups.findById(current._id).lean();
        continue;
      }
      const res = await this.m.groups.updateOne(
        { _id: current._id, version: current.version },
        { $set: { version: current.version + 1, members, memberIds: members.map((m) => m.userId) } },
      );
      if (res.matchedCount === 1) return;
      current = await this.m.groups.findById(current._id).lean();
    }
  }

  // Key transparency (issue #16) --------------------------------------------------------------------------------------

  private get kt(): MongoKt {
    return (this.ktDocs ??= new MongoKt(this.connection));
  }

  ktSize(): Promise<number> {
    return this.kt.size();
  }

  ktAppend(leaf: KtLeafRecord, nodes: KtNodeRecord[]): Promise<'appended' | 'conflict'> {
    return this.kt.append(leaf, nodes);
  }

  ktFinish(size: number, nodes: KtNodeRecord[]): Promise<void> {
    return this.kt.finish(size, nodes);
  }

  ktNodes(keys: { level: number; index: number }[]): Promise<KtNodeRecord[]> {
    return this.kt.nodes(keys);
  }

  ktForget(userId: string): Promise<void> {
    return this.kt.forget(userId);
  }

  ktLeaf(index: number): Promise<KtLeafRecord | null> {
    return this.kt.leaf(index);
  }

  ktLatestOf(userId: string, size: number): Promise<KtLeafRecord | null> {
    return this.kt.latestOf(userId, size);
  }

  ktEntriesOf(userId: string, from: number, to: number, limit: number): Promise<KtLeafRecord[]> {
    return this.kt.entriesOf(userId, from, to, limit);
  }

  ktPutCosignature(cosignature: KtCosignatureRecord, keep: number): Promise<void> {
    return this.kt.putCosignature(cosignature, keep);
  }

  ktCosignatures(keyIds: string[]): Promise<KtCosignatureRecord[]> {
    return this.kt.cosignatures(keyIds);
  }
}
