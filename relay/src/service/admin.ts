// What an operator does to accounts (the admin tool, and the HTTP routes that reuse it): list, deactivate, delete,
// revoke sessions, remove a device, count. Each takes effect in the store at once; a running relay drops the
// affected sockets itself when it is told (`onRevoked`), and otherwise when their access token expires.
import type { AccountSummary, Store, StoreCounts } from '../store/store.js';

/**
 * Erases an account and everything of it (devices, keys, prekeys, sessions, backup, group memberships, mailboxes,
 * idempotency records). The one path for every deletion: operator's tool and user-facing deletion alike.
 * Returns the session families that ended with it (their sockets should be dropped), or null when no such user.
 */
export async function deleteAccount(store: Store, userId: string): Promise<string[] | null> {
  if (!(await store.getUser(userId))) return null;
  const families = await store.revokeUserSessions(userId);
  return (await store.deleteUser(userId)) ? families : null;
}

export class AdminService {
  constructor(
    private readonly store: Store,
    /** Told which session families ended (e.g. to drop their sockets on a running relay). */
    private readonly onRevoked: (familyIds: string[]) => void = () => undefined,
  ) {}

  /** The account by username (any case) or user id. */
  async resolve(who: string): Promise<{ userId: string; username: string } | null> {
    const byName = await this.store.findUserByUsername(who.toLowerCase());
    if (byName) return byName;
    return this.store.getUser(who);
  }

  listAccounts(after = '', limit = 100): Promise<AccountSummary[]> {
    return this.store.listAccounts(after, limit);
  }

  counts(): Promise<StoreCounts> {
    return this.store.counts();
  }

  /** Deactivates (no sign-in; every session revoked) or reactivates an account. */
  async setDeactivated(userId: string, deactivated: boolean): Promise<boolean> {
    if (!(await this.store.setUserDisabled(userId, deactivated))) return false;
    if (deactivated) this.onRevoked(await this.store.revokeUserSessions(userId));
    return true;
  }

  async revokeSessions(userId: string): Promise<number> {
    const families = await this.store.revokeUserSessions(userId);
    this.onRevoked(families);
    return families.length;
  }

  async removeDevice(deviceId: string): Promise<boolean> {
    const families = await this.store.deleteDevice(deviceId);
    if (families === null) return false;
    this.onRevoked(families);
    return true;
  }

  async deleteAccount(userId: string): Promise<boolean> {
    const families = await deleteAccount(this.store, userId);
    if (families === null) return false;
    this.onRevoked(families);
    return true;
  }
}
