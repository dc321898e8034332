// The release manifest a relay serves is a leaf of its key transparency log (issue #16): logged at start-up before
// it is served, logged again before serving when the file changes, one leaf per manifest however many restarts or
// nodes, found by its hash with a proof the crypto library's independent verifier accepts; never confused with an
// account's entry.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import { transparencyKey } from '../src/secrets.js';
import { encodeReleaseKtEntry } from '../src/service/kt-tree.js';
import { KeyTransparency } from '../src/service/transparency.js';
import { MongoStore } from '../src/store/mongo/mongo-store.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { Store } from '../src/store/store.js';
import { api, startRelay, type TestRelay } from './helpers.js';
import { startMongo } from './services.js';

const KEY_ID = 'ab'.repeat(32);
const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-release-log-'));
  dirs.push(dir);
  return dir;
};
const manifestDoc = (n: number): Buffer =>
  Buffer.from(
    JSON.stringify({
      manifest: Buffer.from(`{"version":1,"n":${n}}`).toString('base64url'),
      signature: 'x',
      keyId: KEY_ID,
    }),
  );
const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const fromB64u = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64url'));

/** A built web app: a page and a release manifest. */
function distWith(manifest: Buffer): string {
  const dist = tempDir();
  mkdirSync(join(dist, '.well-known', 'weconnect'), { recursive: true });
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>WeConnect</title>');
  writeFileSync(join(dist, '.well-known', 'weconnect', 'manifest.json'), manifest);
  return dist;
}

/** The release entry of `hashHex` as the relay answers it, its proof checked against the signed checkpoint. */
async function loggedRelease(t: TestRelay, hashHex: string) {
  const key = kt.parseVerifierKey((await api(t.url, 'GET', '/api/kt/checkpoint')).body.verifierKey);
  const res = await api(t.url, 'GET', `/api/kt/releases/${hashHex}`);
  if (res.status !== 200) return { status: res.status, entry: null, size: 0 };
  const cp = kt.openCheckpoint(res.body.checkpoint, key);
  const entry = fromB64u(res.body.leaf.entry);
  const proof = (res.body.leaf.proof as string[]).map(fromB64u);
  expect(kt.verifyInclusion(res.body.leaf.index, cp.size, kt.leafHash(entry), proof, cp.root)).toBe(true);
  return { status: 200, entry: kt.decodeReleaseEntry(entry), raw: entry, size: cp.size };
}

beforeAll(async () => {
  await ready();
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('a relay serving a release manifest', () => {
  const first = manifestDoc(1);
  const dist = distWith(first);
  const dataDir = tempDir();
  const env = { WEB_DIST: dist, DATA_DIR: dataDir, JWT_SECRET: randomBytes(32).toString('base64url') };
  let t: TestRelay;
  beforeAll(async () => {
    t = await startRelay(env);
  });
  afterAll(async () => {
    await t.close();
  });

  it('has logged it at start-up, before anyone fetched it: the entry names the exact bytes and the release key id', async () => {
    const logged = await loggedRelease(t, sha256Hex(first));
    expect(logged.status).toBe(200);
    expect(logged.entry).toEqual({
      kind: 'release',
      keyId: KEY_ID,
      manifestHash: new Uint8Array(createHash('sha256').update(first).digest()),
    });
    expect(logged.size).toBe(1);
    const served = await fetch(`${t.url}/.well-known/weconnect/manifest.json`);
    expect(Buffer.from(await served.arrayBuffer()).equals(first)).toBe(true);
  });

  it('adds no second leaf for the same manifest when restarted on the same store', async () => {
    await t.close();
    t = await startRelay(env);
    const logged = await loggedRelease(t, sha256Hex(first));
    expect(logged.status).toBe(200);
    expect(logged.size).toBe(1);
  });

  it('logs a manifest that changed while it runs before it serves the new bytes', async () => {
    const second = manifestDoc(2);
    expect((await api(t.url, 'GET', `/api/kt/releases/${sha256Hex(second)}`)).status).toBe(404);
    writeFileSync(join(dist, '.well-known', 'weconnect', 'manifest.json'), second);
    const served = Buffer.from(await (await fetch(`${t.url}/.well-known/weconnect/manifest.json`)).arrayBuffer());
    expect(served.equals(second)).toBe(true);
    const logged = await loggedRelease(t, sha256Hex(served));
    expect(logged.status).toBe(200);
    expect(logged.size).toBe(2);
  });

  it('answers 404 for a manifest it never logged and 400 for anything but 64 hex, without sign-in', async () => {
    const unknown = await api(t.url, 'GET', `/api/kt/releases/${sha256Hex(manifestDoc(99))}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    for (const bad of ['ABCD', 'ab'.repeat(31), 'AB'.repeat(32), `${'ab'.repeat(32)}00`]) {
      const res = await api(t.url, 'GET', `/api/kt/releases/${bad}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('never hands a release leaf out as an account entry: the account route refuses its store key, the entry parser refuses its kind', async () => {
    const logged = await loggedRelease(t, sha256Hex(first));
    expect(() => kt.decodeEntry(logged.raw!)).toThrow(/unknown kind/);
    const res = await api(t.url, 'GET', `/api/kt/accounts/release:${sha256Hex(first)}`, { token: 'x' });
    expect(res.status).not.toBe(200);
  });
});

describe('the release entry encoding', () => {
  it('is the same bytes from the relay and from the crypto library, and decodes only from its one canonical form', () => {
    const hash = new Uint8Array(createHash('sha256').update('manifest').digest());
    const relayBytes = encodeReleaseKtEntry(KEY_ID, hash);
    const bytes = kt.encodeReleaseEntry({ kind: 'release', keyId: KEY_ID, manifestHash: hash });
    expect(Buffer.from(bytes).equals(relayBytes)).toBe(true);
    expect(kt.decodeReleaseEntry(bytes)).toEqual({ kind: 'release', keyId: KEY_ID, manifestHash: hash });
    expect(() => kt.decodeReleaseEntry(new Uint8Array([...bytes, 0]))).toThrow(/not canonical/);
    const seq = bytes.slice();
    seq[utf8Length + 4] = 1; // u32 seq must be 0
    expect(() => kt.decodeReleaseEntry(seq)).toThrow(/not canonical/);
    const account = kt.encodeEntry({ kind: 'deleted', seq: 0, userId: 'u'.repeat(22) });
    expect(() => kt.decodeReleaseEntry(account)).toThrow(/not a release entry/);
    expect(() => kt.decodeEntry(bytes)).toThrow(/unknown kind/);
  });
});

const utf8Length = Buffer.byteLength(kt.ENTRY_DOMAIN);
const started = await startMongo();
const mongo = 'service' in started ? started.service : null;
afterAll(async () => {
  await mongo?.stop();
});

const backends: [string, (() => Promise<Store>) | null][] = [
  ['SQLite', () => Promise.resolve(new SqliteStore({ file: join(tempDir(), 'weconnect.db') }))],
  [
    'MongoDB (FerretDB)',
    mongo
      ? () =>
          MongoStore.open({
            uri: mongo.url,
            dbName: `release_${randomBytes(6).toString('hex')}`,
            retentionDays: 30,
            ttlIndexes: false,
          })
      : null,
  ],
];

describe.each(backends)('release entries on %s', (_name, open) => {
  it.skipIf(!open)('two nodes logging the same manifest at once append one leaf and both answer it', async () => {
    const store = await open!();
    const signer = transparencyKey(randomBytes(32).toString('base64url'));
    const nodeA = new KeyTransparency(store, signer);
    const nodeB = new KeyTransparency(store, signer);
    const bytes = manifestDoc(7);
    const [a, b] = await Promise.all([nodeA.logRelease(bytes), nodeB.logRelease(bytes), nodeA.logRelease(bytes)]);
    expect(a.index).toBe(0);
    expect(b.index).toBe(0);
    expect(await store.ktSize()).toBe(1);
    const other = await nodeB.logRelease(manifestDoc(8));
    expect(other.index).toBe(1);
    expect(await store.ktSize()).toBe(2);
    const found = await nodeA.releaseOf(sha256Hex(bytes), 2);
    expect(found?.leaf.entry).toEqual(a.entry);
    if (store instanceof MongoStore) await store.dangerousTestOnlyDropDatabase();
    await store.close();
  });

  // A node that finds a leaf another node left half-appended finishes it (KeyTransparency.append), possibly while
  // the appending node is still finishing it: both upsert the same tree nodes at once.
  it.skipIf(!open)(
    'finishing one leaf from three nodes at once stores each tree node once and fails none',
    async () => {
      const store = await open!();
      const rounds = 20;
      const width = 8;
      for (let round = 0; round < rounds; round++) {
        const leaf = { index: round, userId: `u${round}`, seq: 0, entry: randomBytes(40) };
        const nodes = Array.from({ length: width }, (_, i) => ({
          level: 1,
          index: round * width + i,
          hash: randomBytes(32),
        }));
        expect(await store.ktAppend(leaf, [])).toBe('appended');
        await Promise.all(Array.from({ length: 3 }, () => store.ktFinish(round + 1, nodes)));
      }
      const keys = Array.from({ length: rounds * width }, (_, index) => ({ level: 1, index }));
      expect(await store.ktNodes(keys)).toHaveLength(rounds * width);
      expect(await store.ktSize()).toBe(rounds);
      if (store instanceof MongoStore) await store.dangerousTestOnlyDropDatabase();
      await store.close();
    },
  );
});
