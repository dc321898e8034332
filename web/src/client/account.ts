// AccountControl: changing the password and deleting the account, the two things a user does to the account itself.
//
// A password change never leaves the user locked out, whichever step a crash or a closed tab stops:
//   1. (local) the vault's root is kept sealed under the account's backup key (meta.rootByBackup);
//   2. (relay, one atomic call) new salt, new auth key and the key backup whose key box is re-wrapped under the new
//      password replace the old ones together, after the current auth key is proved;
//   3. (local, one IndexedDB transaction) the account record takes the new salt and the root sealed under the new
//      password, and the backup-key record the new key box.
// Stopped before 2: nothing changed anywhere, the old password works. Stopped after 2: the relay knows only the new
// password; on this device the old password opens the data but the relay refuses it (the unlock screen says the
// password changed), and the new one opens it through step 1 (boot.ts, #unlockWithNewerPassword) and finishes 3.
// Other devices of the account stay signed in; at their next unlock the new password works the same way.

import type { TokenKeeper } from './api';
import { request } from './api';
import type { Crypto } from './crypto-loader';
import type { EngineDB } from './db';
import { ClientError } from './errors';
import type { DerivedKeys, KdfInput } from './kdf';
import { backupAnswerSchema, kdfAnswerSchema } from '@weconnect/relay/protocol';
import { accountMetaSchema, backupKeySchema, type AccountMeta } from './schemas';
import { WriteBatch, type LocalStore } from './store';
import { vaultOfRoot, rootFromPassword, sealRootForBackupKey, sealRootForPassword } from './vault-root';

/** Test-only: where a password change stops, as if the tab closed there. */
export type PasswordChangeStop = 'before_relay' | 'after_relay';

export interface AccountControlOptions {
  crypto: Crypto;
  db: EngineDB;
  store: LocalStore;
  relayUrl: string;
  tokens: TokenKeeper;
  userId: string;
  /** Argon2id with the app's parameters only (the boot's checked derivation). */
  derive: (password: string, params: KdfInput) => Promise<DerivedKeys>;
  dangerousTestOnlyStopAt?: PasswordChangeStop;
}

export type PasswordProgress = (step: 'checking' | 'deriving' | 'saving') => void;

export class AccountControl {
  readonly #o: AccountControlOptions;

  constructor(options: AccountControlOptions) {
    this.#o = options;
  }

  async #meta(): Promise<AccountMeta> {
    const parsed = accountMetaSchema.safeParse(await this.#o.db.get('meta', 'account'));
    if (!parsed.success) throw new ClientError('corrupt_store', 'The account record on this device is damaged.');
    return parsed.data;
  }

  /** Calls the relay with the current access token, without the retry-after-refresh a 401 would otherwise get. */
  async #call<T>(method: string, path: string, schema: Parameters<typeof request<T>>[3], body?: unknown): Promise<T> {
    return request(this.#o.relayUrl, method, path, schema, body, await this.#o.tokens.access());
  }

  /** Derives the current password's keys and proves them locally (they open this device's vault). */
  async #current(password: string, meta: AccountMeta): Promise<{ keys: DerivedKeys; root: Uint8Array }> {
    const keys = await this.#o.derive(password, meta);
    try {
      const root = await rootFromPassword(meta, keys.wrapKey);
      const vault = await vaultOfRoot(root);
      // The vault's key must be the one this engine runs with: its check record opens.
      await vault.openBytes('meta/check', meta.check);
      return { keys, root };
    } catch {
      keys.wrapKey.fill(0);
      if (await this.#changedElsewhere(meta)) {
        throw new ClientError(
          'password_changed',
          'Your password was changed on another device. Sign out (keeping your keys and history) and unlock with ' +
            'the new password, then try again.',
        );
      }
      throw new ClientError('wrong_password', 'The current password is not right.');
    }
  }

  /** Whether the relay holds a newer salt than this device (the password was changed on another device). */
  async #changedElsewhere(meta: AccountMeta): Promise<boolean> {
    try {
      const path = `/api/accounts/${encodeURIComponent(meta.username)}/kdf`;
      return (await request(this.#o.relayUrl, 'GET', path, kdfAnswerSchema)).salt !== meta.salt;
    } catch {
      return false;
    }
  }

  async changePassword(current: string, next: string, progress?: PasswordProgress): Promise<void> {
    if (next.length === 0) throw new ClientError('invalid_input', 'Enter a new password.');
    if (next === current) throw new ClientError('invalid_input', 'The new password is the same as the current one.');
    const c = this.#o.crypto;
    const userId = this.#o.userId;
    let meta = await this.#meta();
    progress?.('checking');
    const { keys: old, root } = await this.#current(current, meta);
    let fresh: DerivedKeys | null = null;
    try {
      const record = await this.#o.store.read('secrets', 'backup-key', backupKeySchema);
      if (!record) {
        throw new ClientError('not_found', 'The key backup is not ready yet. Try again once you are connected.');
      }
      progress?.('deriving');
      const params = { salt: c.toBase64Url(c.generateSalt()), opslimit: meta.opslimit, memlimit: meta.memlimit };
      fresh = await this.#o.derive(next, params);

      // 1. The root reachable from the backup key (a device that only knows the new password opens it that way).
      const byBackup = await sealRootForBackupKey(root, record.key);
      meta = { ...meta, rootByBackup: byBackup };
      await this.#o.db.put('meta', meta, 'account');

      // 2. The relay: the same backup content under a key box for the new password, one revision up.
      progress?.('saving');
      const blob = c.fromBase64Url((await this.#call('GET', '/api/backup', backupAnswerSchema)).backup);
      let opened;
      try {
        opened = c.openAccountBackup(record.key, userId, blob);
      } catch {
        throw new ClientError('backup_rejected', "The key backup on the relay does not open with this account's keys.");
      }
      const revision = Math.max(opened.revision, record.revision) + 1;
      const keyBox = c.wrapBackupKey(fresh.wrapKey, userId, record.key);
      const sealed = c.sealAccountBackup(record.key, keyBox, { ...opened, userId, revision });
      c.wipe(opened.identity.signingKey, opened.identity.dhPrivateKey);
      this.#stop('before_relay');
      await this.#call('PUT', '/api/accounts/self/password', null, {
        authKey: old.authKey,
        newSalt: params.salt,
        newAuthKey: fresh.authKey,
        backup: c.toBase64Url(sealed),
      }).catch((e: unknown) => {
        if (e instanceof ClientError && e.code === 'unauthorized') {
          throw new ClientError('wrong_password', 'The relay did not accept the current password. Nothing changed.');
        }
        throw e;
      });
      this.#stop('after_relay');

      // 3. This device: the new salt and the root under the new password, with the new key box, in one transaction.
      const nextMeta: AccountMeta = {
        ...meta,
        salt: params.salt,
        vaultRoot: await sealRootForPassword(root, fresh.wrapKey),
      };
      const batch = new WriteBatch();
      await this.#o.store.stage(batch, 'secrets', 'backup-key', { key: record.key, keyBox, revision });
      batch.add('meta', (tx) => tx.objectStore('meta').put(nextMeta, 'account'));
      await this.#o.store.commit(batch);
    } finally {
      root.fill(0);
      old.wrapKey.fill(0);
      fresh?.wrapKey.fill(0);
    }
  }

  /** Proves the password to the relay and has it erase the account. The caller then wipes this device. */
  async deleteAccount(password: string): Promise<void> {
    const meta = await this.#meta();
    const { keys, root } = await this.#current(password, meta);
    root.fill(0);
    keys.wrapKey.fill(0);
    await this.#call('DELETE', '/api/accounts/self', null, { authKey: keys.authKey }).catch((e: unknown) => {
      if (e instanceof ClientError && e.code === 'unauthorized') {
        throw new ClientError('wrong_password', 'The relay did not accept this password. Nothing was deleted.');
      }
      throw e;
    });
  }

  #stop(at: PasswordChangeStop): void {
    if (this.#o.dangerousTestOnlyStopAt === at) {
      throw new ClientError('relay_error', `test: the password change stopped ${at.replace('_', ' ')}`);
    }
  }
}
