// Witness cosignatures kept in the store and witnessed proofs (issue #16): a cosignature posted to the relay is
// served after a restart and by another node on the same store; `?witnessed=<key ids>` answers an account's latest
// entry against the newest checkpoint those witnesses cosigned, or 503 kt_unwitnessed (with Retry-After) while that
// checkpoint does not hold the account's latest entry — never a proof of an older entry.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import { auditOnce, cosign, loadWitness, submitCosignature, type Witness } from '../scripts/kt-audit.js';
import { api, signIn, signUp, sleep, startRelay, waitFor, type TestAccount, type TestRelay } from './helpers.js';

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

/** A front for the relay that can be down (every request answered 502), as a relay restarting looks to a witness. */
async function front(target: () => string): Promise<{ url: string; down: boolean; server: Server }> {
  const state = { url: '', down: true, server: createServer() };
  const body = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  state.server.on('request', (req, res) => {
    void (async () => {
      if (state.down) {
        res.writeHead(502).end();
        return;
      }
      const sent = await body(req);
      const answer = await fetch(`${target()}${req.url ?? '/'}`, {
        method: req.method,
        headers: { 'content-type': 'application/json' },
        ...(sent.length > 0 ? { body: sent } : {}),
      });
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text());
    })();
  });
  await new Promise<void>((r) => state.server.listen(0, '127.0.0.1', r));
  const address = state.server.address() as { port: number };
  state.url = `http://127.0.0.1:${address.port}`;
  return state;
}

/** `kt-audit` as the operator runs it, following `url`; resolves the child and its output so far. */
function follow(url: string, state: string) {
  const args = ['--conditions=source', 'relay/scripts/kt-audit.ts', url, '--state', state];
  args.push('--witness-key', join(dir, 'one.pem'), '--witness-name', one.name, '--submit', '--follow', '0.3');
  const child = spawn('node_modules/.bin/tsx', args, { cwd: join(import.meta.dirname, '../..') });
  const out = { stdout: '', stderr: '', code: null as number | null };
  child.stdout.on('data', (c: Buffer) => (out.stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (out.stderr += c.toString('utf8')));
  child.on('exit', (code) => (out.code = code));
  return { child, out };
}

describe('the witness (kt-audit)', () => {
  it('submits only a checkpoint the relay does not already serve with its cosignature', async () => {
    const url = relays[0]!.url;
    await signUp(url);
    expect((await auditOnce(url, null, { witness: one, submit: true })).round.submitted).toBe(true);
    const again = await auditOnce(url, null, { witness: one, submit: true });
    expect(again.round.submitted).toBe(false);
    expect(kt.verifyCosignature(again.round.cosigned!, kt.parseVerifierKey(keyOf(one)))).not.toBeNull();
    await signUp(url);
    expect((await auditOnce(url, null, { witness: one, submit: true })).round.submitted).toBe(true);
  });

  it('with --follow, waits out a relay that does not answer and cosigns once it is back', async () => {
    const url = relays[0]!.url;
    const gate = await front(() => url);
    const { child, out } = follow(gate.url, join(dir, 'follow-a.json'));
    try {
      await waitFor(() => out.stderr.split('relay unreachable').length > 2, 20_000);
      expect(out.code).toBeNull();
      await signUp(url);
      expect(kt.verifyCosignature(await latestNote(url), kt.parseVerifierKey(keyOf(one)))).toBeNull();
      gate.down = false;
      const deadline = Date.now() + 20_000;
      while (kt.verifyCosignature(await latestNote(url), kt.parseVerifierKey(keyOf(one))) === null) {
        if (Date.now() > deadline) throw new Error('timed out waiting for the cosignature');
        await sleep(50);
      }
      expect(out.stderr).not.toMatch(/AUDIT FAILED/);
    } finally {
      child.kill();
      gate.server.close();
    }
  }, 40_000);

  it('with --follow, still stops loudly (exit 1) on a history that changed', async () => {
    const url = relays[0]!.url;
    const { state } = await auditOnce(url, null);
    const seen = kt.parseCheckpointBody(kt.noteBody(state.checkpoint!));
    const other = `${seen.origin}\n${seen.size}\n${Buffer.alloc(32, 9).toString('base64')}\n\n\u2014 x AAAAAAA=\n`;
    await signUp(url);
    const file = join(dir, 'follow-b.json');
    writeFileSync(file, JSON.stringify({ ...state, checkpoint: other }));
    const { out } = follow(url, file);
    await waitFor(() => out.code !== null, 20_000);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/KEY TRANSPARENCY AUDIT FAILED.*history changed/);
  }, 30_000);
});
