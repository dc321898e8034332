// OwnKeys: this device's identity, signed prekeys (rotated weekly) and one-time prekeys (refilled below 20),
// sealed in the `secrets` store. One-time prekeys are one record each, so using one is a single staged delete.

import type { Identity, OneTimePrekey, SignedPrekey } from '@weconnect/crypto';
import { z } from 'zod';
import type { Crypto } from './crypto-loader';
import type { RelayApi } from './api';
import { prekeyCountAnswerSchema } from '@weconnect/relay/protocol';
import { signedPrekeysSchema, type SignedPrekeysRecord } from './schemas';
import { WriteBatch, type LocalStore } from './store';

export const ONE_TIME_PREKEY_TARGET = 100;
export const ONE_TIME_PREKEY_LOW_WATER = 20;
export const SIGNED_PREKEY_MAX_AGE_MS = 7 * 86_400_000;
/** Old signed prekeys stay this long, so prekey messages made from a cached bundle still decrypt. */
const SIGNED_PREKEY_GRACE_MS = 30 * 86_400_000;

const otkMetaSchema = z.object({ nextKeyId: z.number().int().positive() });
const anyValue = z.unknown();

export class OwnKeys {
  readonly identity: Identity;
  readonly #store: LocalStore;
  readonly #c: Crypto;

  constructor(c: Crypto, store: LocalStore, identity: Identity) {
    this.#c = c;
    this.#store = store;
    this.identity = identity;
  }

  /** Stages everything a fresh device stores: identity, first signed prekey, first one-time prekeys. */
  static async stageInitial(
    store: LocalStore,
    batch: WriteBatch,
    c: Crypto,
    keys: { identity: Identity; signedPrekey: SignedPrekey; oneTimePrekeys: readonly OneTimePrekey[] },
    now: number,
  ): Promise<void> {
    await store.stage(batch, 'secrets', 'identity', c.serializeIdentity(keys.identity));
    const spk: SignedPrekeysRecord = {
      keys: [{ keyId: keys.signedPrekey.keyId, createdAt: now, key: c.serializeSignedPrekey(keys.signedPrekey) }],
    };
    await store.stage(batch, 'secrets', 'spk', spk);
    let next = 1;
    for (const k of keys.oneTimePrekeys) {
      await store.stage(batch, 'secrets', `otk/${k.keyId}`, c.serializeOneTimePrekey(k));
      next = Math.max(next, k.keyId + 1);
    }
    await store.stage(batch, 'secrets', 'otk-meta', { nextKeyId: next });
  }

  static async load(c: Crypto, store: LocalStore): Promise<OwnKeys> {
    const raw = await store.read('secrets', 'identity', anyValue);
    if (raw === null) throw new Error('No identity stored on this device');
    return new OwnKeys(c, store, c.deserializeIdentity(raw));
  }

  /** When the oldest signed prekey this device still holds was made (seen ids are kept at least that long). */
  async oldestSignedPrekeyCreated(): Promise<number> {
    const rec = await this.#store.read('secrets', 'spk', signedPrekeysSchema);
    return rec ? Math.min(...rec.keys.map((k) => k.createdAt)) : 0;
  }

  async signedPrekey(keyId: number): Promise<SignedPrekey | null> {
    const rec = await this.#store.read('secrets', 'spk', signedPrekeysSchema);
    const found = rec?.keys.find((k) => k.keyId === keyId);
    return found ? this.#c.deserializeSignedPrekey(found.key) : null;
  }

  async oneTimePrekey(keyId: number): Promise<OneTimePrekey | null> {
    const raw = await this.#store.read('secrets', `otk/${keyId}`, anyValue);
    return raw === null ? null : this.#c.deserializeOneTimePrekey(raw);
  }

  /** Stages the deletion of a used one-time prekey (committed with the session it started). */
  stageUsedOneTimePrekey(batch: WriteBatch, keyId: number): void {
    this.#store.stageDelete(batch, 'secrets', `otk/${keyId}`);
  }

  /**
   * The periodic key check (every connect and hourly): asks the relay what it holds for this device, refills
   * one-time prekeys and uploads a rotated (or not yet uploaded) signed prekey.
   */
  async maintain(api: RelayApi, now: number): Promise<void> {
    const count = await api.call('GET', '/api/devices/self/prekeys', prekeyCountAnswerSchema);
    const oneTimePrekeys = await this.refill(count.oneTimePrekeys);
    const signedPrekey = await this.signedPrekeyToUpload(now, count.signedPrekeyId ?? null);
    if (oneTimePrekeys || signedPrekey) {
      await api.call('PUT', '/api/devices/self/prekeys', null, {
        ...(oneTimePrekeys ? { oneTimePrekeys } : {}),
        ...(signedPrekey ? { signedPrekey } : {}),
      });
    }
  }

  /**
   * Makes `ONE_TIME_PREKEY_TARGET - serverCount` new one-time prekeys and stores their private halves first;
   * returns the public halves to upload. Keys stored but never uploaded are harmless.
   */
  async refill(serverCount: number) {
    if (serverCount >= ONE_TIME_PREKEY_LOW_WATER) return null;
    const meta = (await this.#store.read('secrets', 'otk-meta', otkMetaSchema)) ?? { nextKeyId: 1 };
    const count = ONE_TIME_PREKEY_TARGET - serverCount;
    const keys = this.#c.generateOneTimePrekeys(meta.nextKeyId, count);
    const batch = new WriteBatch();
    for (const k of keys)
      await this.#store.stage(batch, 'secrets', `otk/${k.keyId}`, this.#c.serializeOneTimePrekey(k));
    await this.#store.stage(batch, 'secrets', 'otk-meta', { nextKeyId: meta.nextKeyId + count });
    await this.#store.commit(batch);
    const wire = this.#c.oneTimePrekeysToWire(keys);
    this.#c.wipe(...keys.map((k) => k.keyPair.privateKey)); // stored sealed; loaded again when one is used
    return wire;
  }

  /**
   * Rotates the signed prekey when the newest is a week old (older ones stay for a 30-day grace period, so prekey
   * messages made from a cached bundle still decrypt), and returns the newest one's public part whenever the relay
   * does not hold it yet (`relayKeyId` differs) — so a rotation whose upload failed is uploaded on the next check.
   */
  async signedPrekeyToUpload(now: number, relayKeyId: number | null) {
    const rec = await this.#store.read('secrets', 'spk', signedPrekeysSchema);
    if (!rec) return null;
    let newest = rec.keys.reduce((a, b) => (b.createdAt > a.createdAt ? b : a));
    if (now - newest.createdAt >= SIGNED_PREKEY_MAX_AGE_MS) {
      const spk = this.#c.generateSignedPrekey(this.identity, (newest.keyId + 1) >>> 0);
      newest = { keyId: spk.keyId, createdAt: now, key: this.#c.serializeSignedPrekey(spk) };
      const keys = [...rec.keys.filter((k) => now - k.createdAt < SIGNED_PREKEY_GRACE_MS), newest];
      await this.#store.write('secrets', 'spk', { keys });
    }
    if (newest.keyId === relayKeyId) return null;
    return this.#c.signedPrekeyToWire(this.#c.deserializeSignedPrekey(newest.key));
  }
}
