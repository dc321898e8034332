// Invite tokens for registration by invitation: 32 random bytes handed to the invitee once, only their SHA-256
// kept by the store until they expire.
import { createHash, randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';

export interface InviteToken {
  /** base64url; shown once, never stored. */
  token: string;
  expiresAt: number;
}

export function hashInviteToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Makes and stores one invite token valid for `ttlSeconds` from `now`. */
export async function createInviteToken(
  store: Pick<Store, 'putInviteToken'>,
  options: { now: number; ttlSeconds: number },
): Promise<InviteToken> {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = options.now + options.ttlSeconds * 1000;
  await store.putInviteToken(hashInviteToken(token), expiresAt, options.now);
  return { token, expiresAt };
}
