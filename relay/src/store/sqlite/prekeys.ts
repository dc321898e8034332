// Prekey rows of the SQLite store: uploads, counts, and bundles that hand each one-time prekey out once.
// Synchronous; the SqliteStore wraps each call in a Promise.
import type BetterSqlite3 from 'better-sqlite3';
import type { BundleRecord, KemPrekeyRecord, PrekeyCounts, PrekeyLimits, PrekeyUpload } from '../store.js';
import { immediate } from './statements.js';
import type { Prepare } from './statements.js';

interface KemRow {
  key_id: number;
  last_resort: number;
  public_key: Buffer;
  signature: Buffer;
}

const kemRecord = (r: KemRow): KemPrekeyRecord => ({
  keyId: r.key_id,
  lastResort: r.last_resort === 1,
  publicKey: r.public_key,
  signature: r.signature,
});

interface DeviceKeyRow {
  device_id: string;
  signed_prekey_id: number;
  signed_prekey: Buffer;
  signed_prekey_signature: Buffer;
}

export class PrekeyTables {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly prepare: Prepare,
  ) {}

  /** Writes inside the caller's transaction. */
  write(deviceId: string, keys: PrekeyUpload): void {
    if (keys.signedPrekey) {
      const s = keys.signedPrekey;
      this.prepare(
        'UPDATE devices SET signed_prekey_id = ?, signed_prekey = ?, signed_prekey_signature = ? WHERE device_id = ?',
      ).run(s.keyId, s.publicKey, s.signature, deviceId);
    }
    const insert = this.prepare(
      'INSERT OR REPLACE INTO one_time_prekeys (device_id, key_id, public_key) VALUES (?, ?, ?)',
    );
    for (const k of keys.oneTimePrekeys ?? []) insert.run(deviceId, k.keyId, k.publicKey);
    if (keys.kemLastResortPrekey) {
      this.prepare('DELETE FROM kem_prekeys WHERE device_id = ? AND last_resort = 1').run(deviceId);
    }
    const kem = [...(keys.kemLastResortPrekey ? [keys.kemLastResortPrekey] : []), ...(keys.kemOneTimePrekeys ?? [])];
    const insertKem = this.prepare(
      `INSERT OR REPLACE INTO kem_prekeys (device_id, last_resort, key_id, public_key, signature)
       VALUES (?, ?, ?, ?, ?)`,
    );
    for (const k of kem) insertKem.run(deviceId, k.lastResort ? 1 : 0, k.keyId, k.publicKey, k.signature);
  }

  /** Writes the upload unless the device would then hold more one-time (KEM) prekeys than `max` allows. */
  put(deviceId: string, keys: PrekeyUpload, max: PrekeyLimits): 'stored' | 'too_many' {
    const tooMany = Symbol('too many');
    try {
      immediate(this.db, () => {
        this.write(deviceId, keys);
        // A failed check rolls the transaction back.
        if (this.countOneTime(deviceId) > max.oneTime || this.countKemOneTime(deviceId) > max.kemOneTime) {
          throw tooMany;
        }
      })();
      return 'stored';
    } catch (err) {
      if (err === tooMany) return 'too_many';
      throw err;
    }
  }

  count(deviceId: string): PrekeyCounts {
    const signed = this.prepare<[string], { signed_prekey_id: number | null }>(
      'SELECT signed_prekey_id FROM devices WHERE device_id = ?',
    ).get(deviceId);
    const lastResort = this.prepare<[string], { key_id: number }>(
      'SELECT key_id FROM kem_prekeys WHERE device_id = ? AND last_resort = 1',
    ).get(deviceId);
    return {
      oneTimePrekeys: this.countOneTime(deviceId),
      signedPrekeyId: signed?.signed_prekey_id ?? null,
      kemOneTimePrekeys: this.countKemOneTime(deviceId),
      kemLastResortPrekeyId: lastResort?.key_id ?? null,
    };
  }

  /** One transaction: read the devices, and delete-and-return one one-time prekey of each. */
  takeBundle(userId: string, takeFor: ReadonlySet<string> | null): BundleRecord | null {
    return immediate(this.db, (): BundleRecord | null => {
      const user = this.prepare<[string], { user_id: string; username: string; identity_key: Buffer }>(
        'SELECT user_id, username, identity_key FROM users WHERE user_id = ?',
      ).get(userId);
      if (!user) return null;
      const devices = this.prepare<[string], DeviceKeyRow>(
        `SELECT device_id, signed_prekey_id, signed_prekey, signed_prekey_signature FROM devices
         WHERE user_id = ? AND signed_prekey IS NOT NULL ORDER BY created_at, device_id`,
      ).all(userId);
      const take = this.prepare<[string, string], { key_id: number; public_key: Buffer }>(
        `DELETE FROM one_time_prekeys WHERE device_id = ?
           AND key_id = (SELECT min(key_id) FROM one_time_prekeys WHERE device_id = ?)
         RETURNING key_id, public_key`,
      );
      const takeKem = this.prepare<[string, string], KemRow>(
        `DELETE FROM kem_prekeys WHERE device_id = ? AND last_resort = 0
           AND key_id = (SELECT min(key_id) FROM kem_prekeys WHERE device_id = ? AND last_resort = 0)
         RETURNING key_id, last_resort, public_key, signature`,
      );
      const lastResortKem = this.prepare<[string], KemRow>(
        'SELECT key_id, last_resort, public_key, signature FROM kem_prekeys WHERE device_id = ? AND last_resort = 1',
      );
      return {
        userId: user.user_id,
        username: user.username,
        identityKey: user.identity_key,
        devices: devices.map((d) => {
          const takes = !takeFor || takeFor.has(d.device_id);
          const otk = takes ? take.get(d.device_id, d.device_id) : undefined;
          const kem = (takes ? takeKem.get(d.device_id, d.device_id) : undefined) ?? lastResortKem.get(d.device_id);
          return {
            deviceId: d.device_id,
            signedPrekey: {
              keyId: d.signed_prekey_id,
              publicKey: d.signed_prekey,
              signature: d.signed_prekey_signature,
            },
            oneTimePrekey: otk ? { keyId: otk.key_id, publicKey: otk.public_key } : null,
            kemPrekey: kem ? kemRecord(kem) : null,
          };
        }),
      };
    })();
  }

  private countKemOneTime(deviceId: string): number {
    return (
      this.prepare<[string], { n: number }>(
        'SELECT count(*) AS n FROM kem_prekeys WHERE device_id = ? AND last_resort = 0',
      ).get(deviceId)?.n ?? 0
    );
  }

  private countOneTime(deviceId: string): number {
    return (
      this.prepare<[string], { n: number }>('SELECT count(*) AS n FROM one_time_prekeys WHERE device_id = ?').get(
        deviceId,
      )?.n ?? 0
    );
  }
}
