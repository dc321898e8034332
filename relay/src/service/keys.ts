// Checks on the public keys clients upload: Ed25519 signatures over signed prekeys, and degenerate keys.
import { createPublicKey, verify } from 'node:crypto';
import { RelayError } from '../errors.js';
import { KEM_PREKEY_LABEL, KEM_TYPE_MLKEM768, type KemPrekey, type SignedPrekey } from '../protocol.js';
import type { Bytes, KemPrekeyRecord, OneTimePrekeyRecord, SignedPrekeyRecord } from '../store/store.js';

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

const KEM_LABEL = Buffer.from(KEM_PREKEY_LABEL, 'utf8');
const KEM_SIGNED_PREFIX = Buffer.concat([Buffer.of(KEM_LABEL.length), KEM_LABEL, Buffer.of(KEM_TYPE_MLKEM768)]);

/**
 * Decodes KEM prekeys and checks each signature by the identity key over label ‖ KEM type ‖ last-resort flag ‖ u32
 * keyId ‖ public key (what the crypto library signs): a client cannot publish a key its identity did not sign.
 */
export function checkedKemPrekeys(identityKey: Bytes, keys: KemPrekey[], name: string): KemPrekeyRecord[] {
  return keys.map((k, i) => {
    const publicKey = fromBase64url(k.publicKey);
    const signature = fromBase64url(k.signature);
    const keyId = Buffer.alloc(4);
    keyId.writeUInt32BE(k.keyId);
    const signed = Buffer.concat([KEM_SIGNED_PREFIX, Buffer.of(k.lastResort ? 1 : 0), keyId, publicKey]);
    if (!verifyEd25519(identityKey, signed, signature)) {
      throw new RelayError('invalid_input', `${name}[${i}].signature does not verify with the identity key`);
    }
    return { keyId: k.keyId, lastResort: k.lastResort, publicKey, signature };
  });
}

/** The KEM parts of a prekey upload (sign-up or PUT), checked. */
export function checkedKemUpload(
  identityKey: Bytes,
  body: { kemLastResortPrekey?: KemPrekey | undefined; kemOneTimePrekeys?: KemPrekey[] | undefined },
): { kemLastResortPrekey?: KemPrekeyRecord; kemOneTimePrekeys?: KemPrekeyRecord[] } {
  const [lastResort] = body.kemLastResortPrekey
    ? checkedKemPrekeys(identityKey, [body.kemLastResortPrekey], 'kemLastResortPrekey')
    : [];
  const oneTime = body.kemOneTimePrekeys
    ? checkedKemPrekeys(identityKey, body.kemOneTimePrekeys, 'kemOneTimePrekeys')
    : undefined;
  return {
    ...(lastResort ? { kemLastResortPrekey: lastResort } : {}),
    ...(oneTime ? { kemOneTimePrekeys: oneTime } : {}),
  };
}

export function decodedOneTimePrekeys(keys: { keyId: number; publicKey: string }[]): OneTimePrekeyRecord[] {
  return keys.map((k, i) => ({
    keyId: k.keyId,
    publicKey: publicKeyFrom(k.publicKey, `oneTimePrekeys[${i}].publicKey`),
  }));
}
