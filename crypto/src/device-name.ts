// Device names sealed for the account's own devices (issue #14): the relay stores them but must not read them.
// The key is derived from the account's backup key (which every device of the account holds and the relay never
// does) with its own label; the name is bound to the user and device ids and padded to a fixed size.

import { concat, fromUtf8, lp8, utf8, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { labeledHash, labelPrefix } from './kdf.js';
import { KEY_BYTES } from './keys.js';
import { randomBytes } from './random.js';
import { NONCE_BYTES, TAG_BYTES } from './ratchet.js';
import { sodium } from './sodium.js';
import { bytesArg, fail, idArg } from './validate.js';

const KEY_LABEL = 'WeConnect/device-name-key/v1';
const AD_LABEL = 'WeConnect/device-name/v1';
const VERSION = 1;
/** Longest name in UTF-8 bytes; every name is padded to this plus its length byte. */
export const MAX_DEVICE_NAME_BYTES = 64;
const PADDED = 1 + MAX_DEVICE_NAME_BYTES;
/** Size of every sealed name: version, nonce, padded name, tag (106 bytes). */
export const SEALED_DEVICE_NAME_BYTES = 1 + NONCE_BYTES + PADDED + TAG_BYTES;

function nameKey(backupKey: Uint8Array): Uint8Array {
  return labeledHash(KEY_BYTES, bytesArg(backupKey, 'backupKey', KEY_BYTES), KEY_LABEL);
}

function associatedData(userId: string, deviceId: string): Uint8Array {
  return concat(labelPrefix(AD_LABEL), Uint8Array.of(VERSION), lp8(userId, 'userId'), lp8(deviceId, 'deviceId'));
}

/** Seals a device name (1..64 UTF-8 bytes after trimming) for the account's devices. */
export function sealDeviceName(backupKey: Uint8Array, userId: string, deviceId: string, name: string): Uint8Array {
  idArg(userId, 'userId');
  idArg(deviceId, 'deviceId');
  if (typeof name !== 'string') fail('name must be a string');
  const raw = utf8(name.trim());
  if (raw.length === 0 || raw.length > MAX_DEVICE_NAME_BYTES) {
    fail(`name must be 1 to ${MAX_DEVICE_NAME_BYTES} UTF-8 bytes`);
  }
  const padded = new Uint8Array(PADDED);
  padded[0] = raw.length;
  padded.set(raw, 1);
  const key = nameKey(backupKey);
  const nonce = randomBytes(NONCE_BYTES);
  try {
    const ct = sodium().crypto_aead_xchacha20poly1305_ietf_encrypt(
      padded,
      associatedData(userId, deviceId),
      null,
      nonce,
      key,
    );
    return concat(Uint8Array.of(VERSION), nonce, ct);
  } finally {
    wipe(key, padded, raw);
  }
}

/** Opens a sealed device name; `decrypt_failed` for another account's key, another device id or tampering. */
export function openDeviceName(backupKey: Uint8Array, userId: string, deviceId: string, sealed: Uint8Array): string {
  idArg(userId, 'userId');
  idArg(deviceId, 'deviceId');
  bytesArg(sealed, 'sealed');
  if (sealed.length !== SEALED_DEVICE_NAME_BYTES)
    throw new CryptoError('decrypt_failed', 'sealed name has the wrong size');
  if (sealed[0] !== VERSION) throw new CryptoError('unsupported_version', `device name version ${sealed[0]}`);
  const key = nameKey(backupKey);
  let padded: Uint8Array;
  try {
    padded = sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      sealed.subarray(1 + NONCE_BYTES),
      associatedData(userId, deviceId),
      sealed.subarray(1, 1 + NONCE_BYTES),
      key,
    );
  } catch {
    throw new CryptoError('decrypt_failed', 'the device name does not open with this key');
  } finally {
    wipe(key);
  }
  const length = padded[0] ?? 0;
  if (length === 0 || length > MAX_DEVICE_NAME_BYTES) throw new CryptoError('decrypt_failed', 'bad device name length');
  return fromUtf8(padded.subarray(1, 1 + length), 'name');
}
