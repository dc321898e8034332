// The MongoDB collections of the relay as mongoose schemas: document shapes and their indexes in one place.
// Every write that must be atomic is a single-document write (no multi-document transactions: FerretDB has none,
// and a send must not need one on MongoDB either).
import mongoose from 'mongoose';
import type { Connection, Model } from 'mongoose';

const { Schema } = mongoose;

/**
 * A message's seq is `document number × SEQ_STRIDE + position` of the recipient in that document: relay-wide
 * unique, increasing in commit order per node, and it names its document without an index (an ack is one
 * update by _id).
 */
export const SEQ_STRIDE = 2 ** 20;

export interface UserDoc {
  _id: string;
  /** Lower-cased; unique. */
  username: string;
  salt: Buffer;
  authHash: string;
  identityKey: Buffer;
  sharePresence: boolean;
  lastSeen: number | null;
  backup?: Buffer | null;
  /** The sealed profile (opaque). */
  profile?: Buffer | null;
  /** Deactivated by an operator (absent on accounts made before the field existed: false). */
  disabled?: boolean;
  createdAt: number;
}

export interface DeviceDoc {
  _id: string;
  userId: string;
  signedPrekey?: { keyId: number; publicKey: Buffer; signature: Buffer } | null;
  createdAt: number;
  /** Sealed by the client (issue #14); absent on devices made before names existed. */
  name?: Buffer | null;
  lastActiveAt?: number | null;
}

/** A device its owner removed (issue #14): its still-valid access tokens are answered `device_removed`. */
export interface RemovedDeviceDoc {
  _id: string;
  userId: string;
  removedAt: number;
}

export interface PrekeyDoc {
  deviceId: string;
  keyId: number;
  publicKey: Buffer;
}

/** A signed ML-KEM-768 prekey (PQXDH): one-time, or the device's one last-resort key. */
export interface KemPrekeyDoc {
  deviceId: string;
  lastResort: boolean;
  keyId: number;
  publicKey: Buffer;
  signature: Buffer;
}

/**
 * A refresh family with its one live refresh token and the spent ones (kept, hashed, until they expire so that a
 * reuse is recognised). Rotation is one compare-and-set update of this document.
 */
export interface FamilyDoc {
  _id: string;
  userId: string;
  deviceId: string;
  revoked: boolean;
  token: Buffer;
  tokenExpiresAt: number;
  spent: { hash: Buffer; expiresAt: number }[];
  /** The earliest expiry among `spent` (absent when none): what the sweep looks for. */
  spentExpiresFirst?: number | null;
  /** TTL: the family goes when its live token expires (spent tokens always expire before it). */
  expireAt: Date;
  createdAt: number;
}

export interface GroupDoc {
  _id: string;
  version: number;
  /** In join order. */
  members: { userId: string; admin: boolean }[];
  /** The member ids again, as a flat array the index can hold. */
  memberIds: string[];
  createdAt: number;
}

/** One mailbox entry inside a message document, under the recipient device id. */
export interface EntryDoc {
  seq: number;
  /** Direct sends: this device's envelope. Group sends keep one body on the message. */
  body?: Buffer;
}

/**
 * One stored send: the idempotency record and the mailbox entries of every recipient device, written by one
 * insert. An ack removes one device from `to` and `entries`; the document stays, without bodies, as the idempotency
 * record until it expires.
 */
export interface MessageDoc {
  /** The document number (see SEQ_STRIDE). */
  _id: number;
  /** `senderDeviceId:messageId`, unique; `~<_id>` once the idempotency record expired before the entries. */
  key: string;
  ts: number;
  group?: string | null;
  /** Group sends: the one body every recipient gets. */
  body?: Buffer | null;
  /**
   * Bytes each entry counts against its device's mailbox cap: the group body's length, or the largest envelope of a
   * direct send (envelopes of one send differ by a few bytes; counting the largest keeps the cap conservative).
   */
  size?: number;
  /** Devices whose entries are not acknowledged yet. */
  to: string[];
  entries: Record<string, EntryDoc>;
  /** TTL: ts + the longer of the mailbox TTL and the idempotency window. */
  expireAt: Date;
}

/** An invite: the hex SHA-256 of its token, spent (deleted) by one sign-up. */
export interface InviteDoc {
  _id: string;
  expiresAt: number;
}

/** `from` has written to `to` (see Store.recordContacts); `_id` is `${to}:${from}`. */
export interface ContactDoc {
  _id: string;
  to: string;
  from: string;
}

/** `blocker` blocks `blocked` (see Store.putBlock); `_id` is `${blocker}:${blocked}` (ids hold no ':'). */
export interface BlockDoc {
  _id: string;
  blocker: string;
  blocked: string;
  createdAt: number;
}

export interface CounterDoc {
  _id: string;
  n: number;
}

const common = { versionKey: false, autoIndex: false, autoCreate: false, strict: true } as const;

const binary = { type: Buffer, required: true } as const;

const userSchema = new Schema<UserDoc>(
  {
    _id: { type: String, required: true },
    username: { type: String, required: true },
    salt: binary,
    authHash: { type: String, required: true },
    identityKey: binary,
    sharePresence: { type: Boolean, required: true, default: true },
    lastSeen: { type: Number, default: null },
    backup: { type: Buffer, default: null },
    profile: { type: Buffer, default: null },
    disabled: { type: Boolean, default: false },
    createdAt: { type: Number, required: true },
  },
  common,
);
userSchema.index({ username: 1 }, { unique: true });

const deviceSchema = new Schema<DeviceDoc>(
  {
    _id: { type: String, required: true },
    userId: { type: String, required: true },
    signedPrekey: {
      type: new Schema({ keyId: Number, publicKey: Buffer, signature: Buffer }, { _id: false, versionKey: false }),
      default: null,
    },
    createdAt: { type: Number, required: true },
    name: { type: Buffer, default: null },
    lastActiveAt: { type: Number, default: null },
  },
  common,
);
deviceSchema.index({ userId: 1, createdAt: 1 });

const removedDeviceSchema = new Schema<RemovedDeviceDoc>(
  {
    _id: { type: String, required: true },
    userId: { type: String, required: true },
    removedAt: { type: Number, required: true },
  },
  common,
);
removedDeviceSchema.index({ userId: 1 });

const prekeySchema = new Schema<PrekeyDoc>(
  {
    deviceId: { type: String, required: true },
    keyId: { type: Number, required: true },
    publicKey: binary,
  },
  common,
);
prekeySchema.index({ deviceId: 1, keyId: 1 }, { unique: true });

const kemPrekeySchema = new Schema<KemPrekeyDoc>(
  {
    deviceId: { type: String, required: true },
    lastResort: { type: Boolean, required: true },
    keyId: { type: Number, required: true },
    publicKey: binary,
    signature: binary,
  },
  common,
);
kemPrekeySchema.index({ deviceId: 1, lastResort: 1, keyId: 1 }, { unique: true });

const familySchema = new Schema<FamilyDoc>(
  {
    _id: { type: String, required: true },
    userId: { type: String, required: true },
    deviceId: { type: String, required: true },
    revoked: { type: Boolean, required: true, default: false },
    token: binary,
    tokenExpiresAt: { type: Number, required: true },
    spent: { type: [new Schema({ hash: Buffer, expiresAt: Number }, { _id: false, versionKey: false })], default: [] },
    spentExpiresFirst: { type: Number, default: null },
    expireAt: { type: Date, required: true },
    createdAt: { type: Number, required: true },
  },
  common,
);
familySchema.index({ token: 1 }, { unique: true });
familySchema.index({ 'spent.hash': 1 });
familySchema.index({ userId: 1 });
familySchema.index({ deviceId: 1 });
familySchema.index({ tokenExpiresAt: 1 });
familySchema.index({ spentExpiresFirst: 1 });

const groupSchema = new Schema<GroupDoc>(
  {
    _id: { type: String, required: true },
    version: { type: Number, required: true },
    members: {
      type: [new Schema({ userId: String, admin: Boolean }, { _id: false, versionKey: false })],
      required: true,
    },
    memberIds: { type: [String], required: true },
    createdAt: { type: Number, required: true },
  },
  common,
);
groupSchema.index({ memberIds: 1, createdAt: 1 });

const messageSchema = new Schema<MessageDoc>(
  {
    _id: { type: Number, required: true },
    key: { type: String, required: true },
    ts: { type: Number, required: true },
    group: { type: String, default: null },
    body: { type: Buffer, default: null },
    size: { type: Number, default: 0 },
    to: { type: [String], required: true },
    entries: { type: Schema.Types.Mixed, required: true },
    expireAt: { type: Date, required: true },
  },
  { ...common, minimize: false },
);
messageSchema.index({ key: 1 }, { unique: true });
messageSchema.index({ to: 1, _id: 1 });
messageSchema.index({ ts: 1 });

const contactSchema = new Schema<ContactDoc>(
  {
    _id: { type: String, required: true },
    to: { type: String, required: true },
    from: { type: String, required: true },
  },
  common,
);
contactSchema.index({ to: 1, from: 1 });
contactSchema.index({ from: 1 });

const blockSchema = new Schema<BlockDoc>(
  {
    _id: { type: String, required: true },
    blocker: { type: String, required: true },
    blocked: { type: String, required: true },
    createdAt: { type: Number, required: true },
  },
  common,
);
blockSchema.index({ blocker: 1, createdAt: 1 });
blockSchema.index({ blocked: 1 });

const counterSchema = new Schema<CounterDoc>({ _id: String, n: Number }, common);
const inviteSchema = new Schema<InviteDoc>(
  { _id: { type: String, required: true }, expiresAt: { type: Number, required: true } },
  common,
);
inviteSchema.index({ expiresAt: 1 });

export interface Models {
  users: Model<UserDoc>;
  devices: Model<DeviceDoc>;
  prekeys: Model<PrekeyDoc>;
  kemPrekeys: Model<KemPrekeyDoc>;
  families: Model<FamilyDoc>;
  groups: Model<GroupDoc>;
  messages: Model<MessageDoc>;
  counters: Model<CounterDoc>;
  invites: Model<InviteDoc>;
  contacts: Model<ContactDoc>;
  removedDevices: Model<RemovedDeviceDoc>;
  blocks: Model<BlockDoc>;
}

export function defineModels(connection: Connection): Models {
  return {
    users: connection.model<UserDoc>('User', userSchema, 'users'),
    devices: connection.model<DeviceDoc>('Device', deviceSchema, 'devices'),
    prekeys: connection.model<PrekeyDoc>('Prekey', prekeySchema, 'prekeys'),
    kemPrekeys: connection.model<KemPrekeyDoc>('KemPrekey', kemPrekeySchema, 'kem_prekeys'),
    families: connection.model<FamilyDoc>('Family', familySchema, 'session_families'),
    groups: connection.model<GroupDoc>('Group', groupSchema, 'groups'),
    messages: connection.model<MessageDoc>('Message', messageSchema, 'messages'),
    counters: connection.model<CounterDoc>('Counter', counterSchema, 'counters'),
    invites: connection.model<InviteDoc>('Invite', inviteSchema, 'invites'),
    contacts: connection.model<ContactDoc>('Contact', contactSchema, 'contacts'),
    removedDevices: connection.model<RemovedDeviceDoc>('RemovedDevice', removedDeviceSchema, 'removed_devices'),
    blocks: connection.model<BlockDoc>('Block', blockSchema, 'blocks'),
  };
}

/** The TTL indexes, created apart from the others because some MongoDB-wire servers (FerretDB 1.x) lack them. */
export const TTL_INDEXES: { model: keyof Models; field: string }[] = [
  { model: 'messages', field: 'expireAt' },
  { model: 'families', field: 'expireAt' },
  { model: 'invites', field: 'expireAt' },
];
