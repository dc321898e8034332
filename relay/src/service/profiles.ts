// Profiles: each account's sealed profile (display name and picture under its profile key). The relay checks only
// the size; it cannot open what it stores, and serves it to any signed-in user (useless without the key).
import { RelayError } from '../errors.js';
import { PROFILE_BYTES } from '../protocol.js';
import type { ProfileAnswer } from '../protocol.js';
import type { Store } from '../store/store.js';
import { fromBase64url, toBase64url } from './keys.js';
import type { AccessClaims } from './tokens.js';

export class ProfileService {
  constructor(private readonly store: Store) {}

  /** Replaces the caller's own profile: the claims name the account, so no one can write another's. */
  async put(auth: AccessClaims, sealed: string): Promise<void> {
    const bytes = fromBase64url(sealed);
    if (bytes.length > PROFILE_BYTES) {
      throw new RelayError('payload_too_large', `a profile is at most ${PROFILE_BYTES} bytes`);
    }
    await this.store.putProfile(auth.userId, bytes);
  }

  async get(userId: string): Promise<ProfileAnswer> {
    const found = await this.store.getProfile(userId);
    if (!found) throw new RelayError('not_found', 'no such user');
    if (!found.profile) throw new RelayError('not_found', 'this user has no profile');
    return { userId, profile: toBase64url(found.profile) };
  }
}
