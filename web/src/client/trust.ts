// Trust: safety numbers, marking a contact verified, accepting a contact's changed identity key — and keeping that
// verification state in the relay's key backup (sealed with the wrap key), so a new device of the account starts
// with the same verified contacts.
//
// Backup merge rule (several devices write the same backup): an entry in the relay's backup stays unless this device
// holds a different key for that contact (the user accepted a change here); every contact verified here is added.
// Entries whose key this device also holds mark the contact verified here too.

import type { ContactVerification } from '@weconnect/crypto';
import type { EngineContext } from './context';
import { ClientError, describeError } from './errors';
import { backupAnswerSchema, wrapKeySchema, type Contact } from './schemas';
import { WriteBatch } from './store';
import type { SafetyNumberView } from './types';

export class Trust {
  readonly #ctx: EngineContext;
  #syncing: Promise<void> | null = null;
  #syncAgain = false;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  async safetyNumber(conv: string): Promise<SafetyNumberView> {
    const ctx = this.#ctx;
    const contact = await ctx.sessions.contact(conv);
    const sn = ctx.c.safetyNumber({
      localUserId: ctx.me.userId,
      localIdentityKey: ctx.keys.identity.publicKey,
      peerUserId: conv,
      peerIdentityKey: contact.identityKey,
    });
    return {
      digits: sn.digits,
      groups: [...sn.groups],
      qr: sn.qr,
      identityKey: contact.identityKey,
      username: contact.username,
    };
  }

  async markVerified(conv: string, identityKey: string): Promise<void> {
    this.#ctx.setTrust(await this.#ctx.sessions.markVerified(conv, identityKey));
    void this.syncBackup();
  }

  async acceptIdentityChange(conv: string): Promise<void> {
    const ctx = this.#ctx;
    const contact = await ctx.queue.run(conv, async () => {
      const batch = new WriteBatch();
      const next = await ctx.sessions.acceptIdentityChange(conv, batch);
      await ctx.store.commit(batch);
      return next;
    });
    if (contact) ctx.setTrust(contact);
    void this.syncBackup();
  }

  /**
   * Merges this device's verification state with the relay's key backup and writes it back when it changed. Runs on
   * every connect and after each change (one at a time); offline, the next connect does it. Never throws.
   */
  syncBackup(): Promise<void> {
    if (this.#syncing) {
      this.#syncAgain = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      do {
        this.#syncAgain = false;
        await this.#syncOnce();
      } while (this.#syncAgain);
    })()
      .catch((e: unknown) => {
        if (!(e instanceof ClientError && e.code === 'relay_unreachable')) {
          console.warn('the key backup was not updated:', describeError(e));
        }
      })
      .finally(() => {
        this.#syncing = null;
      });
    return this.#syncing;
  }

  async #syncOnce(): Promise<void> {
    const ctx = this.#ctx;
    const c = ctx.c;
    // Absent only when this profile was resumed through "keep unlocked" since before the key was kept: the next
    // unlock with the password stores it.
    const stored = await ctx.store.read('secrets', 'wrap-key', wrapKeySchema);
    if (!stored) return;
    const wrapKey = stored.key;
    try {
      let remote: readonly ContactVerification[] | null = null;
      try {
        const answer = await ctx.api.call('GET', '/api/backup', backupAnswerSchema);
        const opened = c.openBackup(wrapKey, c.fromBase64Url(answer.backup));
        c.wipe(opened.identity.signingKey, opened.identity.dhPrivateKey);
        remote = opened.contacts;
      } catch (e) {
        if (!(e instanceof ClientError && e.code === 'not_found')) throw e;
      }
      const local = new Map<string, Contact>();
      for (const key of await ctx.store.keys('contacts', '')) {
        const contact = await ctx.store.contact(key);
        if (contact) local.set(contact.userId, contact);
      }
      const merged = new Map<string, ContactVerification>();
      for (const entry of remote ?? []) {
        const here = local.get(entry.userId);
        if (entry.verified && (!here || here.identityKey === entry.identityKey)) merged.set(entry.userId, entry);
      }
      for (const contact of local.values()) {
        if (contact.verified) {
          merged.set(contact.userId, { userId: contact.userId, identityKey: contact.identityKey, verified: true });
        }
      }
      // Verified on another device of ours, for the same key: verified here too.
      for (const entry of merged.values()) {
        const here = local.get(entry.userId);
        if (!here || here.verified || here.pendingIdentityKey !== undefined) continue;
        if (here.identityKey !== entry.identityKey) continue;
        const next: Contact = {
          userId: here.userId,
          username: here.username,
          identityKey: here.identityKey,
          verified: true,
        };
        await ctx.store.write('contacts', here.userId, next);
        ctx.setTrust(next);
      }
      const contacts = [...merged.values()].sort((a, b) => (a.userId < b.userId ? -1 : 1));
      if (remote !== null && sameEntries(remote, contacts)) return;
      const sealed = c.sealBackup(wrapKey, { identity: ctx.keys.identity, contacts });
      await ctx.api.call('PUT', '/api/backup', null, { backup: c.toBase64Url(sealed) });
    } finally {
      c.wipe(wrapKey);
    }
  }
}

function sameEntries(a: readonly ContactVerification[], b: readonly ContactVerification[]): boolean {
  const key = (list: readonly ContactVerification[]) =>
    JSON.stringify(
      [...list]
        .filter((e) => e.verified)
        .map((e) => [e.userId, e.identityKey])
        .sort(),
    );
  return key(a) === key(b);
}
