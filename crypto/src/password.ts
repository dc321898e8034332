// Passwords never leave the browser: Argon2id → master key → crypto_kdf split into auth key and wrap key;
// the wrap key seals the key backup and the private material kept in IndexedDB.

import { concat, fromBase64Url, fromUtf8, toBase64Url, utf8, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { labelPrefix, LABELS } from './kdf.js';
import { KEY_BYTES } from './keys.js';
import { NONCE_BYTES, TAG_BYTES } from './ratchet.js';
import { randomBytes } from './random.js';
import { deserializeIdentity, serializeIdentity } from './serialize.js';
import { sodium } from './sodium.js';
import type { ContactVerification, KdfParams, KeyBackup, PasswordKeys } from './types.js';
import { arrayArg, booleanArg, bytesArg, fail, idArg, objectArg, versionArg } from './validate.js';
import { padPlaintext, unpadPlaintext } from './envelope.js';

export const KDF_PARAMS = { opslimit: 3, memlimit: 64 * 1024 * 1024 } as const;
export const SALT_BYTES = 16;
/** Upper bounds on parameters a relay may announce: a later version may raise the cost, not to absurd levels. */
const MAX_OPSLIMIT = 20;
const MAX_MEMLIMIT = 1024 * 1024 * 1024;
/** crypto_kdf context (8 bytes) and subkey ids of the password split. */
const KDF_CONTEXT = 'WCpasswd';
const AUTH_SUBKEY = 1;
const WRAP_SUBKEY = 2;
const SEALED_VERSION = 1;
/** The relay keeps at most 64 KiB of backup. */
export const MAX_BACKUP_BYTES = 64 * 1024;
const MAX_CONTACTS = 400;

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
  if (!Number.isInteger(opslimit) || opslimit < KDF_PARAMS.opslimit || opslimit > MAX_OPSLIMIT) {
    fail(`params.opslimit must be an integer from ${KDF_PARAMS.opslimit} to ${MAX_OPSLIMIT}`);
  }
  if (!Number.isInteger(memlimit) || memlimit < KDF_PARAMS.memlimit || memlimit > MAX_MEMLIMIT) {
    fail(`params.memlimit must be an integer from ${KDF_PARAMS.memlimit} to ${MAX_MEMLIMIT}`);
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

export function sealBackup(wrapKey: Uint8Array, backup: KeyBackup): Uint8Array {
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

export function openBackup(wrapKey: Uint8Array, sealed: Uint8Array): KeyBackup {
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
