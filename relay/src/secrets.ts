// The relay's one long-lived secret (JWT signing, and the key of the fake KDF salts): from JWT_SECRET, or
// generated once into DATA_DIR/jwt-secret, readable by the relay's user only.
import { createHmac, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';

const MIN_LENGTH = 32;

/** Reads the secret file, creating it (mode 0600) with 32 random bytes when missing. */
export function loadOrCreateSecret(path: string): { secret: string; created: boolean; looseMode: boolean } {
  let created = false;
  try {
    writeFileSync(path, `${randomBytes(32).toString('base64url')}\n`, { flag: 'wx', mode: 0o600 });
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = readFileSync(path, 'utf8').trim();
  if (secret.length < MIN_LENGTH) throw new Error(`${path} must hold at least ${MIN_LENGTH} characters`);
  const looseMode = (statSync(path).mode & 0o077) !== 0;
  return { secret, created, looseMode };
}

/** A key for one purpose, derived from the relay secret, so no purpose ever reuses the JWT key itself. */
export function deriveKey(secret: string, purpose: string): Buffer {
  return createHmac('sha256', secret).update(`weconnect relay v1: ${purpose}`, 'utf8').digest();
}

/** DER prefix of an Ed25519 private key in PKCS#8; the 32-byte seed follows it. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The relay's key transparency signing key (Ed25519), derived from the relay secret: generated with it on first
 * start, the same on every node of a cluster (they share JWT_SECRET), and changed only when the secret is.
 */
export function transparencyKey(secret: string): { privateKey: KeyObject; publicKey: Buffer } {
  const seed = deriveKey(secret, 'key transparency signing key');
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  seed.fill(0);
  const publicKey = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(-32);
  return { privateKey, publicKey: Buffer.from(publicKey) };
}
