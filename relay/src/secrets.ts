// The relay's one long-lived secret (JWT signing, and the key of the fake KDF salts): from JWT_SECRET, or
// generated once into DATA_DIR/jwt-secret, readable by the relay's user only.
import { createHmac, randomBytes } from 'node:crypto';
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
