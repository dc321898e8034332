// Identity keys: one Ed25519 key per account, with its X25519 form derived by libsodium's conversion.

import { constantTimeEqual, toBase64Url, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { ed25519ToX25519PublicKey, KEY_BYTES } from './keys.js';
import { randomBytes } from './random.js';
import { sodium } from './sodium.js';
import type { Identity } from './types.js';
import { bytesArg } from './validate.js';

/** A new identity from a fresh random seed. */
export function generateIdentity(): Identity {
  const seed = randomBytes(KEY_BYTES);
  try {
    return identityFromSeed(seed);
  } finally {
    wipe(seed);
  }
}

/** Rebuilds the identity from its 32-byte Ed25519 seed (deterministic). The seed is copied, not kept. */
export function identityFromSeed(seed: Uint8Array): Identity {
  bytesArg(seed, 'seed', KEY_BYTES);
  const lib = sodium();
  const kp = lib.crypto_sign_seed_keypair(seed);
  return {
    publicKey: kp.publicKey,
    signingKey: kp.privateKey,
    dhPublicKey: ed25519ToX25519PublicKey(kp.publicKey, 'identity public key'),
    dhPrivateKey: lib.crypto_sign_ed25519_sk_to_curve25519(kp.privateKey),
  };
}

/** The 32-byte seed an identity was made from (a copy; secret). */
export function identitySeed(identity: Identity): Uint8Array {
  return identity.signingKey.slice(0, KEY_BYTES);
}

/** Checks that `value` looks like an Identity (used on every public entry point that takes one). */
export function checkIdentity(value: unknown, name = 'identity'): Identity {
  if (typeof value !== 'object' || value === null) throw new CryptoError('bad_input', `${name} must be an Identity`);
  const id = value as Identity;
  bytesArg(id.publicKey, `${name}.publicKey`, KEY_BYTES);
  bytesArg(id.signingKey, `${name}.signingKey`, 64);
  bytesArg(id.dhPublicKey, `${name}.dhPublicKey`, KEY_BYTES);
  bytesArg(id.dhPrivateKey, `${name}.dhPrivateKey`, KEY_BYTES);
  if (!constantTimeEqual(id.signingKey.subarray(KEY_BYTES), id.publicKey)) {
    throw new CryptoError('bad_input', `${name}.signingKey does not belong to ${name}.publicKey`);
  }
  return id;
}

/** base64url of the Ed25519 identity public key. */
export function identityKeyToWire(value: Identity | Uint8Array): string {
  if (value instanceof Uint8Array) return toBase64Url(bytesArg(value, 'identityKey', KEY_BYTES));
  return toBase64Url(checkIdentity(value).publicKey);
}
