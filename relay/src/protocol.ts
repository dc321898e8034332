// The wire contract of protocol version 1 (PROTOCOL.md), the one both sides import: limits, error codes, zod schemas
// of every HTTP body and answer and every socket payload, and the one typed Socket.IO event map. The relay parses
// what clients send with the body schemas; the web client (`@weconnect/relay/protocol`, bundled by Vite) parses
// what the relay answers with the answer schemas. A route or event is defined here once.
// Browser-safe: imports only zod. Answer schemas are `z.object` (unknown keys are dropped, so a newer relay may add
// fields); body schemas are strict (an unknown key is invalid_input).
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

/** Default limits of the contract. The relay's configurable ones are overridden by its environment. */
export const LIMITS = {
  jsonBodyBytes: 64 * 1024,
  socketFrameBytes: 256 * 1024,
  messageBodyBytes: 64 * 1024,
  envelopesPerSend: 100,
  oneTimePrekeysPerRequest: 100,
  /** A device never holds more unused one-time prekeys than this; an upload that would exceed it is rejected. */
  oneTimePrekeysStored: 1000,
  /** One-time ML-KEM-768 prekeys per upload (each is ~1.6 KiB of JSON) and at most stored per device. */
  kemOneTimePrekeysPerRequest: 20,
  kemOneTimePrekeysStored: 200,
  presenceWatchUsers: 200,
  userSearchResults: 20,
  /** Device ids in a bundle's `devices` query. */
  bundleDevicesListed: 100,
  backupBytes: 64 * 1024,
  /** Members of one group, the creator included. */
  groupMembers: 256,
  /** Groups one user can be a member of (the relay's GROUPS_PER_USER). */
  groupsPerUser: 200,
  /** Users one account may add to groups per hour, creations included (the relay's GROUP_ADDS_PER_HOUR). */
  groupAddsPerHour: 500,
  /** Entries per `messages` event. */
  mailboxBatch: 100,
  signinMaxFailures: 5,
  signinWindowSeconds: 15 * 60,
  /** Failed sign-ins from one address (an IPv6 /64) across all usernames, in the same window. */
  signinAddressMaxFailures: 20,
  /** Sign-ups per address: a bucket of this many, refilled at signupsPerHour. */
  signupBurst: 5,
  signupsPerHour: 20,
  /** Devices of one account; a sign-in that would add one more is refused with device_limit. */
  devicesPerAccount: 10,
  /** Unacknowledged mailbox entries, and bytes of their bodies, per device; a send over either is mailbox_full. */
  mailboxMaxEntries: 10_000,
  mailboxMaxBytes: 64 * 1024 * 1024,
  sendRateBurst: 200,
  sendRatePerSecond: 50,
  /**
   * Devices one account's sends may reach: a bucket of this many for stored sends and another for ephemeral ones,
   * each refilled at sendDeliveriesPerSecond. The event limit counts sends; this counts their fan-out (a group send
   * to 256 members with 3 devices each is 768).
   */
  sendDeliveriesBurst: 20_000,
  sendDeliveriesPerSecond: 2_000,
  mailboxTtlDays: 30,
  idempotencyDays: 30,
  /** A device's sealed name (what `PUT /api/devices/self/name` stores), in bytes before base64url. */
  deviceNameBytes: 256,
  /** Attachment blobs (issue #15): one blob's bytes (a 100 MiB file, padded and sealed, fits), bytes of one
   * `PUT /api/blobs/:blobId/data` request, bytes all of an account's stored blobs may hold, blobs named by one send. */
  blobMaxBytes: 100 * 1024 * 1024 + 2 * 1024 * 1024,
  blobChunkBytes: 8 * 1024 * 1024,
  blobQuotaBytes: 1024 * 1024 * 1024,
  blobsPerSend: 32,
  /** Days a complete blob is kept at most; hours it is kept once every recipient device acknowledged its message. */
  blobTtlDays: 30,
  blobGraceHours: 72,
} as const;

/** The Argon2id parameters of protocol version 1; the kdf answer carries them so a later version can change them. */
export const KDF_PARAMS = { opslimit: 3, memlimit: 64 * 1024 * 1024 } as const;

export const ERROR_CODES = [
  'invalid_input',
  'unauthorized',
  'forbidden',
  'not_found',
  'username_taken',
  'payload_too_large',
  'rate_limited',
  'unknown_recipient',
  /** Sign-in on a new device: the account already has the most devices the relay allows (DEVICES_PER_ACCOUNT). */
  'device_limit',
  /** A recipient device's mailbox holds the most entries or bytes the relay allows; nothing was stored for it. */
  'mailbox_full',
  /** Sign-up: the relay takes no new accounts (REGISTRATION=closed). */
  'registration_closed',
  /** Sign-up: REGISTRATION=invite and the invite token is missing, unknown, used or expired. */
  'invite_invalid',
  'group_limit',
  /** `PUT /api/groups/:groupId/admins`: the change would leave the group without an admin. */
  'last_admin',
  /** `PUT /api/blocks/:userId`: the caller already blocks the most users the relay keeps (BLOCKS_PER_USER). */
  'block_limit',
  'internal',
  'unavailable',
  /**
   * The device this (authentic) access token speaks for was removed from its account by another of its devices:
   * unlike `unauthorized`, signing in again on this device is not what the user wants; the client wipes its keys.
   */
  'device_removed',
  /** Blobs (issue #15): the upload would take the account over its blob quota (LIMITS.blobQuotaBytes). */
  'quota_exceeded',
  /** `PUT /api/blobs/:blobId/data`: the offset is not the number of bytes the relay holds (the answer says it). */
  'upload_offset',
  /** The finished upload's SHA-256 is not the one declared when it was created; the blob is deleted. */
  'digest_mismatch',
  /**
   * Key transparency (issue #16), `?witnessed=`: the newest checkpoint the asked witnesses cosigned does not cover
   * the account's latest entry yet (503, with Retry-After). Transient: the log grew and its witness has not cosigned
   * the new checkpoint yet; ask again later. Not a failed check.
   */
  'kt_unwitnessed',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The body of every error, HTTP or socket. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}
/** An HTTP error answer. */
export interface ErrorAnswer {
  error: ErrorBody;
}

// ---------------------------------------------------------------------------------------------------------------
// Scalars

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const BASE64URL_CHARS = /^[A-Za-z0-9_-]*$/;

/** True for a canonical unpadded base64url string (the unused low bits of the last character are zero). */
export function isCanonicalBase64url(value: string): boolean {
  if (!BASE64URL_CHARS.test(value)) return false;
  const rest = value.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = BASE64URL_ALPHABET.indexOf(value.charAt(value.length - 1));
  return rest === 2 ? (last & 0x0f) === 0 : (last & 0x03) === 0;
}

/** Number of bytes an unpadded base64url string of this length decodes to. */
export function base64urlDecodedLength(encodedLength: number): number {
  return Math.floor((encodedLength * 3) / 4);
}

/** Length of the unpadded base64url encoding of `bytes` bytes. */
export function base64urlEncodedLength(bytes: number): number {
  return Math.ceil((bytes * 4) / 3);
}

/** A base64url (unpadded, canonical) string that decodes to exactly `bytes` bytes. */
export function base64urlOf(bytes: number) {
  const length = base64urlEncodedLength(bytes);
  return z
    .string()
    .refine(
      (s) => s.length === length && isCanonicalBase64url(s),
      `must be ${bytes} bytes as base64url without padding`,
    );
}

/** A base64url (unpadded, canonical) string of at least one byte; the size limit is the caller's. */
export const base64urlNonEmpty = z
  .string()
  .refine((s) => s.length >= 2 && isCanonicalBase64url(s), 'must be base64url without padding');

/**
 * A user, device, group or message id: 16 random bytes as canonical unpadded base64url (22 characters, the last one
 * carrying 2 bits). Nothing else is accepted from either side, so no id can contain a separator or spoof a prefix of
 * another.
 */
export const ID_PATTERN = /^[A-Za-z0-9_-]{21}[AQgw]$/;
/** True for an id in the exact format. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
/** `userId`, `deviceId`, `groupId`: relay-assigned, 16 random bytes as base64url (22 characters). */
export const idSchema = z.string().regex(ID_PATTERN, 'must be an id: 16 bytes as base64url without padding');
/** A message `id`: made by the client, 16 random bytes as base64url (22 characters). */
export const messageIdSchema = idSchema;

/** 3–32 ASCII characters of `A-Z a-z 0-9 _`; the relay stores and compares them lower-cased. */
export const usernameSchema = z.string().regex(/^[A-Za-z0-9_]{3,32}$/, 'must be 3-32 characters of A-Z a-z 0-9 _');

export const keyIdSchema = z.number().int().nonnegative();
export const publicKeySchema = base64urlOf(32);
export const signatureSchema = base64urlOf(64);
export const saltSchema = base64urlOf(16);
export const authKeySchema = base64urlOf(32);

export const signedPrekeySchema = z.strictObject({
  keyId: keyIdSchema,
  publicKey: publicKeySchema,
  signature: signatureSchema,
});
export type SignedPrekey = z.infer<typeof signedPrekeySchema>;

export const oneTimePrekeySchema = z.strictObject({ keyId: keyIdSchema, publicKey: publicKeySchema });
export type OneTimePrekey = z.infer<typeof oneTimePrekeySchema>;

/** ML-KEM-768 (FIPS 203) public keys are 1,184 bytes. */
export const KEM_PUBLIC_KEY_BYTES = 1184;
/** The KEM of a KEM prekey: 1 is ML-KEM-768 (the byte the identity key signs along with the key). */
export const KEM_TYPE_MLKEM768 = 1;
/** What the identity key signs for a KEM prekey, after this label (length-prefixed, UTF-8). */
export const KEM_PREKEY_LABEL = 'WeConnect/KEM-prekey/v1';

/**
 * A signed ML-KEM-768 prekey (PQXDH): one-time, or the device's one last-resort key, handed out when no one-time one
 * is left. The Ed25519 signature by the identity key covers label ‖ KEM type ‖ last-resort flag ‖ u32 keyId ‖ key.
 */
export const kemPrekeySchema = z.strictObject({
  keyId: keyIdSchema.max(0xffffffff),
  lastResort: z.boolean(),
  publicKey: base64urlOf(KEM_PUBLIC_KEY_BYTES),
  signature: signatureSchema,
});
export type KemPrekey = z.infer<typeof kemPrekeySchema>;

const kemLastResortPrekeySchema = kemPrekeySchema.refine((k) => k.lastResort, 'must have lastResort: true');
const kemOneTimePrekeysSchema = z
  .array(kemPrekeySchema.refine((k) => !k.lastResort, 'must have lastResort: false'))
  .max(LIMITS.kemOneTimePrekeysPerRequest)
  .refine((keys) => new Set(keys.map((k) => k.keyId)).size === keys.length, 'keyIds must be distinct');

const oneTimePrekeysSchema = z
  .array(oneTimePrekeySchema)
  .max(LIMITS.oneTimePrekeysPerRequest)
  .refine((keys) => new Set(keys.map((k) => k.keyId)).size === keys.length, 'keyIds must be distinct');

// ---------------------------------------------------------------------------------------------------------------
// HTTP

/** Every HTTP error answer: `{ error: { code, message } }`. A client maps an unknown code to its own generic one. */
export const errorAnswerSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** `GET /api/health` → 200 */
export const healthAnswerSchema = z.object({
  status: z.literal('ok'),
  version: z.string(),
  store: z.enum(['sqlite', 'mongodb']),
  fanout: z.enum(['local', 'redis']),
});
export type HealthAnswer = z.infer<typeof healthAnswerSchema>;

/** `GET /api/ready` → 200 when the store (and Redis, when configured) answered; else 503 `unavailable`. */
export const readyAnswerSchema = z.object({
  status: z.literal('ready'),
  checked: z.array(z.enum(['store', 'redis'])),
});
export type ReadyAnswer = z.infer<typeof readyAnswerSchema>;

/**
 * `GET /api/accounts/:username/kdf` → 200. The relay sends a 16-byte salt and KDF_PARAMS; the answer schema checks only
 * the shape, so that a client can refuse anything else with its own clear message before Argon2id runs.
 */
export const kdfAnswerSchema = z.object({
  salt: base64urlNonEmpty,
  opslimit: z.number().int().positive(),
  memlimit: z.number().int().positive(),
});
export type KdfAnswer = z.infer<typeof kdfAnswerSchema>;

/** `POST /api/accounts` */
export const createAccountBody = z.strictObject({
  username: usernameSchema,
  salt: saltSchema,
  authKey: authKeySchema,
  identityKey: publicKeySchema,
  signedPrekey: signedPrekeySchema,
  oneTimePrekeys: oneTimePrekeysSchema,
  /** PQXDH: the first device's last-resort KEM prekey and one-time KEM prekeys (optional for older clients). */
  kemLastResortPrekey: kemLastResortPrekeySchema.optional(),
  kemOneTimePrekeys: kemOneTimePrekeysSchema.optional(),
  /** Required when the relay takes sign-ups by invitation only (REGISTRATION=invite); one use. */
  inviteToken: base64urlOf(32).optional(),
});
export type CreateAccountBody = z.infer<typeof createAccountBody>;

/** `POST /api/accounts` → 201, `POST /api/sessions` → 200, `POST /api/sessions/refresh` → 200 */
export const sessionAnswerSchema = z.object({
  userId: idSchema,
  deviceId: idSchema,
  accessToken: z.string().min(1),
  refreshToken: z.string().min(1),
  /** Lifetime of `accessToken` in seconds. */
  expiresIn: z.number().positive(),
});
export type SessionAnswer = z.infer<typeof sessionAnswerSchema>;

/** `POST /api/sessions` */
export const signInBody = z.strictObject({
  username: usernameSchema,
  authKey: authKeySchema,
  deviceId: idSchema.optional(),
});
export type SignInBody = z.infer<typeof signInBody>;

/** `POST /api/sessions/refresh` */
export const refreshBody = z.strictObject({ refreshToken: z.string().min(1).max(256) });
export type RefreshBody = z.infer<typeof refreshBody>;

/** `PUT /api/devices/self/prekeys` */
export const putPrekeysBody = z.strictObject({
  signedPrekey: signedPrekeySchema.optional(),
  oneTimePrekeys: oneTimePrekeysSchema.optional(),
  /** Replaces the device's last-resort KEM prekey. */
  kemLastResortPrekey: kemLastResortPrekeySchema.optional(),
  /** Adds one-time KEM prekeys (same keyId replaces). */
  kemOneTimePrekeys: kemOneTimePrekeysSchema.optional(),
});
export type PutPrekeysBody = z.infer<typeof putPrekeysBody>;

/** `GET /api/devices/self/prekeys` → 200 */
export const prekeyCountAnswerSchema = z.object({
  oneTimePrekeys: z.number().int().nonnegative(),
  /** null when the device never uploaded a signed prekey. */
  signedPrekeyId: keyIdSchema.nullable(),
  kemOneTimePrekeys: z.number().int().nonnegative(),
  /** null when the device never uploaded a last-resort KEM prekey (a device of a client before PQXDH). */
  kemLastResortPrekeyId: keyIdSchema.nullable(),
});
export type PrekeyCountAnswer = z.infer<typeof prekeyCountAnswerSchema>;

/** `PUT /api/settings` */
export const settingsBody = z.strictObject({ sharePresence: z.boolean() });
export type SettingsBody = z.infer<typeof settingsBody>;
/** `GET /api/settings` → 200 (an extension of the shared contract, see relay/PROTOCOL.md) */
export const settingsAnswerSchema = z.object({ sharePresence: z.boolean() });
export type SettingsAnswer = z.infer<typeof settingsAnswerSchema>;

/** `GET /api/users?query=<prefix>` */
export const userSearchQuery = z.strictObject({
  query: z.string().regex(/^[A-Za-z0-9_]{1,32}$/, 'must be 1-32 characters of A-Z a-z 0-9 _'),
});
export const userSummarySchema = z.object({ userId: idSchema, username: usernameSchema });
export type UserSummary = z.infer<typeof userSummarySchema>;
/** `GET /api/users?query=<prefix>` → 200 */
export const userSearchAnswerSchema = z.object({ users: z.array(userSummarySchema) });
export type UserSearchAnswer = z.infer<typeof userSearchAnswerSchema>;

/**
 * `GET /api/users/:userId/bundle?devices=<id>,<id>` (the query is an extension, see relay/PROTOCOL.md): without it,
 * a one-time prekey is taken for every device; with it, only for the devices listed (none for `devices=`).
 */
export const bundleQuery = z.strictObject({
  devices: z
    .string()
    // A device id is 22 characters: longer than this is more than bundleDevicesListed ids.
    .max(LIMITS.bundleDevicesListed * 23, `lists at most ${LIMITS.bundleDevicesListed} devices`)
    .transform((list, ctx) => {
      const ids = list === '' ? [] : list.split(',');
      for (const id of ids) {
        if (!idSchema.safeParse(id).success) {
          ctx.addIssue({ code: 'custom', message: 'must be device ids separated by commas' });
          return z.NEVER;
        }
      }
      return new Set(ids);
    })
    .optional(),
});

export const bundleDeviceSchema = z.object({
  deviceId: idSchema,
  signedPrekey: signedPrekeySchema,
  oneTimePrekey: oneTimePrekeySchema.nullable(),
  /**
   * A one-time KEM prekey (taken, like the one-time prekey), else the last-resort one; null when the device has
   * none. A client that requires post-quantum sessions refuses a device without one (absent is the same as null).
   */
  kemPrekey: z.object(kemPrekeySchema.shape).nullable().optional(),
});
export type BundleDevice = z.infer<typeof bundleDeviceSchema>;
/** `GET /api/users/:userId/bundle` → 200 */
export const bundleAnswerSchema = z.object({
  userId: idSchema,
  username: usernameSchema,
  identityKey: publicKeySchema,
  devices: z.array(bundleDeviceSchema),
  /**
   * The account's devices that have published no keys yet (signed in, prekeys not uploaded): in the key transparency
   * log but not in `devices`. A client tells them from a device the relay hides (issue #16). Absent from older relays.
   */
  pendingDevices: z.array(idSchema).max(LIMITS.bundleDevicesListed).optional(),
});
export type BundleAnswer = z.infer<typeof bundleAnswerSchema>;

/** `PUT /api/backup` (at most 64 KiB before encoding; larger is 413) and `GET /api/backup` → 200 */
export const backupBody = z.strictObject({ backup: base64urlNonEmpty });
export type BackupBody = z.infer<typeof backupBody>;
export const backupAnswerSchema = z.object({ backup: base64urlNonEmpty });

/**
 * `PUT /api/accounts/self/password` → 204: proves the current `authKey` and replaces salt, auth key and key backup
 * (its key box re-wrapped under the new password) in one atomic write. The backup has the backup route's size limit.
 */
export const changePasswordBody = z.strictObject({
  authKey: authKeySchema,
  newSalt: saltSchema,
  newAuthKey: authKeySchema,
  backup: base64urlNonEmpty,
});
export type ChangePasswordBody = z.infer<typeof changePasswordBody>;

/** `DELETE /api/accounts/self` → 204: proves the current `authKey`, then erases the account and everything of it. */
export const deleteAccountBody = z.strictObject({ authKey: authKeySchema });
export type DeleteAccountBody = z.infer<typeof deleteAccountBody>;

const memberListSchema = z
  .array(idSchema)
  .max(LIMITS.groupMembers)
  .refine((ids) => new Set(ids).size === ids.length, 'userIds must be distinct');

/** `POST /api/groups` */
export const createGroupBody = z.strictObject({ members: memberListSchema });
export type CreateGroupBody = z.infer<typeof createGroupBody>;

/** `PUT /api/groups/:groupId/members` */
export const updateGroupMembersBody = z.strictObject({
  add: memberListSchema.optional(),
  remove: memberListSchema.optional(),
});
export type UpdateGroupMembersBody = z.infer<typeof updateGroupMembersBody>;

/**
 * `PUT /api/groups/:groupId/admins` (admins only): `add` members become admins, `remove` admins become members.
 * Every id must be a current member; at least one id in all.
 */
export const updateGroupAdminsBody = z
  .strictObject({ add: memberListSchema.optional(), remove: memberListSchema.optional() })
  .refine((b) => (b.add?.length ?? 0) + (b.remove?.length ?? 0) > 0, 'name at least one member')
  .refine((b) => !(b.add ?? []).some((id) => (b.remove ?? []).includes(id)), 'a user cannot be both added and removed');
export type UpdateGroupAdminsBody = z.infer<typeof updateGroupAdminsBody>;

/** A group as every group answer shows it; `members` in join order, `admins` a subset of it. */
export const groupAnswerSchema = z.object({
  groupId: idSchema,
  members: z.array(idSchema).max(LIMITS.groupMembers),
  admins: z.array(idSchema).max(LIMITS.groupMembers),
});
export type GroupAnswer = z.infer<typeof groupAnswerSchema>;
/** `GET /api/groups` → 200 */
export const groupListAnswerSchema = z.object({ groups: z.array(groupAnswerSchema) });
export type GroupListAnswer = z.infer<typeof groupListAnswerSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Devices (issue #14): the caller's own devices, their end-to-end encrypted names, removing another one

/** A device name sealed by the client (the relay never sees it in clear): 1..deviceNameBytes bytes as base64url. */
export const sealedDeviceNameSchema = base64urlNonEmpty.refine(
  (s) => base64urlDecodedLength(s.length) <= LIMITS.deviceNameBytes,
  `must decode to at most ${LIMITS.deviceNameBytes} bytes`,
);

/** `PUT /api/devices/self/name` */
export const putDeviceNameBody = z.strictObject({ name: sealedDeviceNameSchema });
export type PutDeviceNameBody = z.infer<typeof putDeviceNameBody>;

/** The path parameter of `DELETE /api/devices/:deviceId`. */
export const deviceIdParams = z.strictObject({ deviceId: idSchema });

/** One of the caller's devices, as `GET /api/devices` lists it. Times are ms since the epoch. */
export const deviceSummarySchema = z.object({
  deviceId: idSchema,
  createdAt: z.number(),
  /** Last sign-in, token refresh or socket connection; null before the first. */
  lastActiveAt: z.number().nullable(),
  /** The sealed name the device set, or null. */
  name: sealedDeviceNameSchema.nullable(),
});
export type DeviceSummary = z.infer<typeof deviceSummarySchema>;
/** `GET /api/devices` → 200: the caller's devices, oldest first. */
export const deviceListAnswerSchema = z.object({ devices: z.array(deviceSummarySchema).max(1000) });
export type DeviceListAnswer = z.infer<typeof deviceListAnswerSchema>;

/** `devices:changed`: the account's device list changed (a device signed in, was named or removed). */
export const devicesChangedEventSchema = z.object({ reason: z.enum(['added', 'renamed', 'removed']) });
export type DevicesChangedEvent = z.infer<typeof devicesChangedEventSchema>;

// ---------------------------------------------------------------------------------------------------------------
// HTTP: profiles (issue #14). A profile (display name, picture) is sealed by its owner with the owner's profile key;
// the relay stores and serves the sealed bytes only. Contacts receive the key over pairwise sessions.

/** The largest sealed profile, in bytes before base64url (a 64 KiB picture plus name, padding and the AEAD). */
export const PROFILE_BYTES = 69_673;

/** `PUT /api/profile` (own profile only; over PROFILE_BYTES is 413 payload_too_large) */
export const putProfileBody = z.strictObject({ profile: base64urlNonEmpty });
export type PutProfileBody = z.infer<typeof putProfileBody>;
/** `GET /api/users/:userId/profile` → 200 (any signed-in user; 404 not_found for no such user or no profile) */
export const profileAnswerSchema = z.object({ userId: idSchema, profile: base64urlNonEmpty });
export type ProfileAnswer = z.infer<typeof profileAnswerSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Blocks (issue #14): a user's block list, kept by the relay so that it can refuse what a blocked user sends.

/** Users one account may block; one more is `409 block_limit`. */
export const BLOCKS_PER_USER = 1000;

/** `PUT /api/blocks/:userId` and `DELETE /api/blocks/:userId`: the path is the whole input. */
export const blockParams = z.strictObject({ userId: idSchema });
export type BlockParams = z.infer<typeof blockParams>;
/** Their body: none, or `{}` (anything else is invalid_input). */
export const blockBody = z.strictObject({}).optional();

/** `GET /api/blocks` → 200: the users the caller blocks, oldest block first. */
export const blockListAnswerSchema = z.object({ blocks: z.array(userSummarySchema).max(BLOCKS_PER_USER) });
export type BlockListAnswer = z.infer<typeof blockListAnswerSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Blobs (issue #15): attachment ciphertext. A sender seals a file with a fresh key (libsodium secretstream) and
// uploads the ciphertext here; key, digest, name and type travel only inside the end-to-end encrypted message. The
// relay sees an opaque blob of a (padded) size, its uploader, and who downloads it.
//
//   POST /api/blobs                       { size, sha256 } -> 201 { blobId, received: 0, size, chunkBytes }
//   PUT  /api/blobs/:blobId/data?offset=N  raw bytes (application/octet-stream, at most chunkBytes) -> 200 status
//   GET  /api/blobs/:blobId/status        -> 200 status (uploader only: resume an interrupted upload)
//   GET  /api/blobs/:blobId               -> 200 the bytes, or 206 for a `Range: bytes=N-` request (any signed-in
//                                            account that knows the id; complete blobs only)
//   DELETE /api/blobs/:blobId             -> 204 (uploader only)
// A send names the blobs its message refers to (`blobs`); once every recipient device acknowledged it, the blob
// expires after LIMITS.blobGraceHours; at the latest LIMITS.blobTtlDays after it was completed.

/** SHA-256 as canonical unpadded base64url (43 characters). */
export const sha256Schema = z.string().length(43).refine(isCanonicalBase64url, 'must be base64url');

/** `POST /api/blobs`: reserve an upload of exactly `size` bytes whose SHA-256 will be `sha256`. */
export const blobCreateSchema = z.strictObject({
  size: z.number().int().min(1).max(LIMITS.blobMaxBytes),
  sha256: sha256Schema,
});
export type BlobCreate = z.infer<typeof blobCreateSchema>;

/** `:blobId` in a blob route. */
export const blobParams = z.strictObject({ blobId: idSchema });
/** `PUT /api/blobs/:blobId/data?offset=N`: where this request's bytes start (must equal `received`). */
export const blobDataQuery = z.strictObject({ offset: z.coerce.number().int().min(0).max(LIMITS.blobMaxBytes) });

/** An upload's state: `complete` once `received === size` and the digest checked out. */
export const blobStatusSchema = z.object({
  blobId: idSchema,
  size: z.number().int().positive(),
  received: z.number().int().nonnegative(),
  complete: z.boolean(),
  /** The most bytes one data request may carry. */
  chunkBytes: z.number().int().positive(),
});
export type BlobStatus = z.infer<typeof blobStatusSchema>;
/**
 * The 409 `upload_offset` answer of `PUT /api/blobs/:blobId/data` (the offset is not `received`, the upload is
 * complete, or another request is writing it): the error and the upload's status, to resume from `blob.received`.
 */
export const blobOffsetAnswerSchema = z.object({
  error: z.object({ code: z.literal('upload_offset'), message: z.string() }),
  blob: blobStatusSchema,
});
export type BlobOffsetAnswer = z.infer<typeof blobOffsetAnswerSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Key transparency (issue #16): an append-only RFC 9162 Merkle log of every account's identity key and device ids,
// with checkpoints signed by the relay's Ed25519 key as C2SP signed notes. See relay/PROTOCOL.md.

/** Hashes in a proof: 32 bytes each, base64url; at most 64 (a tree of 2^64 leaves). */
export const ktHashSchema = base64urlOf(32);
const ktProofSchema = z.array(ktHashSchema).max(64);
/** A tree size or leaf index (below 2^53). */
const ktSizeSchema = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A signed note: text lines, at most 8 KiB (room for a relay signature and a few witness cosignatures). */
const ktNoteSchema = z.string().min(1).max(8192);
/** The canonical bytes of one directory entry (crypto/src/kt/entry.ts), base64url. */
const ktEntrySchema = base64urlNonEmpty.refine((s) => s.length <= 40_000, 'entry too long');

/** `GET /api/kt/checkpoint` → 200 (no sign-in): the latest checkpoint and the relay's C2SP verifier key. */
export const ktCheckpointAnswerSchema = z.object({ checkpoint: ktNoteSchema, verifierKey: z.string().max(512) });
export type KtCheckpointAnswer = z.infer<typeof ktCheckpointAnswerSchema>;

/** `GET /api/kt/consistency?from=&to=` (no sign-in; from ≤ to ≤ the latest size, else 400 invalid_input). */
export const ktConsistencyQuery = z.strictObject({ from: ktSizeSchema, to: ktSizeSchema });
export const ktConsistencyAnswerSchema = z.object({ proof: ktProofSchema });
export type KtConsistencyAnswer = z.infer<typeof ktConsistencyAnswerSchema>;

/** One logged entry with its inclusion proof in the tree of the answer's checkpoint. */
export const ktLeafSchema = z.object({ index: z.number().int().min(0), entry: ktEntrySchema, proof: ktProofSchema });
export type KtLeaf = z.infer<typeof ktLeafSchema>;

/**
 * `?witnessed=<key id hex>,…` on the account and self-entries routes: answer against the newest checkpoint that
 * carries a cosignature of each of these witnesses (C2SP key ids, 8 hex; at most 16, each a witness in KT_WITNESSES,
 * else 400 invalid_input). See "Witnessed proofs" in relay/PROTOCOL.md.
 */
export const ktWitnessedSchema = z
  .string()
  .regex(/^[0-9a-f]{8}(,[0-9a-f]{8}){0,15}$/u, 'must be witness key ids (8 hex), comma-separated')
  .optional();

/**
 * `GET /api/kt/accounts/:userId[?witnessed=]` (signed in): the account's latest entry in the latest checkpoint (404
 * when none); with `witnessed`, in the newest checkpoint those witnesses cosigned, or 503 kt_unwitnessed when that
 * checkpoint does not hold the account's latest entry.
 */
export const ktAccountParams = z.strictObject({ userId: idSchema });
export const ktAccountQuery = z.strictObject({ witnessed: ktWitnessedSchema });
export const ktAccountAnswerSchema = z.object({ checkpoint: ktNoteSchema, leaf: ktLeafSchema });
export type KtAccountAnswer = z.infer<typeof ktAccountAnswerSchema>;

/**
 * `GET /api/kt/self/entries?since=[&witnessed=]` (signed in; own account only): its entries with index ≥ since, oldest
 * first; with `witnessed`, those in the newest checkpoint the witnesses cosigned (503 kt_unwitnessed when none).
 */
export const ktEntriesQuery = z.strictObject({ since: ktSizeSchema, witnessed: ktWitnessedSchema });
/** At most 100 entries; `more` when the next page starts after the last one. */
export const ktEntriesAnswerSchema = z.object({
  checkpoint: ktNoteSchema,
  entries: z.array(ktLeafSchema).max(100),
  more: z.boolean(),
});
export type KtEntriesAnswer = z.infer<typeof ktEntriesAnswerSchema>;

/**
 * `POST /api/kt/cosignatures` (no sign-in): a witness's cosignature — the relay's checkpoint note with the witness's
 * C2SP cosignature line(s) appended. 400 invalid_input for a body the relay did not sign or a bad signature, 403
 * forbidden for a key not in KT_WITNESSES. The answer is the checkpoint the relay now serves.
 */
export const ktCosignaturesSchema = z.strictObject({ checkpoint: ktNoteSchema });
export const ktCosignaturesAnswerSchema = z.object({ checkpoint: ktNoteSchema });
export type KtCosignaturesAnswer = z.infer<typeof ktCosignaturesAnswerSchema>;

/**
 * `GET /api/kt/releases/:sha256` (no sign-in): the release entry of the manifest whose exact served bytes have this
 * SHA-256 (lowercase hex), with its inclusion proof in the latest checkpoint; 404 not_found when it is not logged.
 */
export const ktReleaseParams = z.strictObject({ sha256: z.string().regex(/^[0-9a-f]{64}$/u, 'must be 64 hex') });
export const ktReleaseAnswerSchema = z.object({ checkpoint: ktNoteSchema, leaf: ktLeafSchema });
export type KtReleaseAnswer = z.infer<typeof ktReleaseAnswerSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Socket.IO

/**
 * Binary on the socket. The relay (Node) receives and sends `Buffer`s; msgpack in a browser decodes binary as
 * `ArrayBuffer`, so a receiving client sees either.
 */
export type BinaryBody = Uint8Array | ArrayBuffer;

const binaryBodySchema = z
  .custom<BinaryBody>((v) => v instanceof Uint8Array || v instanceof ArrayBuffer, 'must be binary')
  .refine(
    (v) => v.byteLength >= 1 && v.byteLength <= LIMITS.messageBodyBytes,
    `must be 1 to ${LIMITS.messageBodyBytes} bytes`,
  );

export const envelopeSchema = z.strictObject({ to: idSchema, body: binaryBodySchema });
export type Envelope = z.infer<typeof envelopeSchema>;

export const directSendSchema = z.strictObject({
  id: messageIdSchema,
  envelopes: z
    .array(envelopeSchema)
    .min(1)
    .max(LIMITS.envelopesPerSend)
    .refine((envs) => new Set(envs.map((e) => e.to)).size === envs.length, 'each device at most once'),
  ephemeral: z.boolean().optional(),
  /** Blobs (the sender's own uploads) this message refers to: they expire once it is acknowledged everywhere. */
  blobs: z.array(idSchema).min(1).max(LIMITS.blobsPerSend).optional(),
});
export type DirectSendPayload = z.infer<typeof directSendSchema>;

export const groupSendSchema = z.strictObject({
  id: messageIdSchema,
  group: idSchema,
  body: binaryBodySchema,
  ephemeral: z.boolean().optional(),
  blobs: z.array(idSchema).min(1).max(LIMITS.blobsPerSend).optional(),
});
export type GroupSendPayload = z.infer<typeof groupSendSchema>;

/** `message:send` */
export const messageSendSchema = z.union([directSendSchema, groupSendSchema]);
export type MessageSendPayload = z.infer<typeof messageSendSchema>;

/** `presence:watch`: replaces the connection's watch list. */
export const presenceWatchSchema = z.strictObject({
  userIds: z.array(idSchema).max(LIMITS.presenceWatchUsers),
});
export type PresenceWatchPayload = z.infer<typeof presenceWatchSchema>;

/** One item of a `messages` event. `seq` is 0 for an ephemeral message (never stored, nothing to delete). */
export interface DeliveredMessage {
  id: string;
  seq: number;
  /** Milliseconds since the epoch, assigned by the relay when the send was committed. */
  ts: number;
  body: BinaryBody;
  group?: string;
}
/** A receiving client's parse of one `messages` item: binary arrives as `ArrayBuffer` in a browser, and becomes a
 * `Uint8Array` here. */
export const deliveredMessageSchema = z.object({
  id: messageIdSchema,
  seq: z.number().int().nonnegative(),
  ts: z.number(),
  body: z.preprocess(
    (v) => (v instanceof ArrayBuffer ? new Uint8Array(v) : v),
    z.instanceof(Uint8Array).refine((v) => v.byteLength >= 1, 'must not be empty'),
  ),
  group: idSchema.optional(),
});
export type ReceivedMessage = z.infer<typeof deliveredMessageSchema>;

/** `presence` */
export const presenceUpdateSchema = z.object({
  userId: idSchema,
  online: z.boolean(),
  /** Milliseconds since the epoch; null when unknown or not shared. */
  lastSeen: z.number().nullable(),
});
export type PresenceUpdate = z.infer<typeof presenceUpdateSchema>;

const ackErrorSchema = z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string() }) });
export type AckError = { ok: false; error: ErrorBody };
/** A recipient device a send was not stored for, and why (the others got it). */
export const refusedRecipientSchema = z.object({ to: idSchema, code: z.literal('mailbox_full') });
export type RefusedRecipient = z.infer<typeof refusedRecipientSchema>;
/**
 * `refused` is present only when the send was stored for some recipient devices but not for these. The message id
 * is then used: to reach them later, send again under a new id. A send refused for every recipient stores nothing
 * and is answered with the error `mailbox_full` (the same id may be sent again).
 */
export const sendAckSchema = z.union([
  z.object({ ok: z.literal(true), ts: z.number(), refused: z.array(refusedRecipientSchema).optional() }),
  ackErrorSchema,
]);
export type SendAck = { ok: true; ts: number; refused?: RefusedRecipient[] } | AckError;
export const watchAckSchema = z.union([z.object({ ok: z.literal(true) }), ackErrorSchema]);
export type WatchAck = { ok: true } | AckError;

/** What a client emits. The relay answers every event that carries an ack callback. */
export interface ClientToServerEvents {
  'message:send': (payload: MessageSendPayload, ack: (answer: SendAck) => void) => void;
  'presence:watch': (payload: PresenceWatchPayload, ack: (answer: WatchAck) => void) => void;
}

/** What the relay emits. */
export interface ServerToClientEvents {
  /** Acknowledge once every item is stored; the relay then deletes those entries. */
  messages: (batch: DeliveredMessage[], ack: () => void) => void;
  presence: (update: PresenceUpdate) => void;
  /** To every connected device of the account: its device list changed (issue #14). */
  'devices:changed': (event: DevicesChangedEvent) => void;
  /** To a removed device's connections, just before the relay disconnects them (issue #14). */
  'device:removed': () => void;
}

/** The handshake `auth` object. */
export interface HandshakeAuth {
  token: string;
}

/** What the relay knows about each authenticated connection. */
export interface SocketData {
  userId: string;
  deviceId: string;
  familyId: string;
}
