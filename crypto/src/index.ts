// The public API of @weconnect/crypto: every function another package may call. Nothing deeper is imported.
//
// Pure and isomorphic: state in, new state out; no I/O, no clocks, no storage. Call `await ready()` once first.
// Errors are always CryptoError with a code (see errors.ts); misuse names the argument in the message.

import * as bytes from './bytes.js';
import * as deviceName from './device-name.js';
import * as envelope from './envelope.js';
import * as identity from './identity.js';
import * as kem from './kem.js';
import * as password from './password.js';
import * as prekeys from './prekeys.js';
import * as profile from './profile.js';
import * as random from './random.js';
import * as ratchet from './ratchet.js';
import * as safety from './safety-number.js';
import * as senderKeys from './sender-keys.js';
import * as session from './session.js';
import * as sodium from './sodium.js';
import * as x25519 from './x25519.js';
import type {
  AccountBackup,
  AccountKeys,
  Content,
  Envelope,
  EnvelopeType,
  GroupMessage,
  GroupMessageHeader,
  Identity,
  KdfParams,
  KemPrekey,
  KeyBackup,
  OneTimePrekey,
  OwnSenderKey,
  PasswordKeys,
  PrekeyBundle,
  PrekeyMessageInfo,
  SafetyNumber,
  SenderKeyRecord,
  Session,
  SignedPrekey,
  VerifiedKemPrekey,
  WireKemPrekey,
  WireOneTimePrekey,
  WireSignedPrekey,
} from './types.js';

export { CryptoError, isCryptoError, type CryptoErrorCode } from './errors.js';
export type { Profile } from './profile.js';
export type {
  AccountBackup,
  AccountKeys,
  AccountUpload,
  ChainState,
  ContactVerification,
  Content,
  ContentKind,
  Envelope,
  EnvelopeType,
  GroupMessage,
  GroupMessageHeader,
  Identity,
  KdfParams,
  KemPrekey,
  KeyBackup,
  KeyPair,
  OneTimePrekey,
  OwnSenderKey,
  PasswordKeys,
  PqRatchetState,
  PrekeyBundle,
  PrekeyMessageInfo,
  SafetyNumber,
  SenderKeyRecord,
  Session,
  SignedPrekey,
  VerifiedKemPrekey,
  WireKemPrekey,
  WireOneTimePrekey,
  WireSignedPrekey,
} from './types.js';
export type {
  SerializedIdentity,
  SerializedKemPrekey,
  SerializedOneTimePrekey,
  SerializedOwnSenderKey,
  SerializedSenderKeyRecord,
  SerializedSession,
  SerializedSignedPrekey,
} from './serialize.js';

/** Protocol version carried by every message, envelope, backup and serialized state. */
export const PROTOCOL_VERSION = 1;
/** Version byte of sender-key distributions and group bodies (2: both name the sender user and device). */
export const SENDER_KEY_VERSION = senderKeys.SENDER_KEY_VERSION;
/** Most skipped message keys one message may create (per ratchet step / per sender-key chain). */
export const MAX_SKIP_PER_STEP = ratchet.MAX_SKIP_PER_STEP;
/** Post-quantum rekeying: a new ML-KEM offer once this many DH ratchet steps passed without a KEM secret. */
export const KEM_REKEY_STEPS = ratchet.KEM_REKEY_STEPS;
/** Most skipped message keys a session or sender-key record keeps; the oldest are dropped first. */
export const MAX_SKIPPED_KEYS = ratchet.MAX_SKIPPED_KEYS;
/** Largest `Content.body` accepted (its padded form is 32 KiB, well inside the relay's 64 KiB body limit). */
export const MAX_CONTENT_BYTES = envelope.MAX_CONTENT_BYTES;
/** Argon2id parameters of protocol version 1 (PROTOCOL.md): opslimit 3, memlimit 64 MiB, 16-byte salt. */
export const KDF_PARAMS = password.KDF_PARAMS;
/** Length of the per-user Argon2id salt. */
export const SALT_BYTES = password.SALT_BYTES;

// ── setup and bytes ────────────────────────────────────────────────────────────────────────────────────────

/**
 * Loads libsodium (WebAssembly) and picks the X25519 the sealed box uses (node:crypto in Node, WebCrypto in
 * browsers, libsodium where neither passes a self-test). Resolve it once before anything else; later calls are free.
 */
export async function ready(): Promise<void> {
  await sodium.ready();
  await x25519.selectX25519();
}

/** Encodes bytes as base64url without padding (the wire format of every binary JSON field). */
export function toBase64Url(data: Uint8Array): string {
  return bytes.toBase64Url(data);
}

/**
 * Decodes strict base64url without padding. Throws `bad_input` (naming `name`) on any other alphabet,
 * padding, non-canonical trailing bits, or a length different from `expectedLength` when given.
 */
export function fromBase64Url(text: string, expectedLength?: number, name = 'text'): Uint8Array {
  return bytes.fromBase64Url(text, name, expectedLength);
}

/** Constant-time equality of two byte arrays (false if the lengths differ). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return bytes.constantTimeEqual(a, b);
}

/** Overwrites secret bytes with zeros (`sodium.memzero`). Call it on keys you no longer need. */
export function wipe(...secrets: (Uint8Array | null | undefined)[]): void {
  bytes.wipe(...secrets);
}

/** `n` cryptographically random bytes, from one `crypto.getRandomValues` call. */
export function randomBytes(n: number): Uint8Array {
  return random.randomBytes(n);
}

/** A new message id: 16 random bytes as base64url (22 characters), the idempotency key of a send. */
export function createMessageId(): string {
  return bytes.toBase64Url(random.randomBytes(16));
}

// ── identity and prekeys ───────────────────────────────────────────────────────────────────────────────────

/** Creates an account's identity (Ed25519, plus its X25519 form). Done once per account, on sign-up. */
export function generateIdentity(): Identity {
  return identity.generateIdentity();
}

/**
 * Creates a signed prekey (X25519) and signs its 32 public-key bytes with the identity key. Rotate it every
 * 7 days; keep the previous one for a while so in-flight prekey messages still decrypt.
 */
export function generateSignedPrekey(id: Identity, keyId: number): SignedPrekey {
  return prekeys.generateSignedPrekey(id, keyId);
}

/** Creates `count` one-time prekeys with ids `firstKeyId`, `firstKeyId + 1`, … (uint32). */
export function generateOneTimePrekeys(firstKeyId: number, count: number): OneTimePrekey[] {
  return prekeys.generateOneTimePrekeys(firstKeyId, count);
}

/**
 * Creates everything a new account's first device needs: identity, signed prekey (id `signedPrekeyId`,
 * default 1) and `oneTimePrekeyCount` (default 100) one-time prekeys (ids from `firstOneTimePrekeyId`, default 1),
 * with the public parts in the wire shapes of `POST /api/accounts`.
 */
export function createAccountKeys(
  options: { oneTimePrekeyCount?: number; signedPrekeyId?: number; firstOneTimePrekeyId?: number } = {},
): AccountKeys {
  return prekeys.createAccountKeys(options);
}

/** Keys for a new device of an existing account (identity restored from the backup): signed + one-time prekeys. */
export function createDeviceKeys(
  id: Identity,
  options: { oneTimePrekeyCount?: number; signedPrekeyId?: number; firstOneTimePrekeyId?: number } = {},
): AccountKeys {
  return prekeys.createDeviceKeys(id, options);
}

/** The identity key as the relay carries it (base64url of the 32 Ed25519 bytes). */
export function identityKeyToWire(id: Identity | Uint8Array): string {
  return identity.identityKeyToWire(id);
}

/** The public part of a signed prekey in PROTOCOL.md shape `{keyId, publicKey, signature}`. */
export function signedPrekeyToWire(spk: SignedPrekey): WireSignedPrekey {
  return prekeys.signedPrekeyToWire(spk);
}

/** The public parts of one-time prekeys in PROTOCOL.md shape `[{keyId, publicKey}]`. */
export function oneTimePrekeysToWire(keys: readonly OneTimePrekey[]): WireOneTimePrekey[] {
  return prekeys.oneTimePrekeysToWire(keys);
}

/**
 * Checks a wire signed prekey against an identity key exactly as the relay does (Ed25519 over the 32 public-key
 * bytes). Throws `invalid_signature`, `invalid_key` or `bad_input`.
 */
export function verifySignedPrekey(identityKey: Uint8Array | string, signedPrekey: unknown): void {
  prekeys.verifySignedPrekey(identityKey, signedPrekey);
}

/**
 * Parses and verifies one device of a relay bundle (`GET /api/users/:userId/bundle`): the account's
 * `identityKey` plus that device's `signedPrekey` and `oneTimePrekey` (or null). Throws `bad_input`,
 * `invalid_key` (all-zero, low-order or invalid keys) or `invalid_signature`.
 */
export function verifyPrekeyBundle(bundle: {
  identityKey: unknown;
  signedPrekey: unknown;
  oneTimePrekey: unknown;
  /** The device's signed KEM prekey, when the relay has one: the bundle then starts a PQXDH session. */
  kemPrekey?: unknown;
}): PrekeyBundle {
  return prekeys.verifyPrekeyBundle(bundle);
}

// ── post-quantum (PQXDH) prekeys ──────────────────────────────────────────────────────────────────────────

/** ML-KEM-768 sizes (FIPS 203): public key, ciphertext. */
export const KEM_PUBLIC_KEY_BYTES = kem.KEM_PUBLIC_KEY_BYTES;
export const KEM_CIPHERTEXT_BYTES = kem.KEM_CIPHERTEXT_BYTES;

/**
 * Makes `count` signed ML-KEM-768 prekeys with ids from `firstKeyId` (one-time ones), or with `lastResort` the one
 * last-resort key (count 1) that the relay hands out when no one-time KEM prekey is left.
 */
export function generateKemPrekeys(id: Identity, firstKeyId: number, count: number, lastResort = false): KemPrekey[] {
  return kem.generateKemPrekeys(id, firstKeyId, count, lastResort);
}

/** A KEM prekey's public part as the relay stores and hands it out. */
export function kemPrekeyToWire(k: KemPrekey): WireKemPrekey {
  return kem.kemPrekeyToWire(k);
}

/**
 * Verifies a KEM prekey from the relay against the account's identity key (the signature covers the key id and
 * the last-resort flag too). Throws `invalid_signature` or `bad_input`. {@link verifyPrekeyBundle} does this for
 * a bundle's `kemPrekey`.
 */
export function verifyKemPrekey(identityKey: Uint8Array | string, value: unknown): VerifiedKemPrekey {
  return kem.verifyKemPrekey(identityKey, value);
}

// ── pairwise sessions ──────────────────────────────────────────────────────────────────────────────────────

/**
 * Starts a session with one remote device from its verified bundle (X3DH, initiator side). Messages sent on it
 * are prekey messages until the peer's first reply decrypts. Check `bundle.identityKey` against the key you
 * trust for `peerUserId` first (a changed key must be accepted by the user).
 */
export function initiateSession(params: {
  identity: Identity;
  localUserId: string;
  localDeviceId: string;
  peerUserId: string;
  peerDeviceId: string;
  bundle: PrekeyBundle;
  requirePostQuantum?: boolean;
}): Session {
  return session.initiateSession(params);
}

/** Reads the X3DH fields of a `prekey` envelope's payload so the caller can load the named prekeys. */
export function readPrekeyMessage(payload: Uint8Array): PrekeyMessageInfo {
  return session.readPrekeyMessage(payload);
}

/**
 * True if `envelope` starts a session that `existing` is not (no session yet, or a prekey message with a
 * different base key: the peer started over). Then call {@link acceptSession}; otherwise {@link decryptFromDevice}.
 */
export function isNewSession(existing: Session | null, env: Envelope): boolean {
  return session.isNewSession(existing, env);
}

/**
 * Accepts a `prekey` envelope (X3DH, responder side) and decrypts its first message. `expectedPeerIdentityKey`
 * is the identity key you trust (or just fetched) for `envelope.senderUserId`: a different key in the message
 * throws `sender_mismatch`. Pass the signed prekey and one-time prekey named by {@link readPrekeyMessage}
 * (`unknown_prekey` if they do not match). On success, delete the one-time prekey from storage. If both devices
 * started a session at the same time, keep the previous session for a while and try it when the new one fails:
 * messages already in flight were encrypted with it.
 */
export function acceptSession(params: {
  identity: Identity;
  localUserId: string;
  localDeviceId: string;
  envelope: Envelope;
  signedPrekey: SignedPrekey;
  oneTimePrekey: OneTimePrekey | null;
  expectedPeerIdentityKey: Uint8Array | string;
  kemPrekey?: KemPrekey | null;
  requirePostQuantum?: boolean;
}): { session: Session; content: Content } {
  return session.acceptSession(params);
}

/**
 * Encrypts content for the session's peer device: pads, ratchet-encrypts (the envelope fields are bound as
 * associated data) and seals the envelope to the peer's identity X25519 key. Resolves to the new session (persist
 * it) and the opaque `body` for `message:send` `{to: session.peerDeviceId, body}`. Asynchronous because the seal's
 * X25519 may run in WebCrypto; the input session is never modified.
 */
export function encryptToDevice(
  s: Session,
  params: { messageId: string; content: Content },
): Promise<{ session: Session; body: Uint8Array }> {
  return session.encryptToDevice(s, params);
}

/**
 * Decrypts an opened envelope with the existing session. Throws `sender_mismatch` if the envelope claims a
 * different sender than the session's peer, and `decrypt_failed` / `duplicate_message` / `too_many_skipped` /
 * `invalid_key` on bad messages. The input session is never modified: persist the returned one.
 */
export function decryptFromDevice(s: Session, env: Envelope): { session: Session; content: Content } {
  return session.decryptFromDevice(s, env);
}

/**
 * Low-level Double Ratchet encryption of raw bytes (no padding, no envelope). Returns the payload and whether it
 * is a `prekey` message. `associatedData` is bound to the message and must be passed again to decrypt.
 */
export function ratchetEncrypt(
  s: Session,
  plaintext: Uint8Array,
  associatedData: Uint8Array = new Uint8Array(0),
): { session: Session; type: EnvelopeType; payload: Uint8Array } {
  return session.ratchetEncryptPayload(s, plaintext, associatedData);
}

/** Low-level Double Ratchet decryption (the reverse of {@link ratchetEncrypt}); never mutates `s`. */
export function ratchetDecrypt(
  s: Session,
  type: EnvelopeType,
  payload: Uint8Array,
  associatedData: Uint8Array = new Uint8Array(0),
): { session: Session; plaintext: Uint8Array } {
  return session.ratchetDecryptPayload(s, type, payload, associatedData);
}

// ── envelopes and padding ──────────────────────────────────────────────────────────────────────────────────

/**
 * Seals `{version, senderUserId, senderDeviceId, messageId, type, payload}` to a recipient's Ed25519 identity key
 * (sealed envelope format 2 to its X25519 form, see README: one ephemeral key per seal epoch of at most 64 envelopes
 * and 60 seconds per recipient key, a random nonce per envelope). The relay sees only the recipient device it routes
 * to and an opaque blob.
 */
export function sealEnvelope(params: {
  recipientIdentityKey: Uint8Array | string;
  senderUserId: string;
  senderDeviceId: string;
  messageId: string;
  type: EnvelopeType;
  payload: Uint8Array;
}): Promise<Uint8Array> {
  return envelope.sealEnvelope(params);
}

/**
 * Opens a sealed envelope (format 2, or format 1: `crypto_box_seal`) with our identity (its X25519 key is imported
 * into the platform once and cached; the keys of the last 256 seal epochs that opened are remembered). Rejects with
 * `decrypt_failed`, `bad_input` or `unsupported_version`.
 */
export function openEnvelope(id: Identity, body: Uint8Array): Promise<Envelope> {
  return envelope.openEnvelope(id, body);
}

/** Ends every seal epoch and wipes every remembered epoch key (sign-out, closing an account in an open page). */
export function forgetSealEpochs(): void {
  envelope.forgetSealEpochs();
}

/** Pads to 256-byte blocks up to 4 KiB, then to the next power of two (ISO/IEC 7816-4, `sodium.pad`). */
export function padPlaintext(data: Uint8Array): Uint8Array {
  return envelope.padPlaintext(data);
}

/** Removes {@link padPlaintext} padding; throws `decrypt_failed` on a malformed padding. */
export function unpadPlaintext(padded: Uint8Array): Uint8Array {
  return envelope.unpadPlaintext(padded);
}

// ── groups (sender keys) ───────────────────────────────────────────────────────────────────────────────────

/**
 * Creates this device's sender key for a group (fresh chain key, Ed25519 signing key, random distribution id),
 * naming this device (`senderUserId`, `senderDeviceId`) in its distribution and in every message it encrypts.
 * Also the way to rotate: when a member leaves, every remaining member creates a new one and distributes it.
 */
export function createSenderKey(params: {
  groupId: string;
  senderUserId: string;
  senderDeviceId: string;
}): OwnSenderKey {
  return senderKeys.createSenderKey(params);
}

/**
 * The distribution message for our sender key at its current iteration: send it to each member device as
 * `{kind: 'sender_key', body}` over the pairwise session ({@link encryptToDevice}).
 */
export function senderKeyDistribution(key: OwnSenderKey): Uint8Array {
  return senderKeys.senderKeyDistribution(key);
}

/**
 * Turns a received distribution into a record for decrypting that member's group messages. `session` is the
 * pairwise session the distribution arrived on: a distribution that names any sender other than the session's
 * peer user and device throws `sender_mismatch`. Check that this sender is a member of `record.groupId` before
 * storing it, and store it under (sender user, sender device, distribution id); if you already hold a record under
 * that key, keep yours (it is further along, so old messages cannot be replayed through a re-sent distribution).
 */
export function acceptSenderKeyDistribution(s: Session, distribution: Uint8Array): SenderKeyRecord {
  return senderKeys.acceptSenderKeyDistribution(s.peerUserId, s.peerDeviceId, distribution);
}

/**
 * Encrypts and signs one group message, once, whatever the group size. The body is what `message:send`
 * `{id, group, body}` carries (with the same `messageId`); persist the returned sender key.
 */
export function encryptGroupMessage(
  key: OwnSenderKey,
  params: { messageId: string; content: Content },
): { senderKey: OwnSenderKey; body: Uint8Array } {
  return senderKeys.encryptGroupMessage(key, params);
}

/**
 * The clear header of a group message: the sender user, sender device and distribution id to find the sender's
 * {@link SenderKeyRecord} by (all three: never the distribution id alone), and the message id it claims. These are
 * claims until {@link decryptGroupMessage} verifies them. Throws `decrypt_failed` / `unsupported_version`.
 */
export function readGroupMessageHeader(body: Uint8Array): GroupMessageHeader {
  return senderKeys.readGroupMessageHeader(body);
}

/**
 * Verifies and decrypts a group message with the sender's record. `groupId` and `messageId` are the group and the
 * id the relay delivered it under; both are covered by the signature. Throws `sender_mismatch` (another group or
 * sender than the record's), `unknown_sender_key`, `message_id_mismatch`, `invalid_signature`, `decrypt_failed`,
 * `duplicate_message`, `too_many_skipped`. Never mutates `record`: persist the returned one.
 */
export function decryptGroupMessage(
  record: SenderKeyRecord,
  params: { groupId: string; messageId: string; body: Uint8Array },
): { record: SenderKeyRecord; message: GroupMessage } {
  return senderKeys.decryptGroupMessage(record, params);
}

// ── safety numbers ─────────────────────────────────────────────────────────────────────────────────────────

/**
 * The 60-digit safety number for us and a peer (Signal's format with BLAKE2b-512: 5200 iterations over
 * version ‖ identity key ‖ user id per party, 30 digits each, sorted), and the QR bytes. Equal on both sides.
 */
export function safetyNumber(params: {
  localUserId: string;
  localIdentityKey: Uint8Array | string;
  peerUserId: string;
  peerIdentityKey: Uint8Array | string;
}): SafetyNumber {
  return safety.safetyNumber(params);
}

/** True if QR bytes scanned from the peer's screen match our safety number (their local is our peer, and back). */
export function verifySafetyNumberQr(ours: SafetyNumber, scanned: Uint8Array): boolean {
  return safety.verifySafetyNumberQr(ours, scanned);
}

// ── passwords, backup, wrapping ────────────────────────────────────────────────────────────────────────────

/** A new random 16-byte per-user salt for Argon2id. */
export function generateSalt(): Uint8Array {
  return password.generateSalt();
}

/**
 * Argon2id (`crypto_pwhash`) of the password (NFC-normalized), then `crypto_kdf` into the auth key and wrap key.
 * Accepts only the protocol-version-1 parameters (`KDF_PARAMS`): a relay cannot lower the cost (a downgrade) or
 * raise it to hang the tab. ~1–2 s: run it in a worker.
 */
export function derivePasswordKeys(pass: string, params: KdfParams): PasswordKeys {
  return password.derivePasswordKeys(pass, params);
}

/** True only for the Argon2id parameters this client uses itself (check a relay's answer before deriving). */
export function isAcceptedKdfParams(params: { opslimit: unknown; memlimit: unknown }): boolean {
  return password.isAcceptedKdfParams(params);
}

/** 1: a legacy backup under the wrap key; 2: under a backup key, bound to the account, with a revision. */
export function backupFormat(sealed: Uint8Array): 1 | 2 {
  return password.backupFormat(sealed);
}

/** A fresh random 32-byte backup key (seals the key backup; kept sealed on each device of the account). */
export function generateBackupKey(): Uint8Array {
  return password.generateBackupKey();
}

/** The backup key sealed under the password's wrap key and bound to `userId`: the key box a new device opens. */
export function wrapBackupKey(wrapKey: Uint8Array, userId: string, backupKey: Uint8Array): Uint8Array {
  return password.wrapBackupKey(wrapKey, userId, backupKey);
}

/** Opens the key box of a format-2 backup with the wrap key (a new device, or an unlock with the password). */
export function unwrapBackupKey(wrapKey: Uint8Array, userId: string, sealed: Uint8Array): Uint8Array {
  return password.unwrapBackupKey(wrapKey, userId, sealed);
}

/** A copy of the key box inside a format-2 backup. */
export function backupKeyBox(sealed: Uint8Array): Uint8Array {
  return password.backupKeyBox(sealed);
}

/** Encrypts the key backup (format 2) with the backup key, for `PUT /api/backup`; `keyBox` travels with it. */
export function sealAccountBackup(backupKey: Uint8Array, keyBox: Uint8Array, backup: AccountBackup): Uint8Array {
  return password.sealAccountBackup(backupKey, keyBox, backup);
}

/** Decrypts and strictly parses a format-2 backup of `userId`; a wrong key, account or tampering: `decrypt_failed`. */
export function openAccountBackup(backupKey: Uint8Array, userId: string, sealed: Uint8Array): AccountBackup {
  return password.openAccountBackup(backupKey, userId, sealed);
}

/** Format 1 (under the wrap key): written only by tests and vectors, to exercise reading old accounts. */
export function sealLegacyBackup(wrapKey: Uint8Array, backup: KeyBackup): Uint8Array {
  return password.sealLegacyBackup(wrapKey, backup);
}

/** Decrypts a format-1 backup (accounts made before format 2). A wrong password or tampering: `decrypt_failed`. */
export function openLegacyBackup(wrapKey: Uint8Array, sealed: Uint8Array): KeyBackup {
  return password.openLegacyBackup(wrapKey, sealed);
}

/**
 * Encrypts private material for local storage with the wrap key. `context` (e.g. `'session:<user>:<device>'`)
 * is bound as associated data, so a blob cannot be swapped for another.
 */
export function wrapSecret(wrapKey: Uint8Array, context: string, plaintext: Uint8Array): Uint8Array {
  return password.wrapSecret(wrapKey, context, plaintext);
}

/** Reverse of {@link wrapSecret}; throws `decrypt_failed` on a wrong key, context or tampering. */
export function unwrapSecret(wrapKey: Uint8Array, context: string, wrapped: Uint8Array): Uint8Array {
  return password.unwrapSecret(wrapKey, context, wrapped);
}

/** {@link wrapSecret} of a JSON-safe value (e.g. a serialized session). */
export function wrapJson(wrapKey: Uint8Array, context: string, value: unknown): Uint8Array {
  return password.wrapJson(wrapKey, context, value);
}

/** Reverse of {@link wrapJson}: returns `unknown`, to be given to a `deserialize…` function. */
export function unwrapJson(wrapKey: Uint8Array, context: string, wrapped: Uint8Array): unknown {
  return password.unwrapJson(wrapKey, context, wrapped);
}

// ── profiles ───────────────────────────────────────────────────────────────────────────────────────────────

/** Profile limits: display name characters, picture bytes, and the largest sealed profile. */
export const PROFILE_NAME_MAX_CHARS = profile.PROFILE_NAME_MAX_CHARS;
export const PROFILE_PICTURE_MAX_BYTES = profile.PROFILE_PICTURE_MAX_BYTES;
export const SEALED_PROFILE_MAX_BYTES = profile.SEALED_PROFILE_MAX_BYTES;

/** The account's 32-byte profile key, derived from its backup key (every device of the account derives the same). */
export function deriveProfileKey(backupKey: Uint8Array): Uint8Array {
  return profile.deriveProfileKey(backupKey);
}

/**
 * Seals a profile (display name, picture) with the profile key, bound to `userId`, padded so that its length does
 * not reveal the name's (and the picture's only to 4 KiB). Throws `bad_input` for a name over 64 characters or a
 * picture over 64 KiB.
 */
export function sealProfile(profileKey: Uint8Array, userId: string, value: profile.Profile): Uint8Array {
  return profile.sealProfile(profileKey, userId, value);
}

/** Opens a sealed profile of `userId`: wrong key, another user's profile, tampering or bad layout: `decrypt_failed`. */
export function openProfile(profileKey: Uint8Array, userId: string, sealed: Uint8Array): profile.Profile {
  return profile.openProfile(profileKey, userId, sealed);
}

// ── serialisation (JSON-safe, versioned, strictly parsed) ──────────────────────────────────────────────────

// Each `serialize…` returns a JSON-safe object (base64url strings, numbers, a `version` field) holding secrets:
// wrap it with `wrapJson` before storing. Each `deserialize…` takes `unknown` and validates every field's shape and
// length, throwing `bad_input`, `invalid_key` or `unsupported_version`.
export {
  deserializeIdentity,
  deserializeKemPrekey,
  deserializeOneTimePrekey,
  deserializeOwnSenderKey,
  deserializeSenderKeyRecord,
  deserializeSession,
  deserializeSignedPrekey,
  serializeIdentity,
  serializeKemPrekey,
  serializeOneTimePrekey,
  serializeOwnSenderKey,
  serializeSenderKeyRecord,
  serializeSession,
  serializeSignedPrekey,
} from './serialize.js';

// ── test hooks ─────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Rekeys with ML-KEM after `steps` DH ratchet steps instead of KEM_REKEY_STEPS (`null` restores it), so property
 * tests exercise offers and answers under every interleaving. Throws `test_hooks_disabled` outside tests.
 */
export function dangerousTestOnlySetKemRekeySteps(steps: number | null): void {
  ratchet.dangerousTestOnlySetKemRekeySteps(steps);
}

/**
 * Replaces the random source (for golden vectors), or restores `crypto.getRandomValues` with `null`.
 * Throws `test_hooks_disabled` unless running under Vitest or `NODE_ENV === 'test'`.
 */
export function dangerousTestOnlySetRandomSource(source: ((n: number) => Uint8Array) | null): void {
  random.dangerousTestOnlySetRandomSource(source);
}

/** How many seal epochs are open for sealing and remembered for opening. Throws `test_hooks_disabled` outside tests. */
export function dangerousTestOnlySealCacheSizes(): { sealing: number; opened: number } {
  return envelope.dangerousTestOnlySealCacheSizes();
}

// ── device names (issue #14) ───────────────────────────────────────────────────────────────────────────────

/** Longest device name in UTF-8 bytes (after trimming). */
export const MAX_DEVICE_NAME_BYTES = deviceName.MAX_DEVICE_NAME_BYTES;

/**
 * Seals a device name for the account's own devices with a key derived from the account's backup key (the relay
 * never holds it), bound to the user and device ids, padded to one fixed size.
 */
export function sealDeviceName(backupKey: Uint8Array, userId: string, deviceId: string, name: string): Uint8Array {
  return deviceName.sealDeviceName(backupKey, userId, deviceId, name);
}

/** Opens a name made by {@link sealDeviceName}; `decrypt_failed` for another key or ids, or tampering. */
export function openDeviceName(backupKey: Uint8Array, userId: string, deviceId: string, sealed: Uint8Array): string {
  return deviceName.openDeviceName(backupKey, userId, deviceId, sealed);
}

// ── attachments (issue #15) ───────────────────────────────────────────────────────────────────────────────

// A file sealed as a chunked secretstream under its own key, padded to a size bucket (see attachment.ts).
export {
  ATTACHMENT_CHUNK_BYTES,
  ATTACHMENT_CHUNK_OVERHEAD,
  ATTACHMENT_HEADER_BYTES,
  ATTACHMENT_KEY_BYTES,
  ATTACHMENT_MAX_BYTES,
  AttachmentOpener,
  AttachmentSealer,
  attachmentPaddedSize,
  attachmentSealedSize,
  generateAttachmentHeader,
  generateAttachmentKey,
  Sha256,
} from './attachment.js';
// ── key transparency (issue #16) ───────────────────────────────────────────────────────────────────────────

/** Key transparency verification: RFC 9162 proofs, directory entries, C2SP checkpoints and cosignatures. */
export * as kt from './kt/index.js';
