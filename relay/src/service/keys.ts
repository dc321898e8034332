// Checks on the public keys clients upload: Ed25519 signatures over signed prekeys, and degenerate keys.
import { createPublicKey, verify } from 'node:crypto';
import { RelayError } from '../errors.js';
import type { SignedPrekey } from '../protocol.js';
import type { Bytes, OneTimePrekeyRecord, SignedPrekeyRecord } from '../store/store.js';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Decodes a base64url string that the protocol schema already checked. */
export function fromBase64url(value: string): Buffer {
  return Buffer.from(value, 'base64url');
}

export function toBase64url(bytes: Bytes): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

export function isAllZero(bytes: Bytes): boolean {
  return bytes.every((b) => b === 0);
}

/** True when `signature` is a valid Ed25519 signature by `publicKey` (32 raw bytes) over `message`. */
export function verifyEd25519(publicKey: Bytes, message: Bytes, signature: Bytes): boolean {
  try {
    const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** Decodes a public key and rejects the all-zero key. */
export function publicKeyFrom(value: string, name: string): Buffer {
  const key = fromBase64url(value);
  if (isAllZero(key)) throw new RelayError('invalid_input', `${name} must not be all zeros`);
  return key;
}

/** Decodes a signed prekey and checks its signature by the identity key over the 32 public-key bytes. */
export function checkedSignedPrekey(identityKey: Bytes, prekey: SignedPrekey): SignedPrekeyRecord {
  const publicKey = publicKeyFrom(prekey.publicKey, 'signedPrekey.publicKey');
  const signature = fromBase64url(prekey.signature);
  if (!verifyEd25519(identityKey, publicKey, signature)) {
    throw new RelayError('invalid_input', 'signedPrekey.signature does not verify with the identity key');
  }
  return { keyId: prekey.keyId, publicKey, signature };
}

export function decodedOneTimePrekeys(keys: { keyId: number; publicKey: string }[]): OneTimePrekeyRecord[] {
  return keys.map((k, i) => ({
    keyId: k.keyId,
    publicKey: publicKeyFrom(k.publicKey, `oneTimePrekeys[${i}].publicKey`),
  }));
}
