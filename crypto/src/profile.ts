// Profiles (Signal's profile-key model): an account's display name and picture, sealed with its 32-byte profile key
// and bound to its user id. The relay stores only the sealed bytes; contacts get the key over pairwise sessions.
//
// Plaintext layout (version 1): u16 name length ‖ name (UTF-8, zero-filled to NAME_FIELD_BYTES, so the length of
// the sealed profile never tells the name's length) ‖ u32 picture length ‖ picture ‖ ISO/IEC 7816-4 padding to
// a multiple of PAD_BLOCK_BYTES (the picture's size shows only to the nearest 4 KiB).
// Sealed: version ‖ nonce ‖ XChaCha20-Poly1305(plaintext, AD = label ‖ version ‖ userId).

import { concat, fromUtf8, readU32be, u32be, utf8 } from './bytes.js';
import { CryptoError } from './errors.js';
import { labeledHash, labelPrefix } from './kdf.js';
import { KEY_BYTES } from './keys.js';
import { NONCE_BYTES, TAG_BYTES } from './ratchet.js';
import { randomBytes } from './random.js';
import { sodium } from './sodium.js';
import { bytesArg, fail, idArg } from './validate.js';

const PROFILE_VERSION = 1;
const PROFILE_LABEL = 'WeConnect/profile/v1';
const PROFILE_KEY_LABEL = 'WeConnect/profile-key/v1';
/** A display name of at most 64 characters is at most 256 bytes of UTF-8. */
export const PROFILE_NAME_MAX_CHARS = 64;
const NAME_FIELD_BYTES = 256;
/** The largest picture a profile carries (256 px JPEG/WebP fits well inside). */
export const PROFILE_PICTURE_MAX_BYTES = 64 * 1024;
const PAD_BLOCK_BYTES = 4096;
const HEADER_BYTES = 2 + NAME_FIELD_BYTES + 4;
/** The largest sealed profile: version ‖ nonce ‖ padded plaintext ‖ tag. */
export const SEALED_PROFILE_MAX_BYTES =
  1 +
  NONCE_BYTES +
  Math.ceil((HEADER_BYTES + PROFILE_PICTURE_MAX_BYTES + 1) / PAD_BLOCK_BYTES) * PAD_BLOCK_BYTES +
  TAG_BYTES;

export interface Profile {
  /** 0–64 characters; empty means "no name set" (show the username). */
  name: string;
  /** The encoded picture, or null for none (show the letter avatar). */
  picture: Uint8Array | null;
}

/**
 * The account's profile key, derived from its backup key (BLAKE2b, own label): every device of the account that
 * holds the backup key has it, and a contact that holds it learns nothing of the backup key.
 */
export function deriveProfileKey(backupKey: Uint8Array): Uint8Array {
  bytesArg(backupKey, 'backupKey', KEY_BYTES);
  return labeledHash(KEY_BYTES, backupKey, PROFILE_KEY_LABEL);
}

function adOf(userId: string): Uint8Array {
  return concat(labelPrefix(PROFILE_LABEL), Uint8Array.of(PROFILE_VERSION), utf8(userId));
}

export function sealProfile(profileKey: Uint8Array, userId: string, profile: Profile): Uint8Array {
  bytesArg(profileKey, 'profileKey', KEY_BYTES);
  idArg(userId, 'userId');
  if (typeof profile !== 'object' || profile === null) fail('profile must be an object');
  if (typeof profile.name !== 'string' || [...profile.name].length > PROFILE_NAME_MAX_CHARS) {
    fail(`profile.name must be a string of at most ${PROFILE_NAME_MAX_CHARS} characters`);
  }
  const name = utf8(profile.name);
  if (name.length > NAME_FIELD_BYTES) fail('profile.name is too long');
  const picture = profile.picture === null ? new Uint8Array(0) : bytesArg(profile.picture, 'profile.picture');
  if (picture.length > PROFILE_PICTURE_MAX_BYTES) {
    fail(`profile.picture must be at most ${PROFILE_PICTURE_MAX_BYTES} bytes`);
  }
  const body = HEADER_BYTES + picture.length;
  const plaintext = new Uint8Array(Math.ceil((body + 1) / PAD_BLOCK_BYTES) * PAD_BLOCK_BYTES);
  plaintext[0] = name.length >> 8;
  plaintext[1] = name.length & 0xff;
  plaintext.set(name, 2);
  plaintext.set(u32be(picture.length), 2 + NAME_FIELD_BYTES);
  plaintext.set(picture, HEADER_BYTES);
  plaintext[body] = 0x80;
  const nonce = randomBytes(NONCE_BYTES);
  const ct = sodium().crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, adOf(userId), null, nonce, profileKey);
  return concat(Uint8Array.of(PROFILE_VERSION), nonce, ct);
}

/**
 * Opens and strictly parses a sealed profile of `userId`. A wrong key, another user's profile, tampering or a
 * malformed plaintext throws `decrypt_failed`; a version this library does not know, `unsupported_version`.
 */
export function openProfile(profileKey: Uint8Array, userId: string, sealed: Uint8Array): Profile {
  bytesArg(profileKey, 'profileKey', KEY_BYTES);
  idArg(userId, 'userId');
  bytesArg(sealed, 'sealed');
  if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed.length > SEALED_PROFILE_MAX_BYTES) {
    throw new CryptoError('decrypt_failed', 'sealed profile has an impossible length');
  }
  if (sealed[0] !== PROFILE_VERSION) {
    throw new CryptoError('unsupported_version', `profile version ${sealed[0]} is not supported`);
  }
  let plaintext: Uint8Array;
  try {
    plaintext = sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      sealed.subarray(1 + NONCE_BYTES),
      adOf(userId),
      sealed.subarray(1, 1 + NONCE_BYTES),
      profileKey,
    );
  } catch {
    throw new CryptoError('decrypt_failed', 'sealed profile failed authentication (wrong key or tampered)');
  }
  const malformed = () => new CryptoError('decrypt_failed', 'the profile inside is malformed');
  if (plaintext.length < HEADER_BYTES + 1 || plaintext.length % PAD_BLOCK_BYTES !== 0) throw malformed();
  const nameLength = ((plaintext[0] ?? 0) << 8) | (plaintext[1] ?? 0);
  const pictureLength = readU32be(plaintext, 2 + NAME_FIELD_BYTES);
  if (nameLength > NAME_FIELD_BYTES || pictureLength > PROFILE_PICTURE_MAX_BYTES) throw malformed();
  const end = HEADER_BYTES + pictureLength;
  if (end >= plaintext.length || plaintext[end] !== 0x80) throw malformed();
  if (plaintext.subarray(end + 1).some((b) => b !== 0)) throw malformed();
  if (plaintext.subarray(2 + nameLength, 2 + NAME_FIELD_BYTES).some((b) => b !== 0)) throw malformed();
  let name: string;
  try {
    name = fromUtf8(plaintext.subarray(2, 2 + nameLength), 'profile name');
  } catch {
    throw malformed();
  }
  if ([...name].length > PROFILE_NAME_MAX_CHARS) throw malformed();
  return { name, picture: pictureLength === 0 ? null : plaintext.slice(HEADER_BYTES, end) };
}
