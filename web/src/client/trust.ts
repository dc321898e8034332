// Trust: safety numbers, marking a contact verified, accepting a contact's changed identity key — and keeping that
// verification state in the relay's key backup (format 2: sealed with the account's backup key, bound to the user
// id, numbered by a revision), so a new device of the account starts with the same verified contacts.
//
// Rollback rule: this device remembers the highest revision it has seen on the relay or written there, and refuses
// (a notice, no write) a backup below it, a format-1 backup after it, a missing one after it, or one that does not
// open with this account's keys. A brand-new device has no memory and accepts what it is served.
//
// Backup merge rule (several devices write the same backup): an entry in the relay's backup stays unless this device
// holds a different key for that contact (the user accepted a change here); every contact verified here is added.
// Entries whose key this device also holds mark the contact verified here too.

import type { AccountBackup, ContactVerification } from '@weconnect/crypto';
import type { EngineContext } from './context';
import { ClientError, describeError } from './errors';
import { backupAnswerSchema } from '@weconnect/relay/protocol';
import { backupKeySchema, type BackupKeyRecord, type Contact } from './schemas';
import { WriteBatch } from './store';
import type { SafetyNumberView } from './types';

export class Trust {
  readonly #ctx: EngineContext;
  /**
   * The password's wrap key after an unlock with the password (or from a profile that stored it before): held in
   * memory only until the first sync the relay answers, to open the backup's key box or migrate a format-1 backup.
   */
  #wrapKey: Uint8Array | null;
  #syncing: Promise<void> | null = null;
  #syncAgain = false;

  constructor(ctx: EngineContext, wrapKey: Uint8Array | null = null) {
    this.#ctx = ctx;
    this.#wrapKey = wrapKey;
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

  /** Wipes a wrap key that no sync used (the engine closed before it reached the relay). */
  close(): void {
    this.#dropWrapKey();
  }

  /**
   * Merges this device's verification state with the relay's key backup and writes it back when it changed. Runs on
   * every connect and after each change (one at a time); offline, the next connect does it. Never throws: a backup
   * the relay should not have served (older than one seen here, or not this account's) becomes a notice.
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
        if (e instanceof ClientError && e.code === 'backup_rejected') this.#ctx.notice('error', e.message);
        else if (!(e instanceof ClientError && e.code === 'relay_unreachable')) {
          console.warn('the key backup was not updated:', describeError(e));
        }
      })
      .finally(() => {
        this.#syncing = null;
      });
    return this.#syncing;
  }

  #dropWrapKey(): void {
    this.#wrapKey?.fill(0);
    this.#wrapKey = null;
  }

  async #syncOnce(): Promise<void> {
    const ctx = this.#ctx;
    const c = ctx.c;
    const local = await ctx.store.read('secrets', 'backup-key', backupKeySchema);
    // Neither key: a profile resumed through "keep unlocked" since before the backup key existed; the next unlock
    // with the password brings the wrap key, and with it the backup key.
    if (!local && !this.#wrapKey) return;
    let blob: Uint8Array | null = null;
    try {
      blob = c.fromBase64Url((await ctx.api.call('GET', '/api/backup', backupAnswerSchema)).backup);
    } catch (e) {
      if (!(e instanceof ClientError && e.code === 'not_found')) throw e;
    }
    // The relay answered: whatever follows, the wrap key has done its one job (learn or make the backup key).
    const wrapKey = this.#wrapKey;
    this.#wrapKey = null;
    try {
      await this.#merge(local, blob, wrapKey);
    } finally {
      wrapKey?.fill(0);
    }
  }

  async #merge(local: BackupKeyRecord | null, blob: Uint8Array | null, wrapKey: Uint8Array | null): Promise<void> {
    const ctx = this.#ctx;
    const c = ctx.c;
    const seen = local?.revision ?? 0;
    if (!blob && seen > 0) {
      throw rejected(
        `The relay no longer serves the key backup this device has seen (revision ${seen}); it was not rewritten.`,
      );
    }
    const remote = blob ? this.#openRemote(blob, local, wrapKey) : null;
    if (remote === 'wait') return;
    let key = remote?.key ?? local?.key ?? null;
    let keyBox = remote?.keyBox ?? local?.keyBox ?? null;
    if (!key || !keyBox) {
      if (!wrapKey) return;
      // This account's first format-2 backup (a new account whose first upload failed, or a format-1 migration).
      key = c.generateBackupKey();
      keyBox = c.wrapBackupKey(wrapKey, ctx.me.userId, key);
    }

    const contacts = new Map<string, Contact>();
    for (const k of await ctx.store.keys('contacts', '')) {
      const contact = await ctx.store.contact(k);
      if (contact) contacts.set(contact.userId, contact);
    }
    const merged = new Map<string, ContactVerification>();
    for (const entry of remote?.contacts ?? []) {
      const here = contacts.get(entry.userId);
      if (entry.verified && (!here || here.identityKey === entry.identityKey)) merged.set(entry.userId, entry);
    }
    for (const contact of contacts.values()) {
      if (contact.verified) {
        merged.set(contact.userId, { userId: contact.userId, identityKey: contact.identityKey, verified: true });
      }
    }
    // Verified on another device of ours, for the same key: verified here too.
    for (const entry of merged.values()) {
      const here = contacts.get(entry.userId);
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
    const entries = [...merged.values()].sort((a, b) => (a.userId < b.userId ? -1 : 1));
    const revision = Math.max(seen, remote?.revision ?? 0);
    if (remote && !remote.legacy && sameEntries(remote.contacts, entries)) {
      if (!local || local.revision !== revision || local.key !== key) {
        await ctx.store.write('secrets', 'backup-key', { key, keyBox, revision });
      }
      return;
    }
    // Read, merge, write revision + 1; remembered only once the relay took it (else the next sync would refuse the
    // relay's current one as older).
    const sealed = c.sealAccountBackup(key, keyBox, {
      userId: ctx.me.userId,
      revision: revision + 1,
      identity: ctx.keys.identity,
      contacts: entries,
    });
    await ctx.api.call('PUT', '/api/backup', null, { backup: c.toBase64Url(sealed) });
    await ctx.store.write('secrets', 'backup-key', { key, keyBox, revision: revision + 1 });
  }

  /**
   * Opens the relay's backup with this device's backup key, or with the wrap key after an unlock with the password
   * (a new account key box, or a format-1 backup to migrate). 'wait': a format-1 backup and no wrap key to open it.
   */
  #openRemote(blob: Uint8Array, local: BackupKeyRecord | null, wrapKey: Uint8Array | null): RemoteBackup | 'wait' {
    const c = this.#ctx.c;
    const userId = this.#ctx.me.userId;
    const seen = local?.revision ?? 0;
    let format: 1 | 2;
    try {
      format = c.backupFormat(blob);
    } catch {
      throw rejected('The key backup on the relay is in a format this app does not know; it was not changed.');
    }
    if (format === 1) {
      // Format 1 carries no revision: it predates every format-2 backup, so after one it can only be a rollback.
      if (seen > 0) throw rollback('an old-format backup', seen);
      if (!wrapKey) return 'wait';
      let legacy;
      try {
        legacy = c.openLegacyBackup(wrapKey, blob);
      } catch {
        throw notOurs();
      }
      c.wipe(legacy.identity.signingKey, legacy.identity.dhPrivateKey);
      return { key: null, keyBox: null, revision: 0, contacts: legacy.contacts, legacy: true };
    }
    let opened: AccountBackup | null = null;
    let key: Uint8Array | null = null;
    if (local) {
      try {
        opened = c.openAccountBackup(local.key, userId, blob);
        key = local.key;
      } catch {
        opened = null;
      }
    }
    if (!opened && wrapKey) {
      try {
        key = c.unwrapBackupKey(wrapKey, userId, blob);
        opened = c.openAccountBackup(key, userId, blob);
      } catch {
        opened = null;
      }
    }
    if (!opened || !key) throw notOurs();
    c.wipe(opened.identity.signingKey, opened.identity.dhPrivateKey);
    if (opened.revision < seen) throw rollback(`revision ${opened.revision}`, seen);
    return { key, keyBox: c.backupKeyBox(blob), revision: opened.revision, contacts: opened.contacts, legacy: false };
  }
}

interface RemoteBackup {
  /** Null for format 1 (sealed under the wrap key; a backup key is made when migrating it). */
  key: Uint8Array | null;
  keyBox: Uint8Array | null;
  revision: number;
  contacts: readonly ContactVerification[];
  legacy: boolean;
}

function rejected(message: string): ClientError {
  return new ClientError('backup_rejected', message);
}

function rollback(what: string, seen: number): ClientError {
  return rejected(
    `The relay served an older key backup (${what}) than this device has already seen (revision ${seen}), as if ` +
      'to undo a verification. It was refused; nothing was changed.',
  );
}

function notOurs(): ClientError {
  return rejected(
    "The key backup on the relay does not open with this account's keys (another account's, or altered). " +
      'It was refused; nothing was changed.',
  );
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
