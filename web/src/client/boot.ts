// EngineBoot: everything before the chat engine runs — sign up, sign in (new device: restore the identity from the
// relay's encrypted backup), unlock after a reload, "keep unlocked", one writer tab (Web Locks), forgetting data.

import './zod-csp'; // first: before any module below builds a zod schema
import type { AccountKeys, ContactVerification, KeyBackup } from '@weconnect/crypto';
import { z } from 'zod';
import { AccountControl, type PasswordChangeStop } from './account';
import { RelayApi, TokenKeeper, request } from './api';
import { ChatClient, type ChatClientOptions } from './chat-client';
import { loadCrypto, type Crypto } from './crypto-loader';
import { openEngineDB, wipeEngineDB, type EngineDB } from './db';
import { ClientError, describeError } from './errors';
import { deriveInWorker, type DerivedKeys, type KeyDeriver } from './kdf';
import { webLocks, type LockProvider } from './locks';
import { OwnKeys, type InitialKemPrekeys } from './own-keys';
import {
  backupAnswerSchema,
  kdfAnswerSchema,
  sessionAnswerSchema,
  type CreateAccountBody,
  type PutPrekeysBody,
  type SessionAnswer,
  LIMITS,
} from '@weconnect/relay/protocol';
import {
  accountMetaSchema,
  backupKeySchema,
  legacyWrapKeySchema,
  tokensSchema,
  type AccountMeta,
  type BackupKeyRecord,
  type Contact,
} from './schemas';
import { LocalStore, WriteBatch } from './store';
import type { BootProgress, ChatEngineApi, EngineBootApi, LocalAccountState } from './types';
import { Vault } from './vault';
import {
  rootFromBackupKey,
  rootFromPassword,
  sealRootForBackupKey,
  sealRootForPassword,
  vaultOfRoot,
} from './vault-root';

const CHECK = 'weconnect-at-rest-check-v1';

export { webLocks, type LockProvider };

export interface BootOptions {
  relayUrl: string;
  dbName: string;
  derive: KeyDeriver;
  locks?: LockProvider;
  /** The clock for keys and tokens (tests move it to exercise weekly rotation). */
  now?: () => number;
  /** Extra engine options (test hooks). */
  engine?: Pick<
    ChatClientOptions,
    'dangerousTestOnlyDropSendAcks' | 'dangerousTestOnlySkipInboundAcks' | 'transparency'
  > & {
    /** Test-only: a password change stops there, as if the tab closed. */
    dangerousTestOnlyPasswordChangeStop?: PasswordChangeStop;
  };
}

export class EngineBoot implements EngineBootApi {
  readonly #options: BootOptions;
  #db: Promise<EngineDB> | null = null;
  #release: (() => void) | null = null;

  constructor(options: BootOptions) {
    this.#options = options;
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #open(): Promise<EngineDB> {
    this.#db ??= openEngineDB(this.#options.dbName);
    return this.#db;
  }

  async #meta(): Promise<AccountMeta | null> {
    const raw = await (await this.#open()).get('meta', 'account');
    if (raw === undefined) return null;
    const parsed = accountMetaSchema.safeParse(raw);
    if (!parsed.success) throw new ClientError('corrupt_store', 'The account record on this device is damaged.');
    return parsed.data;
  }

  async localAccount(): Promise<LocalAccountState> {
    const meta = await this.#meta();
    return meta ? { kind: 'locked', username: meta.username, userId: meta.userId } : { kind: 'none' };
  }

  get #lockName(): string {
    return `weconnect:${this.#options.dbName}`;
  }

  async openElsewhere(): Promise<boolean> {
    if (this.#release) return false;
    const locks = this.#options.locks ?? webLocks;
    return (await locks.heldElsewhere?.(this.#lockName)) ?? false;
  }

  async #lock(): Promise<void> {
    if (this.#release) return;
    const release = await (this.#options.locks ?? webLocks).tryAcquire(this.#lockName);
    if (!release) {
      throw new ClientError('locked', 'WeConnect is open in another tab. Close it there to use it here.');
    }
    this.#release = release;
  }

  #unlockLock(): void {
    this.#release?.();
    this.#release = null;
  }

  /**
   * Argon2id with the parameters this app uses, and no others: the relay answers them at sign-in (and they are kept
   * in the account record), and a hostile relay could ask for 20 passes over 1 GiB to hang the tab. Checked here,
   * before the worker starts.
   */
  async #derive(password: string, params: { salt: string; opslimit: number; memlimit: number }): Promise<DerivedKeys> {
    if (password.length === 0) throw new ClientError('invalid_input', 'Enter your password.');
    const c = await loadCrypto();
    let saltBytes = 0;
    try {
      saltBytes = c.fromBase64Url(params.salt).length;
    } catch {
      saltBytes = 0;
    }
    if (!c.isAcceptedKdfParams(params) || saltBytes !== c.SALT_BYTES) {
      throw new ClientError(
        'kdf_refused',
        'The relay asked for password-hashing settings this app does not use ' +
          `(${params.opslimit} passes over ${Math.round(params.memlimit / 1024 / 1024)} MiB, a ${saltBytes}-byte salt; ` +
          `expected ${c.KDF_PARAMS.opslimit} passes over ${c.KDF_PARAMS.memlimit / 1024 / 1024} MiB and a ` +
          `${c.SALT_BYTES}-byte salt). Your password was not used. The relay may be misconfigured or hostile.`,
      );
    }
    return this.#options.derive(password, params);
  }

  /** Opens the vault with the password's wrap key (directly, or through the root sealed at a password change). */
  async #vault(meta: AccountMeta, wrapKey: Uint8Array): Promise<{ vault: Vault; root: Uint8Array }> {
    let root: Uint8Array | null = null;
    try {
      root = await rootFromPassword(meta, wrapKey);
      const vault = await vaultOfRoot(root);
      await checkVault(meta, vault);
      return { vault, root };
    } catch {
      root?.fill(0);
      throw new ClientError('wrong_password', 'That password is not right.');
    }
  }

  /**
   * Seals the vault's root under the account's backup key when this profile does not have it yet, so that a newer
   * password (changed on another device, or a change whose last local step never ran) can open it later.
   */
  async #keepRootByBackup(meta: AccountMeta, vault: Vault, root: Uint8Array): Promise<AccountMeta> {
    if (meta.rootByBackup) return meta;
    const db = await this.#open();
    const record = await new LocalStore(db, vault).read('secrets', 'backup-key', backupKeySchema).catch(() => null);
    if (!record) return meta;
    const next: AccountMeta = { ...meta, rootByBackup: await sealRootForBackupKey(root, record.key) };
    await db.put('meta', next, 'account');
    return next;
  }

  /**
   * The password does not open this device's data, but it may be the account's newer password: the relay's salt
   * differs from the one kept here (changed on another device, or this device's change stopped after the relay took
   * it). Then the new password proves itself to the relay, opens the backup key through the relay's key box, and
   * the backup key opens the vault's root, which is sealed under the new password from then on.
   */
  async #unlockWithNewerPassword(
    password: string,
    meta: AccountMeta,
  ): Promise<{ meta: AccountMeta; vault: Vault; fresh: SessionAnswer; wrapKey: Uint8Array } | null> {
    if (!meta.rootByBackup) return null;
    const base = this.#options.relayUrl;
    let kdf;
    try {
      kdf = await request(base, 'GET', `/api/accounts/${encodeURIComponent(meta.username)}/kdf`, kdfAnswerSchema);
    } catch {
      return null;
    }
    if (kdf.salt === meta.salt) return null;
    const keys = await this.#derive(password, kdf);
    let root: Uint8Array | null = null;
    try {
      const fresh = await request(base, 'POST', '/api/sessions', sessionAnswerSchema, {
        username: meta.username,
        authKey: keys.authKey,
        deviceId: meta.deviceId,
      }).catch((e: unknown) => {
        if (e instanceof ClientError && e.code === 'unauthorized') return null;
        throw e;
      });
      if (!fresh || fresh.userId !== meta.userId) return null;
      const c = await loadCrypto();
      const { backup } = await request(base, 'GET', '/api/backup', backupAnswerSchema, undefined, fresh.accessToken);
      const backupKey = c.unwrapBackupKey(keys.wrapKey, meta.userId, c.fromBase64Url(backup));
      try {
        root = await rootFromBackupKey(meta.rootByBackup, backupKey);
      } finally {
        c.wipe(backupKey);
      }
      const vault = await vaultOfRoot(root);
      await checkVault(meta, vault);
      const next: AccountMeta = {
        ...meta,
        salt: kdf.salt,
        opslimit: kdf.opslimit,
        memlimit: kdf.memlimit,
        vaultRoot: await sealRootForPassword(root, keys.wrapKey),
      };
      await (await this.#open()).put('meta', next, 'account');
      return { meta: next, vault, fresh, wrapKey: keys.wrapKey.slice() };
    } catch (e) {
      if (e instanceof ClientError && e.code === 'relay_unreachable') throw e;
      return null;
    } finally {
      root?.fill(0);
      keys.wrapKey.fill(0);
    }
  }

  async tryAutoUnlock(): Promise<ChatEngineApi | null> {
    const db = await this.#open();
    const meta = await this.#meta();
    const key: unknown = await db.get('devicekeys', 'unlock-key');
    if (!meta || key === undefined) return null;
    if (!(key instanceof CryptoKey)) {
      await db.delete('devicekeys', 'unlock-key'); // not what we store there: ask for the password instead
      return null;
    }
    const vault = new Vault(key);
    try {
      await vault.open('meta/check', meta.check, z.literal(CHECK));
    } catch {
      await db.delete('devicekeys', 'unlock-key');
      return null;
    }
    try {
      await this.#lock();
    } catch {
      return null; // the unlock screen explains the other tab when the user tries
    }
    // A profile from before the backup key kept the wrap key: hand it to the engine once (it makes the backup key
    // with it on the first sync) and delete it here.
    const legacy = await new LocalStore(db, vault).read('secrets', 'wrap-key', legacyWrapKeySchema).catch(() => null);
    await db.delete('secrets', 'wrap-key');
    return this.#start(meta, vault, null, legacy?.key ?? null);
  }

  async unlock(password: string, keepUnlocked: boolean, progress?: BootProgress): Promise<ChatEngineApi> {
    let meta = await this.#meta();
    if (!meta) throw new ClientError('not_signed_in', 'There is no account on this device.');
    await this.#lock();
    try {
      progress?.('deriving');
      const keys = await this.#derive(password, meta);
      let vault: Vault;
      // The wrap key goes to the engine, in memory, for its first backup sync (to follow a re-keyed backup or
      // migrate a format-1 one), which wipes it; it is never stored (and a copy older versions stored is deleted).
      let handover: Uint8Array = keys.wrapKey.slice();
      let fresh: SessionAnswer | null = null;
      try {
        const opened = await this.#vault(meta, keys.wrapKey);
        vault = opened.vault;
        try {
          meta = await this.#keepRootByBackup(meta, vault, opened.root);
        } finally {
          opened.root.fill(0);
        }
        await (await this.#open()).delete('secrets', 'wrap-key');
      } catch (e) {
        handover.fill(0);
        if (!(e instanceof ClientError && e.code === 'wrong_password')) throw e;
        const newer = await this.#unlockWithNewerPassword(password, meta);
        if (!newer) throw e;
        ({ meta, vault, fresh } = newer);
        handover = newer.wrapKey;
      } finally {
        keys.wrapKey.fill(0);
      }
      const db = await this.#open();
      if (keepUnlocked) await db.put('devicekeys', vault.key, 'unlock-key');
      else await db.delete('devicekeys', 'unlock-key');
      progress?.('connecting');
      // Fresh tokens from the password (the stored refresh token may have expired); offline, the stored one waits.
      if (!fresh) {
        try {
          fresh = await request(this.#options.relayUrl, 'POST', '/api/sessions', sessionAnswerSchema, {
            username: meta.username,
            authKey: keys.authKey,
            deviceId: meta.deviceId,
          });
        } catch (e) {
          if (e instanceof ClientError && e.code === 'device_removed') {
            // Removed by another device of the account while this one was away: nothing here may be used again.
            handover.fill(0);
            await wipeEngineDB(await this.#open());
            throw new ClientError(
              'device_removed',
              'This device was removed from your account. Its keys and history were erased here; sign in again ' +
                'to use it as a new device.',
            );
          }
          if (!(e instanceof ClientError && e.code === 'relay_unreachable')) {
            handover.fill(0);
            if (e instanceof ClientError && e.code === 'unauthorized') {
              throw new ClientError(
                'password_changed',
                "This account's password was changed (on another device, or here just before). Enter the new password.",
              );
            }
            throw e;
          }
        }
      }
      return await this.#start(meta, vault, fresh, handover);
    } catch (e) {
      this.#unlockLock();
      throw e;
    }
  }

  async signUp(username: string, password: string, progress?: BootProgress): Promise<ChatEngineApi> {
    if (await this.#meta()) throw new ClientError('invalid_input', 'This browser already holds an account.');
    await this.#lock();
    try {
      const c = await loadCrypto();
      const params = { salt: c.toBase64Url(c.generateSalt()), ...kdfParams(c) };
      progress?.('deriving');
      const keys = await this.#derive(password, params);
      let meta: { meta: AccountMeta; vault: Vault };
      let answer: SessionAnswer;
      try {
        progress?.('registering');
        const fresh = c.createAccountKeys();
        const account = { ...fresh, kem: OwnKeys.initialKemPrekeys(c, fresh.identity) };
        answer = await request(this.#options.relayUrl, 'POST', '/api/accounts', sessionAnswerSchema, {
          username,
          salt: params.salt,
          authKey: keys.authKey,
          ...account.upload,
          ...OwnKeys.kemUpload(c, account.kem.lastResort, account.kem.oneTime),
        } satisfies CreateAccountBody);
        // The account's backup key: random, sealed in the key box under the wrap key for its other devices.
        const key = c.generateBackupKey();
        const keyBox = c.wrapBackupKey(keys.wrapKey, answer.userId, key);
        const backup = c.sealAccountBackup(key, keyBox, {
          userId: answer.userId,
          revision: 1,
          identity: account.identity,
          contacts: [],
        });
        // Revision 1 is remembered only if the relay took it; otherwise the engine's first sync writes it.
        const stored = await request(
          this.#options.relayUrl,
          'PUT',
          '/api/backup',
          null,
          { backup: c.toBase64Url(backup) },
          answer.accessToken,
        ).then(
          () => true,
          (e: unknown) => {
            console.warn('key backup not stored on the relay yet:', describeError(e));
            return false;
          },
        );
        const record = { key, keyBox, revision: stored ? 1 : 0 };
        meta = await this.#storeDevice(c, username, params, keys.wrapKey, answer, account, null, record);
        wipeAccountKeys(c, account); // stored sealed; the engine loads its own copy
        c.wipe(key);
      } finally {
        keys.wrapKey.fill(0);
      }
      return await this.#start(meta.meta, meta.vault, answer, null);
    } catch (e) {
      this.#unlockLock();
      throw e;
    }
  }

  async signIn(username: string, password: string, progress?: BootProgress): Promise<ChatEngineApi> {
    const local = await this.#meta();
    if (local && local.username.toLowerCase() === username.toLowerCase()) return this.unlock(password, false, progress);
    await this.#lock();
    try {
      const base = this.#options.relayUrl;
      const kdf = await request(base, 'GET', `/api/accounts/${encodeURIComponent(username)}/kdf`, kdfAnswerSchema);
      progress?.('deriving');
      const c = await loadCrypto();
      const keys = await this.#derive(password, kdf);
      let stored: { meta: AccountMeta; vault: Vault };
      let answer: SessionAnswer;
      let handover: Uint8Array | null = null;
      try {
        answer = await request(base, 'POST', '/api/sessions', sessionAnswerSchema, {
          username,
          authKey: keys.authKey,
        }).catch((e: unknown) => {
          if (e instanceof ClientError && e.code === 'unauthorized') {
            throw new ClientError('unauthorized', 'Wrong username or password.');
          }
          if (e instanceof ClientError && e.code === 'device_limit') {
            // The relay's cap is configurable; its message names it ("this account has 10 devices, …").
            const cap = /(\d+) devices/.exec(e.message)?.[1] ?? String(LIMITS.devicesPerAccount);
            throw new ClientError(
              'device_limit',
              `This account already has ${cap} device${cap === '1' ? '' : 's'}. Remove one in Settings → Devices on another device.`,
            );
          }
          throw e;
        });
        progress?.('restoring');
        const { backup } = await request(base, 'GET', '/api/backup', backupAnswerSchema, undefined, answer.accessToken);
        const blob = c.fromBase64Url(backup);
        // A new device has no memory of earlier revisions: it takes the backup it is served (if it is this
        // account's), and remembers its revision from now on.
        let restored: KeyBackup;
        let record: BackupKeyRecord | null = null;
        try {
          if (c.backupFormat(blob) === 2) {
            const key = c.unwrapBackupKey(keys.wrapKey, answer.userId, blob);
            const opened = c.openAccountBackup(key, answer.userId, blob);
            restored = opened;
            record = { key, keyBox: c.backupKeyBox(blob), revision: opened.revision };
          } else {
            // Format 1: the engine's first sync migrates it to format 2 with the wrap key handed over below.
            restored = c.openLegacyBackup(keys.wrapKey, blob);
            handover = keys.wrapKey.slice();
          }
        } catch {
          throw new ClientError(
            'decrypt_failed',
            'The key backup on the relay could not be opened with this password for this account.',
          );
        }
        const device = {
          ...c.createDeviceKeys(restored.identity),
          kem: OwnKeys.initialKemPrekeys(c, restored.identity),
        };
        await request(
          base,
          'PUT',
          '/api/devices/self/prekeys',
          null,
          {
            signedPrekey: device.upload.signedPrekey,
            oneTimePrekeys: device.upload.oneTimePrekeys,
            ...OwnKeys.kemUpload(c, device.kem.lastResort, device.kem.oneTime),
          } satisfies PutPrekeysBody,
          answer.accessToken,
        );
        if (local) await wipeEngineDB(await this.#open());
        stored = await this.#storeDevice(c, username, kdf, keys.wrapKey, answer, device, restored.contacts, record);
        wipeAccountKeys(c, device);
        c.wipe(restored.identity.signingKey, restored.identity.dhPrivateKey);
        if (record) c.wipe(record.key);
      } catch (e) {
        handover?.fill(0);
        throw e;
      } finally {
        keys.wrapKey.fill(0);
      }
      return await this.#start(stored.meta, stored.vault, answer, handover);
    } catch (e) {
      this.#unlockLock();
      throw e;
    }
  }

  async #storeDevice(
    c: Crypto,
    username: string,
    params: { salt: string; opslimit: number; memlimit: number },
    wrapKey: Uint8Array,
    answer: SessionAnswer,
    keys: Parameters<typeof OwnKeys.stageInitial>[3],
    restored: readonly ContactVerification[] | null,
    backupKey: BackupKeyRecord | null,
  ): Promise<{ meta: AccountMeta; vault: Vault }> {
    const vault = await vaultOfRoot(wrapKey);
    const meta: AccountMeta = {
      version: 1,
      userId: answer.userId,
      username: username.toLowerCase(),
      deviceId: answer.deviceId,
      salt: params.salt,
      opslimit: params.opslimit,
      memlimit: params.memlimit,
      check: await vault.seal('meta/check', CHECK),
      ...(backupKey ? { rootByBackup: await sealRootForBackupKey(wrapKey, backupKey.key) } : {}),
    };
    const db = await this.#open();
    const store = new LocalStore(db, vault);
    const batch = new WriteBatch();
    await OwnKeys.stageInitial(store, batch, c, keys, this.#now());
    await store.stage(batch, 'secrets', 'tokens', { refreshToken: answer.refreshToken });
    if (backupKey) await store.stage(batch, 'secrets', 'backup-key', backupKey);
    // A device added to an existing account learns its groups from the relay on its first connect.
    if (restored) await store.stage(batch, 'secrets', 'group-sync', { pending: true });
    // Contacts verified on another device (from the key backup); the relay's bundle names them on first contact.
    for (const v of restored ?? []) {
      if (!v.verified) continue;
      const contact: Contact = {
        userId: v.userId,
        username: 'contact',
        identityKey: v.identityKey,
        verified: true,
        restored: true,
      };
      await store.stage(batch, 'contacts', v.userId, contact);
    }
    batch.add('meta', (tx) => tx.objectStore('meta').put(meta, 'account'));
    await store.commit(batch);
    return { meta, vault };
  }

  /** `wrapKey`: handed to the engine for its first backup sync, which wipes it (see Trust). */
  async #start(
    meta: AccountMeta,
    vault: Vault,
    fresh: SessionAnswer | null,
    wrapKey: Uint8Array | null,
  ): Promise<ChatEngineApi> {
    try {
      return await this.#startEngine(meta, vault, fresh, wrapKey);
    } catch (e) {
      wrapKey?.fill(0);
      throw e;
    }
  }

  async #startEngine(
    meta: AccountMeta,
    vault: Vault,
    fresh: SessionAnswer | null,
    wrapKey: Uint8Array | null,
  ): Promise<ChatEngineApi> {
    const c = await loadCrypto();
    const db = await this.#open();
    const store = new LocalStore(db, vault);
    const stored = await store.read('secrets', 'tokens', tokensSchema);
    if (!stored && !fresh) throw new ClientError('not_signed_in', 'No relay session is stored; sign in again.');
    const tokens = new TokenKeeper(
      this.#options.relayUrl,
      fresh?.refreshToken ?? stored?.refreshToken ?? '',
      (t) => store.write('secrets', 'tokens', { refreshToken: t }),
      () => this.#now(),
    );
    if (fresh) await tokens.set(fresh.accessToken, fresh.refreshToken, fresh.expiresIn);
    const keys = await OwnKeys.load(c, store);
    const { dangerousTestOnlyPasswordChangeStop: stopAt, ...engineHooks } = this.#options.engine ?? {};
    const account = new AccountControl({
      crypto: c,
      db,
      store,
      relayUrl: this.#options.relayUrl,
      tokens,
      userId: meta.userId,
      derive: (password, params) => this.#derive(password, params),
      ...(stopAt ? { dangerousTestOnlyStopAt: stopAt } : {}),
    });
    const client = await ChatClient.open({
      account,
      crypto: c,
      store,
      api: new RelayApi(this.#options.relayUrl, tokens),
      relayUrl: this.#options.relayUrl,
      me: { userId: meta.userId, username: meta.username, deviceId: meta.deviceId },
      keys,
      now: () => this.#now(),
      backupWrapKey: wrapKey,
      onClosed: () => {
        this.#db = null;
        this.#unlockLock();
      },
      ...engineHooks,
    });
    return client;
  }

  async forgetLocalAccount(): Promise<void> {
    await this.#lock();
    try {
      await wipeEngineDB(await this.#open());
    } finally {
      this.#unlockLock();
    }
  }
}

/** Throws unless the vault opens the account record's sealed check constant. */
async function checkVault(meta: AccountMeta, vault: Vault): Promise<void> {
  const check = await vault.open('meta/check', meta.check, z.literal(CHECK));
  if (check !== CHECK) throw new Error('check mismatch');
}

/** Overwrites the private halves of freshly made keys once they are stored (sealed) in IndexedDB. */
function wipeAccountKeys(c: Crypto, keys: AccountKeys & { kem?: InitialKemPrekeys }): void {
  c.wipe(
    keys.identity.signingKey,
    keys.identity.dhPrivateKey,
    keys.signedPrekey.keyPair.privateKey,
    ...keys.oneTimePrekeys.map((k) => k.keyPair.privateKey),
    ...(keys.kem ? [keys.kem.lastResort, ...keys.kem.oneTime].map((k) => k.secretKey) : []),
  );
}

function kdfParams(c: Crypto): { opslimit: number; memlimit: number } {
  return { opslimit: c.KDF_PARAMS.opslimit, memlimit: c.KDF_PARAMS.memlimit };
}

/** The browser wiring: the relay is this page's origin; Argon2id runs in a worker; one tab writes. */
export function createBrowserBoot(): EngineBootApi {
  return new EngineBoot({ relayUrl: location.origin, dbName: 'weconnect', derive: deriveInWorker, locks: webLocks });
}
