// Curve25519 key handling: key pairs, validated X25519 public keys, checked DH, Ed25519 identity keys.

import { isAllZero, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { randomBytes } from './random.js';
import { sodium } from './sodium.js';
import type { KeyPair } from './types.js';

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const SIGNING_KEY_BYTES = 64;

const P = (1n << 255n) - 19n;

/**
 * u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519 and their non-canonical encodings
 * (the list libsodium's `has_small_order` rejects). X25519 ignores the top bit, so comparisons mask it.
 */
export const LOW_ORDER_U: readonly bigint[] = [
  0n,
  1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  P - 1n,
  P,
  P + 1n,
];

function littleEndian32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

const LOW_ORDER_BYTES = LOW_ORDER_U.map(littleEndian32);

/** True if `publicKey` (32 bytes) encodes a point of small order (all-zero included), top bit ignored. */
export function isLowOrderX25519(publicKey: Uint8Array): boolean {
  let found = 0;
  for (const bad of LOW_ORDER_BYTES) {
    let diff = (publicKey[31]! ^ bad[31]!) & 0x7f;
    for (let i = 0; i < 31; i++) diff |= publicKey[i]! ^ bad[i]!;
    found |= diff === 0 ? 1 : 0;
  }
  return found === 1;
}

/** Throws `bad_input` on a wrong type or length and `invalid_key` on an all-zero or low-order key. */
export function checkX25519PublicKey(publicKey: unknown, name: string): Uint8Array {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_BYTES) {
    throw new CryptoError('bad_input', `${name} must be a 32-byte X25519 public key`);
  }
  if (isLowOrderX25519(publicKey)) throw new CryptoError('invalid_key', `${name} is all-zero or of low order`);
  return publicKey;
}

/** A fresh X25519 key pair (random from one getRandomValues call). */
export function generateKeyPair(): KeyPair {
  const privateKey = randomBytes(KEY_BYTES);
  return { publicKey: sodium().crypto_scalarmult_base(privateKey), privateKey };
}

/** X25519 with a validated peer key; an all-zero output is fatal (`invalid_key`). Wipe the result after use. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array, name: string): Uint8Array {
  checkX25519PublicKey(publicKey, name);
  let out: Uint8Array;
  try {
    out = sodium().crypto_scalarmult(privateKey, publicKey);
  } catch {
    throw new CryptoError('invalid_key', `${name} gives an all-zero Diffie-Hellman output`);
  }
  if (isAllZero(out)) {
    wipe(out);
    throw new CryptoError('invalid_key', `${name} gives an all-zero Diffie-Hellman output`);
  }
  return out;
}

/** Validates an Ed25519 public key (canonical, on the curve, not of small order) and returns its X25519 form. */
export function ed25519ToX25519PublicKey(publicKey: unknown, name: string): Uint8Array {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_BYTES) {
    throw new CryptoError('bad_input', `${name} must be a 32-byte Ed25519 public key`);
  }
  const lib = sodium();
  if (!lib.crypto_core_ed25519_is_valid_point(publicKey)) {
    throw new CryptoError('invalid_key', `${name} is not a valid Ed25519 public key`);
  }
  let x: Uint8Array;
  try {
    x = lib.crypto_sign_ed25519_pk_to_curve25519(publicKey);
  } catch {
    throw new CryptoError('invalid_key', `${name} is not a valid Ed25519 public key`);
  }
  return checkX25519PublicKey(x, name);
}

/** An Ed25519 key pair from a fresh random seed. */
export function generateSigningKeyPair(): { publicKey: Uint8Array; privateKey: Uint8Array } {
  const seed = randomBytes(32);
  const kp = sodium().crypto_sign_seed_keypair(seed);
  wipe(seed);
  return { publicKey: kp.publicKey, privateKey: kp.privateKey };
}

/** Ed25519 verification that throws `invalid_signature`. */
export function verifySignature(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, what: string): void {
  let ok = false;
  try {
    ok = sodium().crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    ok = false;
  }
  if (!ok) throw new CryptoError('invalid_signature', `${what} has an invalid signature`);
}
