// Witness cosignatures kept in the store and witnessed proofs (issue #16): a cosignature posted to the relay is
// served after a restart and by another node on the same store; `?witnessed=<key ids>` answers an account's latest
// entry against the newest checkpoint those witnesses cosigned, or 503 kt_unwitnessed (with Retry-After) while that
// checkpoint does not hold the account's latest entry — never a proof of an older entry.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import { cosign, loadWitness, submitCosignature, type Witness } from '../scripts/kt-audit.js';
import { api, signIn, signUp, startRelay, type TestAccount, type TestRelay } from './helpers.js';

let dir: string;
let dataDir: string;
let jwtSecret: string;
let one: Witness;
let two: Witness;
let relayKey: kt.VerifierKey;
const relays: TestRelay[] = [];

const keyOf = (w: Witness): string => kt.formatVerifierKey(w.name, kt.SIG_COSIGNATURE, w.publicKey);
const idOf = (w: Witness): string => Buffer.from(kt.keyIdOf(w.name, kt.SIG_COSIGNATURE, w.publicKey)).toString('hex');
const now = () => Math.floor(Date.now() / 1000);

/** A relay node on the shared data directory (one SQLite file, one checkpoint key). */
async function node(): Promise<TestRelay> {
  const t = await startRelay({ DATA_DIR: dataDir, JWT_SECRET: jwtSecret, KT_WITNESSES: `${keyOf(one)},${keyOf(two)}` });
  relays.push(t);
  return t;
}

async function latestNote(url: string): Promise<string> {
  return (await api(url, 'GET', '/api/kt/checkpoint')).body.checkpoint as string;
}

/** The witness cosigns the relay's latest checkpoint and posts it; resolves to the size it cosigned. */
async function cosignLatest(url: string, w: Witness): Promise<number> {
  const note = await latestNote(url);
  await submitCosignature(url, note + cosign(w, kt.noteBody(note), now()));
  return kt.parseCheckpointBody(kt.noteBody(note)).size;
}

const sizeOf = (note: string): number => kt.openCheckpoint(note, relayKey).size;

beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'kt-witness-store-'));
  dataDir = join(dir, 'data');
  jwtSecret = randomBytes(32).toString('base64url');
  one = loadWitness(join(dir, 'one.pem'), 'one.example');
  two = loadWitness(join(dir, 'two.pem'), 'two.example');
  const first = await node();
  relayKey = kt.parseVerifierKey((await api(first.url, 'GET', '/api/kt/checkpoint')).body.verifierKey);
});
afterAll(async () => {
  for (const t of relays) await t.close().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe('cosignatures in the store', () => {
  it('are served again after the relay restarts on the same data', async () => {
    const before = relays[0]!;
    await signUp(before.url);
    const size = await cosignLatest(before.url, one);
    expect(kt.verifyCosignature(await latestNote(before.url), kt.parseVerifierKey(keyOf(one)))).not.toBeNull();
    await before.close();
    relays.splice(0, 1);
    const after = await node();
    const served = await latestNote(after.url);
    expect(sizeOf(served)).toBe(size);
    expect(kt.verifyCosignature(served, kt.parseVerifierKey(keyOf(one)))).not.toBeNull();
  });

  it('posted to one node are served by another node on the same store', async () => {
    const a = relays[0]!;
    const b = await node();
    await signUp(a.url);
    const note = await latestNote(b.url);
    // Baseline: the grown log's checkpoint carries no cosignature on either node.
    expect(kt.verifyCosignature(note, kt.parseVerifierKey(keyOf(two)))).toBeNull();
    await submitCosignature(a.url, note + cosign(two, kt.noteBody(note), now()));
    const fromB = await latestNote(b.url);
    expect(fromB).toBe(await latestNote(a.url));
    expect(kt.verifyCosignature(fromB, kt.parseVerifierKey(keyOf(two)))).not.toBeNull();
    await b.close();
    relays.splice(relays.indexOf(b), 1);
  });
});

describe('witnessed proofs (?witnessed=)', () => {
  let url: string;
  let alice: TestAccount;
  let bob: TestAccount;

  beforeAll(async () => {
    url = relays[0]!.url;
    alice = await signUp(url);
    bob = await signUp(url);
  });

  const account = (who: TestAccount, of: TestAccount, query: string) =>
    api(url, 'GET', `/api/kt/accounts/${of.userId}${query}`, { token: who.accessToken });

  it("answer an account's latest entry in the newest checkpoint the witness cosigned, with its cosignature", async () => {
    const size = await cosignLatest(url, one);
    const res = await account(alice, bob, `?witnessed=${idOf(one)}`);
    expect(res.status).toBe(200);
    const cp = kt.openCheckpoint(res.body.checkpoint, relayKey);
    expect(cp.size).toBe(size);
    expect(kt.verifyCosignature(res.body.checkpoint, kt.parseVerifierKey(keyOf(one)))).not.toBeNull();
    const entry = Buffer.from(res.body.leaf.entry, 'base64url');
    const proof = (res.body.leaf.proof as string[]).map((h) => Buffer.from(h, 'base64url'));
    expect(kt.verifyInclusion(res.body.leaf.index, cp.size, kt.leafHash(entry), proof, cp.root)).toBe(true);
    expect(kt.decodeEntry(entry)).toMatchObject({ kind: 'account', userId: bob.userId });
  });

  it("answer 503 kt_unwitnessed with Retry-After, never an older entry, once the account's newest entry is past it", async () => {
    const cosigned = await cosignLatest(url, one);
    // Baseline: Alice's latest entry is in the cosigned checkpoint.
    expect((await account(bob, alice, `?witnessed=${idOf(one)}`)).status).toBe(200);
    await signIn(url, alice); // a new device: a new entry past the cosigned checkpoint
    const res = await account(bob, alice, `?witnessed=${idOf(one)}`);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('kt_unwitnessed');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    // Bob's entry did not change: his proof still comes from the older witnessed checkpoint, cosignature and all.
    const other = await account(alice, bob, `?witnessed=${idOf(one)}`);
    expect(other.status).toBe(200);
    expect(sizeOf(other.body.checkpoint)).toBe(cosigned);
    expect(sizeOf(other.body.checkpoint)).toBeLessThan(sizeOf(await latestNote(url)));
    // Without ?witnessed= the latest (uncosigned) checkpoint answers, as before.
    expect((await account(bob, alice, '')).status).toBe(200);
    await cosignLatest(url, one);
    expect((await account(bob, alice, `?witnessed=${idOf(one)}`)).status).toBe(200);
  });

  it('need every witness asked for: the newest checkpoint both cosigned, or 503 when there is none', async () => {
    await signUp(url);
    const both = await cosignLatest(url, one);
    await cosignLatest(url, two);
    await signUp(url);
    const onlyOne = await cosignLatest(url, one);
    expect(onlyOne).toBeGreaterThan(both);
    const res = await account(alice, bob, `?witnessed=${idOf(one)},${idOf(two)}`);
    expect(res.status).toBe(200);
    expect(sizeOf(res.body.checkpoint)).toBe(both);
    for (const w of [one, two]) {
      expect(kt.verifyCosignature(res.body.checkpoint, kt.parseVerifierKey(keyOf(w)))).not.toBeNull();
    }
    expect(sizeOf((await account(alice, bob, `?witnessed=${idOf(one)}`)).body.checkpoint)).toBe(onlyOne);
    await signIn(url, bob);
    await cosignLatest(url, one);
    const unwitnessed = await account(alice, bob, `?witnessed=${idOf(one)},${idOf(two)}`);
    expect([unwitnessed.status, unwitnessed.body.error.code]).toEqual([503, 'kt_unwitnessed']);
  });

  it("give one's own entries only up to the newest witnessed checkpoint", async () => {
    const cosigned = await cosignLatest(url, one);
    await signIn(url, alice);
    const res = await api(url, 'GET', `/api/kt/self/entries?since=0&witnessed=${idOf(one)}`, {
      token: alice.accessToken,
    });
    expect(res.status).toBe(200);
    expect(sizeOf(res.body.checkpoint)).toBe(cosigned);
    expect((res.body.entries as { index: number }[]).every((l) => l.index < cosigned)).toBe(true);
    const all = await api(url, 'GET', '/api/kt/self/entries?since=0', { token: alice.accessToken });
    expect(all.body.entries.length).toBe(res.body.entries.length + 1);
  });

  it('refuse bad input (400 invalid_input) and answer only signed-in users (401)', async () => {
    const me = { token: alice.accessToken };
    for (const query of [
      '?witnessed=zz',
      '?witnessed=',
      `?witnessed=${idOf(one)},`,
      '?witnessed=00000000',
      `?witnessed=${idOf(one)}&extra=1`,
    ]) {
      const res = await api(url, 'GET', `/api/kt/accounts/${bob.userId}${query}`, me);
      expect([query, res.status, res.body.error?.code]).toEqual([query, 400, 'invalid_input']);
    }
    const self = await api(url, 'GET', '/api/kt/self/entries?since=0&witnessed=00000000', me);
    expect(self.status).toBe(400);
    const anon = await api(url, 'GET', `/api/kt/accounts/${bob.userId}?witnessed=${idOf(one)}`);
    expect(anon.status).toBe(401);
  });
});

describe('a relay that keeps no witness', () => {
  it('answers ?witnessed= with 400 invalid_input: it takes no cosignature of that key', async () => {
    const plain = await startRelay();
    try {
      const user = await signUp(plain.url);
      const res = await api(plain.url, 'GET', `/api/kt/accounts/${user.userId}?witnessed=${idOf(one)}`, {
        token: user.accessToken,
      });
      expect([res.status, res.body.error.code]).toEqual([400, 'invalid_input']);
    } finally {
      await plain.close();
    }
  });
});
