// Passwords never leave the browser: Argon2id → master key → crypto_kdf split into auth key and wrap key.
// The wrap key seals a random backup key; the backup key seals the key backup (format 2, bound to the account and
// carrying a revision a device remembers). Format 1 (the backup sealed directly under the wrap key) is still read.

import { concat, fromBase64Url, fromUtf8, toBase64Url, utf8, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { labelPrefix, LABELS } from './kdf.js';
import { KEY_BYTES } from './keys.js';
import { NONCE_BYTES, TAG_BYTES } from './ratchet.js';
import { randomBytes } from './random.js';
import { deserializeIdentity, serializeIdentity } from './serialize.js';
import { sodium } from './sodium.js';
import type { AccountBackup, ContactVerification, KdfParams, KeyBackup, PasswordKeys } from './types.js';
import { arrayArg, booleanArg, bytesArg, fail, idArg, objectArg, versionArg } from './validate.js';
import { padPlaintext, unpadPlaintext } from './envelope.js';

export const KDF_PARAMS = { opslimit: 3, memlimit: 64 * 1024 * 1024 } as const;
export const SALT_BYTES = 16;
/** crypto_kdf context (8 bytes) and subkey ids of the password split. */
const KDF_CONTEXT = 'WCpasswd';
const AUTH_SUBKEY = 1;
const WRAP_SUBKEY = 2;
const SEALED_VERSION = 1;
/** First byte of a key backup: format 1 is `seal()` itself (its version byte), format 2 the keyed layout below. */
const LEGACY_FORMAT = SEALED_VERSION;
const ACCOUNT_FORMAT = 2;
/** A sealed 32-byte backup key: version ‖ nonce ‖ key ‖ tag. */
const KEY_BOX_BYTES = 1 + NONCE_BYTES + KEY_BYTES + TAG_BYTES;
/** Revisions count writes of one account's backup; 2^32 writes are beyond any account's life. */
const MAX_REVISION = 0xffffffff;
/** The relay keeps at most 64 KiB of backup. */
export const MAX_BACKUP_BYTES = 64 * 1024;
const MAX_CONTACTS = 400;

/**
 * The Argon2id parameters this client uses, and the only ones it accepts from a relay: a hostile relay could
 * otherwise ask for 20 passes over 1 GiB and hang the tab. A later protocol version changes KDF_PARAMS here.
 */
export function isAcceptedKdfParams(params: { opslimit: unknown; memlimit: unknown }): boolean {
  return params.opslimit === KDF_PARAMS.opslimit && params.memlimit === KDF_PARAMS.memlimit;
}

export function generateSalt(): Uint8Array {
  return randomBytes(SALT_BYTES);
}

export function derivePasswordKeys(password: string, params: KdfParams): PasswordKeys {
  if (typeof password !== 'string' || password.length === 0) fail('password must be a non-empty string');
  if (typeof params !== 'object' || params === null) fail('params must be an object');
  const salt =
    typeof params.salt === 'string'
      ? fromBase64Url(params.salt, 'params.salt', SALT_BYTES)
      : bytesArg(params.salt, 'params.salt', SALT_BYTES);
  const { opslimit, memlimit } = params;
  if (!isAcceptedKdfParams(params)) {
    fail(`params must be opslimit ${KDF_PARAMS.opslimit} and memlimit ${KDF_PARAMS.memlimit} (protocol version 1)`);
  }
  const lib = sodium();
  // NFC so the same password typed on different platforms gives the same key.
  const passwordBytes = utf8(password.normalize('NFC'));
  const master = lib.crypto_pwhash(
    KEY_BYTES,
    passwordBytes,
    salt,
    opslimit,
    memlimit,
    lib.crypto_pwhash_ALG_ARGON2ID13,
  );
  try {
    const authKey = lib.crypto_kdf_derive_from_key(KEY_BYTES, AUTH_SUBKEY, KDF_CONTEXT, master);
    const wrapKey = lib.crypto_kdf_derive_from_key(KEY_BYTES, WRAP_SUBKEY, KDF_CONTEXT, master);
    return { authKey, authKeyBase64Url: toBase64Url(authKey), wrapKey };
  } finally {
    wipe(master, passwordBytes);
  }
}

/** version ‖ nonce ‖ XChaCha20-Poly1305(plaintext, AD = label ‖ version ‖ context). */
function seal(wrapKey: Uint8Array, label: string, context: Uint8Array, plaintext: Uint8Array): Uint8Array {
  bytesArg(wrapKey, 'wrapKey', KEY_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const ad = concat(labelPrefix(label), Uint8Array.of(SEALED_VERSION), context);
  const ct = sodium().crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, wrapKey);
  return concat(Uint8Array.of(SEALED_VERSION), nonce, ct);
}

function open(wrapKey: Uint8Array, label: string, context: Uint8Array, sealed: Uint8Array, what: string): Uint8Array {
  bytesArg(wrapKey, 'wrapKey', KEY_BYTES);
  bytesArg(sealed, what);
  if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES) throw new CryptoError('decrypt_failed', `${what} is truncated`);
  if (sealed[0] !== SEALED_VERSION) {
    throw new CryptoError('unsupported_version', `${what} version ${sealed[0]} is not supported`);
  }
  const ad = concat(labelPrefix(label), Uint8Array.of(SEALED_VERSION), context);
  try {
    return sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      sealed.subarray(1 + NONCE_BYTES),
      ad,
      sealed.subarray(1, 1 + NONCE_BYTES),
      wrapKey,
    );
  } catch {
    throw new CryptoError('decrypt_failed', `${what} failed authentication (wrong key or tampered)`);
  }
}

function parseContacts(value: unknown): ContactVerification[] {
  return arrayArg(value, 'backup.contacts', MAX_CONTACTS).map((c, i) => {
    const o = objectArg(c, `backup.contacts[${i}]`, ['userId', 'identityKey', 'verified']);
    return {
      userId: idArg(o['userId'], `backup.contacts[${i}].userId`),
      identityKey: toBase64Url(fromBase64Url(o['identityKey'], `backup.contacts[${i}].identityKey`, KEY_BYTES)),
      verified: booleanArg(o['verified'], `backup.contacts[${i}].verified`),
    };
  });
}

/** Format 1, sealed directly under the wrap key: only tests and vectors still write it (to exercise migration). */
export function sealLegacyBackup(wrapKey: Uint8Array, backup: KeyBackup): Uint8Array {
  if (typeof backup !== 'object' || backup === null) fail('backup must be an object');
  const json = JSON.stringify({
    version: 1,
    identity: serializeIdentity(backup.identity),
    contacts: parseContacts(backup.contacts),
  });
  const plaintext = utf8(json);
  const padded = padPlaintext(plaintext);
  wipe(plaintext);
  const sealed = seal(wrapKey, LABELS.backup, new Uint8Array(0), padded);
  wipe(padded);
  if (sealed.length > MAX_BACKUP_BYTES) fail(`backup is larger than ${MAX_BACKUP_BYTES} bytes`);
  return sealed;
}

/** Opens a format-1 backup (no account binding, no revision): what accounts made before format 2 hold. */
export function openLegacyBackup(wrapKey: Uint8Array, sealed: Uint8Array): KeyBackup {
  const padded = open(wrapKey, LABELS.backup, new Uint8Array(0), sealed, 'backup');
  const plaintext = unpadPlaintext(padded);
  wipe(padded);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(plaintext, 'backup'));
  } catch (err) {
    if (err instanceof CryptoError) throw err;
    throw new CryptoError('bad_input', 'backup is not valid JSON');
  } finally {
    wipe(plaintext);
  }
  const o = objectArg(parsed, 'backup', ['version', 'identity', 'contacts']);
  versionArg(o['version'], 'backup');
  return { identity: deserializeIdentity(o['identity']), contacts: parseContacts(o['contacts']) };
}

/** 1 (legacy, under the wrap key) or 2 (under a backup key, bound to the account, with a revision). */
export function backupFormat(sealed: Uint8Array): 1 | 2 {
  bytesArg(sealed, 'backup');
  if (sealed[0] === LEGACY_FORMAT) return 1;
  if (sealed[0] === ACCOUNT_FORMAT) return 2;
  throw new CryptoError('unsupported_version', `backup format ${sealed[0] ?? 'none'} is not supported`);
}

/** A fresh random key for an account's backup; it lives sealed on each device, never derived from the password. */
export function generateBackupKey(): Uint8Array {
  return randomBytes(KEY_BYTES);
}

/** The backup key sealed under the password's wrap key, bound to the account: how a new device obtains it. */
export function wrapBackupKey(wrapKey: Uint8Array, userId: string, backupKey: Uint8Array): Uint8Array {
  return seal(wrapKey, LABELS.backupKey, utf8(idArg(userId, 'userId')), bytesArg(backupKey, 'backupKey', KEY_BYTES));
}

function splitAccountBackup(sealed: Uint8Array): { keyBox: Uint8Array; body: Uint8Array } {
  if (backupFormat(sealed) !== ACCOUNT_FORMAT) {
    throw new CryptoError('unsupported_version', 'backup is in format 1: open it with openLegacyBackup');
  }
  if (sealed.length < 1 + KEY_BOX_BYTES) throw new CryptoError('decrypt_failed', 'backup is truncated');
  return { keyBox: sealed.subarray(1, 1 + KEY_BOX_BYTES), body: sealed.subarray(1 + KEY_BOX_BYTES) };
}

/** Opens the key box of a format-2 backup with the wrap key. Another account's backup fails (`decrypt_failed`). */
export function unwrapBackupKey(wrapKey: Uint8Array, userId: string, sealed: Uint8Array): Uint8Array {
  const { keyBox } = splitAccountBackup(sealed);
  return open(wrapKey, LABELS.backupKey, utf8(idArg(userId, 'userId')), keyBox, 'backup key');
}

/** A copy of the key box of a format-2 backup (to re-seal later with the backup key alone). */
export function backupKeyBox(sealed: Uint8Array): Uint8Array {
  return splitAccountBackup(sealed).keyBox.slice();
}

/** The body's AD context: the fixed-length key box, then the user id (so the whole backup is authenticated). */
function bodyContext(keyBox: Uint8Array, userId: string): Uint8Array {
  return concat(keyBox, utf8(userId));
}

/**
 * Format 2: `2 ‖ keyBox ‖ seal(backupKey, {version, userId, revision, identity, contacts}, AD ∋ keyBox, userId)`.
 * The user id is bound both ways (AD and content) so a relay cannot hand one account another's backup; the revision
 * is inside the ciphertext, so the relay cannot read or alter it, and devices refuse one below what they have seen.
 */
export function sealAccountBackup(backupKey: Uint8Array, keyBox: Uint8Array, backup: AccountBackup): Uint8Array {
  if (typeof backup !== 'object' || backup === null) fail('backup must be an object');
  bytesArg(keyBox, 'keyBox', KEY_BOX_BYTES);
  const userId = idArg(backup.userId, 'backup.userId');
  const revision = revisionArg(backup.revision);
  const json = JSON.stringify({
    version: 2,
    userId,
    revision,
    identity: serializeIdentity(backup.identity),
    contacts: parseContacts(backup.contacts),
  });
  const plaintext = utf8(json);
  const padded = padPlaintext(plaintext);
  wipe(plaintext);
  const body = seal(backupKey, LABELS.accountBackup, bodyContext(keyBox, userId), padded);
  wipe(padded);
  const sealed = concat(Uint8Array.of(ACCOUNT_FORMAT), keyBox, body);
  if (sealed.length > MAX_BACKUP_BYTES) fail(`backup is larger than ${MAX_BACKUP_BYTES} bytes`);
  return sealed;
}

/** Opens a format-2 backup of `userId`. A wrong key, another account's backup or tampering throw `decrypt_failed`. */
export function openAccountBackup(backupKey: Uint8Array, userId: string, sealed: Uint8Array): AccountBackup {
  const expected = idArg(userId, 'userId');
  const { keyBox, body } = splitAccountBackup(sealed);
  const padded = open(backupKey, LABELS.accountBackup, bodyContext(keyBox, expected), body, 'backup');
  const plaintext = unpadPlaintext(padded);
  wipe(padded);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(plaintext, 'backup'));
  } catch (err) {
    if (err instanceof CryptoError) throw err;
    throw new CryptoError('bad_input', 'backup is not valid JSON');
  } finally {
    wipe(plaintext);
  }
  const o = objectArg(parsed, 'backup', ['version', 'userId', 'revision', 'identity', 'contacts']);
  if (o['version'] !== 2) throw new CryptoError('unsupported_version', 'backup content version is not 2');
  if (o['userId'] !== expected) throw new CryptoError('decrypt_failed', 'backup belongs to another account');
  return {
    userId: expected,
    revision: revisionArg(o['revision']),
    identity: deserializeIdentity(o['identity']),
    contacts: parseContacts(o['contacts']),
  };
}

function revisionArg(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_REVISION) {
    fail(`backup.revision must be an integer from 0 to ${MAX_REVISION}`);
  }
  return value;
}

function contextBytes(context: unknown): Uint8Array {
  if (typeof context !== 'string' || context.length === 0) fail('context must be a non-empty string');
  return utf8(context);
}

export function wrapSecret(wrapKey: Uint8Array, context: string, plaintext: Uint8Array): Uint8Array {
  return seal(wrapKey, LABELS.wrap, contextBytes(context), bytesArg(plaintext, 'plaintext'));
}

export function unwrapSecret(wrapKey: Uint8Array, context: string, wrapped: Uint8Array): Uint8Array {
  return open(wrapKey, LABELS.wrap, contextBytes(context), wrapped, 'wrapped');
}

export function wrapJson(wrapKey: Uint8Array, context: string, value: unknown): Uint8Array {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    fail('value is not JSON-serializable');
  }
  if (json === undefined) fail('value is not JSON-serializable');
  const plaintext = utf8(json);
  try {
    return wrapSecret(wrapKey, context, plaintext);
  } finally {
    wipe(plaintext);
  }
}

export function unwrapJson(wrapKey: Uint8Array, context: string, wrapped: Uint8Array): unknown {
  const plaintext = unwrapSecret(wrapKey, context, wrapped);
  try {
    return JSON.parse(fromUtf8(plaintext, 'wrapped'));
  } catch (err) {
    if (err instanceof CryptoError) throw err;
    throw new CryptoError('bad_input', 'wrapped value is not valid JSON');
  } finally {
    wipe(plaintext);
  }
}
