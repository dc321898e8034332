// Starts the real relay in-process for web tests: createRelay on port 0 with a throw-away data directory.
// (The relay's own test helper may offer the same; this keeps the web suite on the relay's public entry points.)
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../relay/src/config';
import { loadCrypto } from '../../src/client/crypto-loader';
import { createRelay } from '../../../relay/src/server';

export interface TestRelay {
  url: string;
  dataDir: string;
  /** Stops the relay (the data stays) — as an outage looks to clients. */
  stop(): Promise<void>;
  /**
   * Test-only: revokes every session of the user at the relay and drops their sockets, as the operator's `revoke` (or
   * refresh-token reuse detection) does on a running relay. Returns how many session families ended.
   */
  dangerousTestOnlyRevokeSessions(username: string): Promise<number>;
  /** Starts it again on the same port and data. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `env` goes through the relay's own config parser; `overrides` then replace parsed values the parser would refuse
 * (e.g. a 2-second access-token lifetime, below the 10-second minimum an operator may set).
 */
export async function startTestRelay(
  env: Record<string, string> = {},
  overrides: Partial<ReturnType<typeof loadConfig>> = {},
): Promise<TestRelay> {
  const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-web-test-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    BCRYPT_COST: '4', // the relay's default 12 costs ~0.5 s per sign-in: irrelevant to what these tests check
    LOG_LEVEL: 'silent',
    SQLITE_SYNCHRONOUS: 'NORMAL',
    // Every test client comes from 127.0.0.1: the relay's per-address limits are raised.
    SIGNUP_RATE_BURST: '100000',
    SIGNIN_ADDRESS_MAX_FAILURES: '100000',
    BCRYPT_QUEUE_PER_ADDRESS: '1000',
    ...env,
  });
  const full = { ...config, ...overrides };
  let relay: Awaited<ReturnType<typeof createRelay>> | null = await createRelay(full);
  const { url } = await relay.listen(0, '127.0.0.1');
  const port = Number(new URL(url).port);
  return {
    // Chromium treats http://localhost as a secure context (IndexedDB, WebCrypto, Web Locks).
    url: url.replace('127.0.0.1', 'localhost'),
    dataDir,
    async stop() {
      await relay?.close();
      relay = null;
    },
    async dangerousTestOnlyRevokeSessions(username: string) {
      if (!relay) throw new Error('the relay is stopped');
      const user = await relay.store.findUserByUsername(username.toLowerCase());
      if (!user) throw new Error(`no user ${username}`);
      const families = await relay.store.revokeUserSessions(user.userId);
      // The relay's socket layer keeps one room per session family (relay/src/socket.ts); revocation empties it.
      for (const f of families) relay.io.in(`family:${f}`).disconnectSockets(true);
      return families.length;
    },
    async restart() {
      relay = await createRelay(full);
      await relay.listen(port, '127.0.0.1');
    },
    async close() {
      await relay?.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Test-only, at the relay's storage level (there is no protocol for it): the account's identity key is replaced by a
 * new one and its devices by one new device with prekeys signed by that key — what a contact who reinstalled
 * WeConnect with new keys looks like to everyone else. Writes the relay's SQLite file directly (WAL allows it).
 */
export async function dangerousTestOnlyReplaceIdentity(
  relay: TestRelay,
  userId: string,
): Promise<{ deviceId: string }> {
  const { default: Database } = await import('better-sqlite3');
  const c = await loadCrypto();
  const keys = c.createAccountKeys({ oneTimePrekeyCount: 5 });
  const spk = keys.upload.signedPrekey;
  const deviceId = c.toBase64Url(c.randomBytes(16));
  const db = new Database(join(relay.dataDir, 'weconnect.db'));
  try {
    db.pragma('foreign_keys = ON');
    db.transaction(() => {
      db.prepare('UPDATE users SET identity_key = ? WHERE user_id = ?').run(
        Buffer.from(c.fromBase64Url(keys.upload.identityKey)),
        userId,
      );
      db.prepare('DELETE FROM devices WHERE user_id = ?').run(userId);
      db.prepare(
        `INSERT INTO devices (device_id, user_id, signed_prekey_id, signed_prekey, signed_prekey_signature, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(
        deviceId,
        userId,
        spk.keyId,
        Buffer.from(c.fromBase64Url(spk.publicKey)),
        Buffer.from(c.fromBase64Url(spk.signature)),
        Date.now(),
      );
      const otk = db.prepare('INSERT INTO one_time_prekeys (device_id, key_id, public_key) VALUES (?, ?, ?)');
      for (const k of keys.upload.oneTimePrekeys) otk.run(deviceId, k.keyId, Buffer.from(c.fromBase64Url(k.publicKey)));
      // The new identity's last-resort KEM prekey: engines start only post-quantum sessions.
      const [kem] = c.generateKemPrekeys(keys.identity, 1, 1, true);
      db.prepare(
        'INSERT INTO kem_prekeys (device_id, last_resort, key_id, public_key, signature) VALUES (?, 1, ?, ?, ?)',
      ).run(deviceId, kem!.keyId, Buffer.from(kem!.publicKey), Buffer.from(kem!.signature));
    })();
  } finally {
    db.close();
  }
  // The change is logged as the relay logs every key change (issue #16): a reinstall is public, not hidden.
  const { SqliteStore } = await import('../../../relay/src/store/sqlite/sqlite-store');
  const { KeyTransparency } = await import('../../../relay/src/service/transparency');
  const { transparencyKey } = await import('../../../relay/src/secrets');
  const { readFileSync } = await import('node:fs');
  const store = new SqliteStore({ file: join(relay.dataDir, 'weconnect.db') });
  try {
    const secret = readFileSync(join(relay.dataDir, 'jwt-secret'), 'utf8').trim();
    await new KeyTransparency(store, transparencyKey(secret)).record(userId);
  } finally {
    await store.close();
  }
  return { deviceId };
}

/** Unused one-time prekeys per device, read from the relay's SQLite file (what bundles have not handed out yet). */
export function oneTimePrekeyCounts(relay: TestRelay): Map<string, number> {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare('SELECT device_id AS deviceId, count(*) AS n FROM one_time_prekeys GROUP BY device_id')
      .all() as { deviceId: string; n: number }[];
    return new Map(rows.map((r) => [r.deviceId, r.n]));
  } finally {
    db.close();
  }
}

/** Entries waiting in a device's mailbox, read from the relay's SQLite file (what it has not acknowledged yet). */
export function mailboxEntries(relay: TestRelay, deviceId: string): number {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM mailbox WHERE device_id = ?').get(deviceId) as { n: number }).n;
  } finally {
    db.close();
  }
}
