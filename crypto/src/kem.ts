// KEM prekeys for PQXDH: ML-KEM-768 (FIPS 203) key pairs from libsodium, signed by the identity key over a
// type-prefixed encoding that binds the key id and whether the key is the last-resort one.

import { concat, toBase64Url, u32be } from './bytes.js';
import { CryptoError } from './errors.js';
import { checkIdentity } from './identity.js';
import { labelPrefix, LABELS } from './kdf.js';
import { KEY_BYTES, SIGNATURE_BYTES, verifySignature } from './keys.js';
import { sodium } from './sodium.js';
import type { Identity, KemPrekey, VerifiedKemPrekey, WireKemPrekey } from './types.js';
import { booleanArg, bytesArg, fail, keyArg, MAX_U32, objectArg, u32Arg } from './validate.js';

/** The KEM's type byte in signed encodings (Signal's EncodeKEM does the same): 1 = ML-KEM-768. */
export const KEM_TYPE_MLKEM768 = 1;
export const KEM_PUBLIC_KEY_BYTES = 1184;
export const KEM_SECRET_KEY_BYTES = 2400;
export const KEM_CIPHERTEXT_BYTES = 1088;
export const KEM_SHARED_SECRET_BYTES = 32;

/** What the identity key signs: label ‖ KEM type ‖ last-resort flag ‖ key id ‖ public key. */
function signedData(keyId: number, lastResort: boolean, publicKey: Uint8Array): Uint8Array {
  return concat(
    labelPrefix(LABELS.kemPrekey),
    Uint8Array.of(KEM_TYPE_MLKEM768, lastResort ? 1 : 0),
    u32be(keyId),
    publicKey,
  );
}

/** A batch of signed ML-KEM-768 prekeys: one-time ones, or (count 1, `lastResort`) the last-resort key. */
export function generateKemPrekeys(
  identity: Identity,
  firstKeyId: number,
  count: number,
  lastResort = false,
): KemPrekey[] {
  checkIdentity(identity);
  u32Arg(firstKeyId, 'firstKeyId');
  booleanArg(lastResort, 'lastResort');
  if (!Number.isInteger(count) || count < 0 || count > 1000) fail('count must be an integer from 0 to 1000');
  if (lastResort && count !== 1) fail('a last-resort KEM prekey is generated alone (count 1)');
  if (firstKeyId + count - 1 > MAX_U32) fail('firstKeyId + count overflows 32-bit key ids');
  const s = sodium();
  const out: KemPrekey[] = [];
  for (let i = 0; i < count; i++) {
    const keyId = firstKeyId + i;
    const kp = s.crypto_kem_mlkem768_keypair();
    const signature = s.crypto_sign_detached(signedData(keyId, lastResort, kp.publicKey), identity.signingKey);
    out.push({ keyId, lastResort, publicKey: kp.publicKey, secretKey: kp.privateKey, signature });
  }
  return out;
}

export function kemPrekeyToWire(k: KemPrekey): WireKemPrekey {
  return {
    keyId: k.keyId,
    lastResort: k.lastResort,
    publicKey: toBase64Url(k.publicKey),
    signature: toBase64Url(k.signature),
  };
}

/**
 * Parses a KEM prekey from the relay and verifies its signature by `identityKey` (Ed25519). A relay that relabels a
 * last-resort key as one-time (or the reverse), changes its id or swaps the key fails here (`invalid_signature`).
 */
export function verifyKemPrekey(
  identityKey: Uint8Array | string,
  value: unknown,
  name = 'kemPrekey',
): VerifiedKemPrekey {
  const ik = keyArg(identityKey, 'identityKey', KEY_BYTES);
  const o = objectArg(value, name, ['keyId', 'lastResort', 'publicKey', 'signature']);
  const keyId = u32Arg(o['keyId'], `${name}.keyId`);
  const lastResort = booleanArg(o['lastResort'], `${name}.lastResort`);
  const publicKey = keyArg(o['publicKey'], `${name}.publicKey`, KEM_PUBLIC_KEY_BYTES);
  const signature = keyArg(o['signature'], `${name}.signature`, SIGNATURE_BYTES);
  verifySignature(signature, signedData(keyId, lastResort, publicKey), ik, name);
  return { keyId, lastResort, publicKey };
}

/** Checks the shape of a KemPrekey (argument validation). */
export function checkKemPrekey(value: unknown, name: string): KemPrekey {
  if (typeof value !== 'object' || value === null) throw new CryptoError('bad_input', `${name} must be a KemPrekey`);
  const k = value as KemPrekey;
  u32Arg(k.keyId, `${name}.keyId`);
  booleanArg(k.lastResort, `${name}.lastResort`);
  bytesArg(k.publicKey, `${name}.publicKey`, KEM_PUBLIC_KEY_BYTES);
  bytesArg(k.secretKey, `${name}.secretKey`, KEM_SECRET_KEY_BYTES);
  return k;
}

/** Encapsulates to a KEM public key: the ciphertext for the peer and the 32-byte shared secret (wipe it). */
export function kemEncapsulate(publicKey: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array } {
  bytesArg(publicKey, 'kem public key', KEM_PUBLIC_KEY_BYTES);
  let out;
  try {
    out = sodium().crypto_kem_mlkem768_enc(publicKey);
  } catch {
    // FIPS 203's encapsulation key check (every coefficient below q) failed: not an ML-KEM-768 key.
    throw new CryptoError('invalid_key', 'the KEM public key is not a valid ML-KEM-768 key');
  }
  return { ciphertext: out.ciphertext, sharedSecret: out.sharedSecret };
}

/**
 * Decapsulates. ML-KEM never fails on a wrong ciphertext (implicit rejection: it returns an unrelated secret), so a
 * tampered ciphertext shows as a failed decryption of the first message, never as a different error.
 */
export function kemDecapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array {
  bytesArg(ciphertext, 'kem ciphertext', KEM_CIPHERTEXT_BYTES);
  bytesArg(secretKey, 'kem secret key', KEM_SECRET_KEY_BYTES);
  return sodium().crypto_kem_mlkem768_dec(ciphertext, secretKey);
}
