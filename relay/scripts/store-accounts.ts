// Accounts for the scripts that drive a store directly (no relay, no sign-up): random ids and keys, and a password
// hash that is only a placeholder (nobody signs in).
import { randomBytes } from 'node:crypto';
import type { NewAccount } from '../src/store/store.js';

export const randomId = (): string => randomBytes(16).toString('base64url');

export const scriptAccount = (username: string): NewAccount => ({
  userId: randomId(),
  username,
  salt: randomBytes(16),
  authHash: '$2b$04$notarealhashnotarealhashnotarealhashnotarealhashnot',
  identityKey: randomBytes(32),
  deviceId: randomId(),
  signedPrekey: { keyId: 1, publicKey: randomBytes(32), signature: randomBytes(64) },
  oneTimePrekeys: [],
  session: { familyId: randomId(), refresh: { tokenHash: randomBytes(32), expiresAt: Date.now() + 86_400_000 } },
  now: Date.now(),
});
