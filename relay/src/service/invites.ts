// Invite tokens for REGISTRATION=invite: an operator makes one (the admin command calls createInvite), hands the
// token to one person, and their sign-up spends it. Only the token's SHA-256 is stored.
import { createHash, randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';
import { fromBase64url } from './keys.js';

/** How long an invite is valid by default. */
export const INVITE_TTL_SECONDS = 7 * 24 * 3600;

/** The stored form of an invite token (the token itself is 32 random bytes as base64url). */
export function inviteHash(token: string): Buffer {
  return createHash('sha256').update(fromBase64url(token)).digest();
}

/** Makes and stores an invite; answers its token (shown once: the relay keeps only its hash) and expiry. */
export async function createInvite(
  store: Store,
  options: { now: number; ttlSeconds?: number },
): Promise<{ token: string; expiresAt: number }> {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = options.now + (options.ttlSeconds ?? INVITE_TTL_SECONDS) * 1000;
  await store.putInvite(inviteHash(token), expiresAt);
  return { token, expiresAt };
}
