// OwnKeys: this device's identity, signed prekeys (rotated weekly) and one-time prekeys (refilled below 20), and its
// post-quantum (PQXDH) ML-KEM-768 prekeys: a last-resort one (rotated weekly, old ones kept for a grace period) and
// one-time ones (refilled below 5), all sealed in the `secrets` store. One-time prekeys of either kind are one record
// each, so using one is a single staged delete. KEM prekey ids are one id space for both kinds, so a prekey message's
// `kemPrekeyId` names exactly one key.

import type { Identity, KemPrekey, OneTimePrekey, SignedPrekey } from '@weconnect/crypto';
import { z } from 'zod';
import type { Crypto } from './crypto-loader';
import type { RelayApi } from './api';
import { LIMITS, prekeyCountAnswerSchema, type PutPrekeysBody } from '@weconnect/relay/protocol';
import { signedPrekeysSchema, type SignedPrekeysRecord } from './schemas';
import { WriteBatch, type LocalStore } from './store';

export const ONE_TIME_PREKEY_TARGET = 100;
export const ONE_TIME_PREKEY_LOW_WATER = 20;
export const SIGNED_PREKEY_MAX_AGE_MS = 7 * 86_400_000;
/** Old signed prekeys stay this long, so prekey messages made from a cached bundle still decrypt. */
const SIGNED_PREKEY_GRACE_MS = 30 * 86_400_000;

/** One-time KEM prekeys: refilled to one upload's worth when fewer than this are left on the relay. */
export const KEM_ONE_TIME_TARGET = LIMITS.kemOneTimePrekeysPerRequest;
export const KEM_ONE_TIME_LOW_WATER = 5;

const otkMetaSchema = z.object({ nextKeyId: z.number().int().positive() });
const anyValue = z.unknown();
const kemLastResortSchema = z.object({
  keys: z.array(z.object({ keyId: z.number().int().nonnegative(), createdAt: z.number(), key: z.unknown() })).min(1),
});

/** The KEM prekeys a new device publishes with its first keys. */
export interface InitialKemPrekeys {
  lastResort: KemPrekey;
  oneTime: KemPrekey[];
}

export class OwnKeys {
  readonly identity: Identity;
  readonly #store: LocalStore;
  readonly #c: Crypto;

  constructor(c: Crypto, store: LocalStore, identity: Identity) {
    this.#c = c;
    this.#store = store;
    this.identity = identity;
  }

  /** A new device's first KEM prekeys: the last-resort one (id 1) and a batch of one-time ones. */
  static initialKemPrekeys(c: Crypto, identity: Identity): InitialKemPrekeys {
    const [lastResort] = c.generateKemPrekeys(identity, 1, 1, true);
    if (!lastResort) throw new Error('no last-resort KEM prekey was generated');
    return { lastResort, oneTime: c.generateKemPrekeys(identity, 2, KEM_ONE_TIME_TARGET) };
  }

  /** The upload fields of KEM prekeys (sign-up, a new device, a refill). */
  static kemUpload(c: Crypto, lastResort: KemPrekey | null, oneTime: readonly KemPrekey[]) {
    return {
      ...(lastResort ? { kemLastResortPrekey: c.kemPrekeyToWire(lastResort) } : {}),
      ...(oneTime.length > 0 ? { kemOneTimePrekeys: oneTime.map((k) => c.kemPrekeyToWire(k)) } : {}),
    } satisfies Pick<PutPrekeysBody, 'kemLastResortPrekey' | 'kemOneTimePrekeys'>;
  }

  /** Stages everything a fresh device stores: identity, first signed prekey, first one-time and KEM prekeys. */
  static async stageInitial(
    store: LocalStore,
    batch: WriteBatch,
    c: Crypto,
    keys: {
      identity: Identity;
      signedPrekey: SignedPrekey;
      oneTimePrekeys: readonly OneTimePrekey[];
      kem: InitialKemPrekeys;
    },
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
    const { lastResort, oneTime } = keys.kem;
    await store.stage(batch, 'secrets', 'kem-lr', {
      keys: [{ keyId: lastResort.keyId, createdAt: now, key: c.serializeKemPrekey(lastResort) }],
    });
    let nextKem = lastResort.keyId + 1;
    for (const k of oneTime) {
      await store.stage(batch, 'secrets', `kem/${k.keyId}`, c.serializeKemPrekey(k));
      nextKem = Math.max(nextKem, k.keyId + 1);
    }
    await store.stage(batch, 'secrets', 'kem-meta', { nextKeyId: nextKem });
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

  /** True once this device has made KEM prekeys: from then on it accepts only post-quantum session starts. */
  async hasKemPrekeys(): Promise<boolean> {
    return (await this.#store.read('secrets', 'kem-lr', kemLastResortSchema)) !== null;
  }

  /** A KEM prekey by id: an unused one-time one, else one of the last-resort keys still kept. */
  async kemPrekey(keyId: number): Promise<KemPrekey | null> {
    const raw = await this.#store.read('secrets', `kem/${keyId}`, anyValue);
    if (raw !== null) return this.#c.deserializeKemPrekey(raw);
    const rec = await this.#store.read('secrets', 'kem-lr', kemLastResortSchema);
    const found = rec?.keys.find((k) => k.keyId === keyId);
    return found ? this.#c.deserializeKemPrekey(found.key) : null;
  }

  /** Stages the deletion of a used one-time KEM prekey (committed with the session it started). */
  stageUsedKemPrekey(batch: WriteBatch, keyId: number): void {
    this.#store.stageDelete(batch, 'secrets', `kem/${keyId}`);
  }

  /**
   * The periodic key check (every connect and hourly): asks the relay what it holds for this device, refills
   * one-time prekeys and uploads a rotated (or not yet uploaded) signed prekey.
   */
  async maintain(api: RelayApi, now: number): Promise<void> {
    const count = await api.call('GET', '/api/devices/self/prekeys', prekeyCountAnswerSchema);
    const oneTimePrekeys = await this.refill(count.oneTimePrekeys);
    const signedPrekey = await this.signedPrekeyToUpload(now, count.signedPrekeyId ?? null);
    const kem = await this.kemToUpload(now, count.kemOneTimePrekeys, count.kemLastResortPrekeyId);
    if (oneTimePrekeys || signedPrekey || kem) {
      const body: PutPrekeysBody = {
        ...(oneTimePrekeys ? { oneTimePrekeys } : {}),
        ...(signedPrekey ? { signedPrekey } : {}),
        ...kem,
      };
      await api.call('PUT', '/api/devices/self/prekeys', null, body);
    }
  }

  /**
   * KEM prekeys to upload: one-time ones when the relay holds fewer than KEM_ONE_TIME_LOW_WATER, and the newest
   * last-resort key when the relay does not hold it (rotated weekly; a device from before PQXDH makes its first one
   * here). Private halves are stored before the upload; keys stored but never uploaded are harmless.
   */
  async kemToUpload(now: number, relayOneTime: number, relayLastResortId: number | null) {
    const meta = (await this.#store.read('secrets', 'kem-meta', otkMetaSchema)) ?? { nextKeyId: 1 };
    let next = meta.nextKeyId;
    const batch = new WriteBatch();
    const rec = await this.#store.read('secrets', 'kem-lr', kemLastResortSchema);
    let newest = rec ? rec.keys.reduce((a, b) => (b.createdAt > a.createdAt ? b : a)) : null;
    let lastResort: KemPrekey | null = null;
    if (!rec || !newest || now - newest.createdAt >= SIGNED_PREKEY_MAX_AGE_MS) {
      const [made] = this.#c.generateKemPrekeys(this.identity, next++, 1, true);
      if (!made) throw new Error('no last-resort KEM prekey was generated');
      newest = { keyId: made.keyId, createdAt: now, key: this.#c.serializeKemPrekey(made) };
      const kept = (rec?.keys ?? []).filter((k) => now - k.createdAt < SIGNED_PREKEY_GRACE_MS);
      await this.#store.stage(batch, 'secrets', 'kem-lr', { keys: [...kept, newest] });
      lastResort = made;
    } else if (newest.keyId !== relayLastResortId) {
      lastResort = this.#c.deserializeKemPrekey(newest.key);
    }
    let oneTime: KemPrekey[] = [];
    if (relayOneTime < KEM_ONE_TIME_LOW_WATER) {
      oneTime = this.#c.generateKemPrekeys(this.identity, next, KEM_ONE_TIME_TARGET - relayOneTime);
      for (const k of oneTime)
        await this.#store.stage(batch, 'secrets', `kem/${k.keyId}`, this.#c.serializeKemPrekey(k));
      next += oneTime.length;
    }
    if (next !== meta.nextKeyId) await this.#store.stage(batch, 'secrets', 'kem-meta', { nextKeyId: next });
    await this.#store.commit(batch);
    if (!lastResort && oneTime.length === 0) return null;
    const upload = OwnKeys.kemUpload(this.#c, lastResort, oneTime);
    this.#c.wipe(...[lastResort, ...oneTime].map((k) => k?.secretKey)); // stored sealed; loaded again when used
    return upload;
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
