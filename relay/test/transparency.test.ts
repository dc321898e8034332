// The key transparency log (issue #16) as the relay keeps it: an entry appended on every change to an account's
// identity key or devices (sign-up, a new device, a removed device, an operator's removal, account deletion) and
// on nothing else, checkpoints signed with the relay's key, and proofs that the crypto library's independent
// verifier accepts; bad input and authorization of the routes.
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The crypto library's verifier, by path: the package's index also holds browser-only code (WebCrypto types) that
// the relay's Node-only type check does not know.
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import { api, signIn, signUp, startRelay, uploadKeys, type TestAccount } from './helpers.js';
import type { TestRelay } from './helpers.js';

let t: TestRelay;
let key: kt.VerifierKey;
beforeAll(async () => {
  await ready();
  t = await startRelay();
  key = kt.parseVerifierKey((await api(t.url, 'GET', '/api/kt/checkpoint')).body.verifierKey);
});
afterAll(async () => {
  await t.close();
});

const fromB64u = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64url'));

async function checkpoint(): Promise<kt.Checkpoint> {
  const res = await api(t.url, 'GET', '/api/kt/checkpoint');
  expect(res.status).toBe(200);
  return kt.openCheckpoint(res.body.checkpoint, key);
}

/** The account's latest logged entry, its inclusion proof checked against the signed checkpoint. */
async function latestEntry(as: TestAccount, userId = as.userId): Promise<kt.DirectoryEntry & { index: number }> {
  const res = await api(t.url, 'GET', `/api/kt/accounts/${userId}`, { token: as.accessToken });
  expect(res.status).toBe(200);
  const cp = kt.openCheckpoint(res.body.checkpoint, key);
  const entry = fromB64u(res.body.leaf.entry);
  const proof = (res.body.leaf.proof as string[]).map(fromB64u);
  expect(kt.verifyInclusion(res.body.leaf.index, cp.size, kt.leafHash(entry), proof, cp.root)).toBe(true);
  return { ...kt.decodeEntry(entry), index: res.body.leaf.index as number };
}

async function ownEntries(as: TestAccount, since = 0): Promise<kt.DirectoryEntry[]> {
  const res = await api(t.url, 'GET', `/api/kt/self/entries?since=${since}`, { token: as.accessToken });
  expect(res.status).toBe(200);
  const cp = kt.openCheckpoint(res.body.checkpoint, key);
  return (res.body.entries as { index: number; entry: string; proof: string[] }[]).map((e) => {
    const bytes = fromB64u(e.entry);
    expect(kt.verifyInclusion(e.index, cp.size, kt.leafHash(bytes), e.proof.map(fromB64u), cp.root)).toBe(true);
    return kt.decodeEntry(bytes);
  });
}

describe('appending to the log', () => {
  it('logs a new account with its username, identity key and first device, in a signed checkpoint', async () => {
    const alice = await signUp(t.url);
    const entry = await latestEntry(alice);
    expect(entry).toMatchObject({ kind: 'account', seq: 0, userId: alice.userId, username: alice.username });
    if (entry.kind !== 'account') throw new Error('not an account entry');
    expect(Buffer.from(entry.identityKey).equals(alice.identity.publicKey)).toBe(true);
    expect(entry.deviceIds).toEqual([alice.deviceId]);
  });

  it('appends when a device is added and when it is removed, and not for a sign-in on a known device or prekeys', async () => {
    const bob = await signUp(t.url);
    const second = await signIn(t.url, bob);
    let entry = await latestEntry(bob);
    expect(entry).toMatchObject({ seq: 1, deviceIds: [bob.deviceId, second.deviceId].sort() });
    const before = (await checkpoint()).size;
    await signIn(t.url, bob, second.deviceId);
    await uploadKeys(t.url, bob, second);
    expect((await checkpoint()).size).toBe(before);
    const removed = await api(t.url, 'DELETE', `/api/devices/${second.deviceId}`, { token: bob.accessToken });
    expect(removed.status).toBe(204);
    entry = await latestEntry(bob);
    expect(entry).toMatchObject({ seq: 2, deviceIds: [bob.deviceId] });
    expect((await ownEntries(bob)).map((e) => e.seq)).toEqual([0, 1, 2]);
  });

  it('appends when an operator removes a device, and a tombstone when the account is deleted, then erases it', async () => {
    const carol = await signUp(t.url);
    const dave = await signUp(t.url);
    const second = await signIn(t.url, carol);
    expect(await t.relay.store.deleteDevice(second.deviceId)).not.toBeNull();
    expect(await latestEntry(dave, carol.userId)).toMatchObject({ seq: 2, deviceIds: [carol.deviceId] });
    const res = await api(t.url, 'DELETE', '/api/accounts/self', {
      token: carol.accessToken,
      body: { authKey: carol.authKey },
    });
    expect(res.status).toBe(204);
    // A tombstone was appended, then every entry of the account erased: only their hashes stay in the tree.
    const after = await api(t.url, 'GET', `/api/kt/accounts/${carol.userId}`, { token: dave.accessToken });
    expect(after.status).toBe(404);
    const db = (t.relay.store as unknown as { db: Database.Database }).db;
    const rows = db.prepare("SELECT * FROM kt_leaves WHERE user_id = ? OR hex(entry) LIKE '%' || hex(?) || '%'");
    expect(rows.all(carol.userId, carol.userId)).toEqual([]);
    const erased = db.prepare("SELECT idx FROM kt_leaves WHERE user_id LIKE '~%' ORDER BY idx DESC LIMIT 1").get() as {
      idx: number;
    };
    expect(erased.idx).toBe((await checkpoint()).size - 1);
  });

  it('logs every one of many concurrent changes exactly once, in a tree whose every old checkpoint it extends', async () => {
    const first = await checkpoint();
    const people = await Promise.all(Array.from({ length: 12 }, () => signUp(t.url)));
    await Promise.all(people.map((p) => signIn(t.url, p)));
    const last = await checkpoint();
    expect(last.size).toBe(first.size + 24);
    for (const p of people) expect((await ownEntries(p)).map((e) => e.seq)).toEqual([0, 1]);
    const res = await api(t.url, 'GET', `/api/kt/consistency?from=${first.size}&to=${last.size}`);
    expect(res.status).toBe(200);
    const proof = (res.body.proof as string[]).map(fromB64u);
    expect(kt.verifyConsistency(first.size, last.size, first.root, last.root, proof)).toBe(true);
  });
});

describe('proofs', () => {
  it('proves consistency between every pair of sizes, and every leaf is included at every later size', async () => {
    const roots: kt.Checkpoint[] = [await checkpoint()];
    for (let i = 0; i < 5; i += 1) {
      await signUp(t.url);
      roots.push(await checkpoint());
    }
    for (const a of roots) {
      for (const b of roots) {
        if (a.size > b.size) continue;
        const res = await api(t.url, 'GET', `/api/kt/consistency?from=${a.size}&to=${b.size}`);
        const proof = (res.body.proof as string[]).map(fromB64u);
        expect(kt.verifyConsistency(a.size, b.size, a.root, b.root, proof)).toBe(true);
      }
    }
  });

  it('keeps proofs logarithmic: an inclusion proof has at most ⌈log2 n⌉ hashes', async () => {
    const erin = await signUp(t.url);
    const res = await api(t.url, 'GET', `/api/kt/accounts/${erin.userId}`, { token: erin.accessToken });
    const cp = kt.openCheckpoint(res.body.checkpoint, key);
    expect(res.body.leaf.proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(cp.size)));
  });
});

describe('routes: bad input and authorization', () => {
  it('answers the checkpoint and consistency proofs without sign-in, but account entries only to signed-in users', async () => {
    const frank = await signUp(t.url);
    expect((await api(t.url, 'GET', '/api/kt/checkpoint')).status).toBe(200);
    expect((await api(t.url, 'GET', '/api/kt/consistency?from=0&to=1')).status).toBe(200);
    expect((await api(t.url, 'GET', `/api/kt/accounts/${frank.userId}`)).status).toBe(401);
    expect((await api(t.url, 'GET', '/api/kt/self/entries?since=0')).status).toBe(401);
  });

  it('gives each account only its own entries on the self route', async () => {
    const gina = await signUp(t.url);
    const hal = await signUp(t.url);
    await signIn(t.url, hal);
    expect((await ownEntries(gina)).map((e) => e.userId)).toEqual([gina.userId]);
    const since = (await latestEntry(hal)).index;
    expect((await ownEntries(hal, since)).map((e) => e.seq)).toEqual([1]);
  });

  it('refuses bad sizes, malformed ids and unknown accounts with protocol codes', async () => {
    const ivy = await signUp(t.url);
    const size = (await checkpoint()).size;
    for (const q of [
      'from=2&to=1',
      `from=0&to=${size + 1}`,
      'from=-1&to=1',
      'from=a&to=1',
      'from=0',
      'from=0&to=1&x=1',
    ]) {
      const res = await api(t.url, 'GET', `/api/kt/consistency?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    const bad = await api(t.url, 'GET', '/api/kt/accounts/not-an-id', { token: ivy.accessToken });
    expect(bad.status).toBe(400);
    const unknown = await api(t.url, 'GET', `/api/kt/accounts/${'A'.repeat(22)}`, { token: ivy.accessToken });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    expect((await api(t.url, 'GET', '/api/kt/self/entries?since=x', { token: ivy.accessToken })).status).toBe(400);
  });
});

describe("the relay's signing key", () => {
  it('is the same after a restart with the same secret, so pinned clients keep verifying', async () => {
    const again = await startRelay({ JWT_SECRET: t.jwtSecret });
    try {
      const res = await api(again.url, 'GET', '/api/kt/checkpoint');
      expect(res.body.verifierKey).toBe(kt.formatVerifierKey(key.name, kt.SIG_ED25519, key.publicKey));
    } finally {
      await again.close();
    }
  });
});

describe('accounts made before the log existed', () => {
  it('are logged on first request, so an upgraded relay needs no migration pass', async () => {
    const old = await signUp(t.url);
    const db = (t.relay.store as unknown as { db: Database.Database }).db;
    // The account as a relay before issue #16 left it: no entry. (The size check then sees a gap: rebuild nodes.)
    const before = (await checkpoint()).size;
    expect((await latestEntry(old)).index).toBe(before - 1);
    db.prepare('DELETE FROM kt_leaves WHERE idx = ?').run(before - 1);
    db.prepare('DELETE FROM kt_nodes WHERE level = 0 AND idx = ?').run(before - 1);
    const entry = await latestEntry(old);
    expect(entry).toMatchObject({ kind: 'account', seq: 0, userId: old.userId });
  });
});
