// Witness cosignatures on the key transparency log (issue #16): the relay takes a cosignature of its own latest
// checkpoint from a witness the operator configured (KT_WITNESSES) and serves it in every answer that carries that
// checkpoint; it refuses an unknown witness (403 forbidden), a bad signature and a body it never signed (400
// invalid_input), serving nothing of them, and keeps answering. The cosignatures are checked with the crypto
// library's verifier, what clients use.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import { auditOnce, cosign, loadWitness, submitCosignature, type Witness } from '../scripts/kt-audit.js';
import { api, signUp, startRelay, type TestAccount, type TestRelay } from './helpers.js';

let t: TestRelay;
let dir: string;
let witness: Witness;
let stranger: Witness;
let wkey: kt.VerifierKey;
let relayKey: kt.VerifierKey;
let alice: TestAccount;

const keyOf = (w: Witness): string => kt.formatVerifierKey(w.name, kt.SIG_COSIGNATURE, w.publicKey);

beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'kt-witness-'));
  witness = loadWitness(join(dir, 'witness.pem'), 'witness.example');
  stranger = loadWitness(join(dir, 'stranger.pem'), 'stranger.example');
  wkey = kt.parseVerifierKey(keyOf(witness));
  t = await startRelay({ KT_WITNESSES: keyOf(witness) });
  relayKey = kt.parseVerifierKey((await api(t.url, 'GET', '/api/kt/checkpoint')).body.verifierKey);
  alice = await signUp(t.url);
});
afterAll(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Every checkpoint note the relay serves now: the plain one, in an account's entry, in one's own entries. */
async function servedNotes(): Promise<string[]> {
  const plain = await api(t.url, 'GET', '/api/kt/checkpoint');
  const account = await api(t.url, 'GET', `/api/kt/accounts/${alice.userId}`, { token: alice.accessToken });
  const own = await api(t.url, 'GET', '/api/kt/self/entries?since=0', { token: alice.accessToken });
  expect([plain.status, account.status, own.status]).toEqual([200, 200, 200]);
  return [plain.body.checkpoint, account.body.checkpoint, own.body.checkpoint] as string[];
}

async function latestNote(): Promise<string> {
  return (await api(t.url, 'GET', '/api/kt/checkpoint')).body.checkpoint as string;
}

const post = (checkpoint: unknown) => api(t.url, 'POST', '/api/kt/cosignatures', { body: { checkpoint } });
const now = () => Math.floor(Date.now() / 1000);

describe('a configured witness', () => {
  it('has its valid cosignature of the latest checkpoint served in every answer that carries the checkpoint', async () => {
    for (const note of await servedNotes()) expect(kt.verifyCosignature(note, wkey)).toBeNull();
    const { round } = await auditOnce(t.url, null, { witness, now: () => 1_800_000_000_000, submit: true });
    const notes = await servedNotes();
    for (const note of notes) {
      expect(kt.verifyCosignature(note, wkey)).toBe(1_800_000_000);
      expect(kt.openCheckpoint(note, relayKey).size).toBe(round.size);
      expect(note).toBe(round.cosigned);
    }
  });

  it('is served again only once it cosigns the new checkpoint when the log grows', async () => {
    await auditOnce(t.url, null, { witness, submit: true });
    await signUp(t.url);
    const grown = await latestNote();
    expect(kt.verifyCosignature(grown, wkey)).toBeNull();
    // Only the relay's own signature: no stale cosignature of the previous checkpoint rides along.
    expect(kt.splitNote(grown).signatures).toHaveLength(1);
    const answer = await submitCosignature(t.url, grown + cosign(witness, kt.noteBody(grown), now()));
    expect(kt.verifyCosignature(answer.checkpoint, wkey)).not.toBeNull();
    expect(kt.verifyCosignature(await latestNote(), wkey)).not.toBeNull();
  });

  it('is submitted by `npm run kt-audit -- <relay> --witness-key … --witness-name … --submit`', async () => {
    await signUp(t.url);
    expect(kt.verifyCosignature(await latestNote(), wkey)).toBeNull();
    const args = ['--conditions=source', 'relay/scripts/kt-audit.ts', t.url, '--state', join(dir, 'state.json')];
    args.push('--witness-key', join(dir, 'witness.pem'), '--witness-name', witness.name, '--submit');
    const out = await new Promise<string>((resolve, reject) => {
      execFile('node_modules/.bin/tsx', args, { cwd: join(import.meta.dirname, '../..') }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      );
    });
    expect(out).toMatch(/cosignature submitted to the relay/);
    expect(kt.verifyCosignature(await latestNote(), wkey)).not.toBeNull();
  }, 30_000);

  it("keeps the newest cosigned checkpoint when a witness's cosignature of an older one arrives late", async () => {
    const old = await latestNote();
    await signUp(t.url);
    const current = await latestNote();
    await submitCosignature(t.url, current + cosign(witness, kt.noteBody(current), now()));
    const late = await post(old + cosign(witness, kt.noteBody(old), now()));
    expect(late.status).toBe(200);
    expect(late.body.checkpoint).toBe(await latestNote());
    expect(kt.verifyCosignature(await latestNote(), wkey)).not.toBeNull();
    expect(kt.openCheckpoint(await latestNote(), relayKey).size).toBe(
      kt.parseCheckpointBody(kt.noteBody(current)).size,
    );
  });
});

describe('what the relay refuses', () => {
  it('refuses a cosignature by a key it was not configured with (403 forbidden) and serves none of it', async () => {
    await signUp(t.url);
    const note = await latestNote();
    const res = await post(note + cosign(stranger, kt.noteBody(note), now()));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
    // Same name as the configured witness, another key: still not that witness.
    const impostor = { ...stranger, name: witness.name };
    const res2 = await post(note + cosign(impostor, kt.noteBody(note), now()));
    expect(res2.status).toBe(403);
    expect(res2.body.error.code).toBe('forbidden');
    for (const served of await servedNotes()) {
      expect(served).toBe(note);
      expect(kt.verifyCosignature(served, kt.parseVerifierKey(keyOf(stranger)))).toBeNull();
    }
  });

  it('refuses a cosignature line of the witness whose signature does not verify (400 invalid_input)', async () => {
    await signUp(t.url);
    const note = await latestNote();
    const line = cosign(witness, kt.noteBody(note), now());
    const raw = Buffer.from(line.trim().split(' ')[2]!, 'base64');
    raw[raw.length - 1]! ^= 1;
    const res = await post(`${note}\u2014 ${witness.name} ${raw.toString('base64')}\n`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_input');
    // A valid signature of another time than the one its line names.
    const other = Buffer.from(cosign(witness, kt.noteBody(note), 1000).trim().split(' ')[2]!, 'base64');
    other.writeBigUInt64BE(2000n, 4);
    const res2 = await post(`${note}\u2014 ${witness.name} ${other.toString('base64')}\n`);
    expect(res2.status).toBe(400);
    for (const served of await servedNotes()) expect(served).toBe(note);
  });

  it('refuses a valid cosignature of a checkpoint body it never signed (400 invalid_input)', async () => {
    await signUp(t.url);
    const note = await latestNote();
    const cp = kt.parseCheckpointBody(kt.noteBody(note));
    const ownLine = note.slice(kt.noteBody(note).length + 1);
    const forge = (body: string) => `${body}\n${ownLine}${cosign(witness, body, now())}`;
    // Another root at the same size (a forked tree), a larger size, and another origin.
    const otherRoot = `${cp.origin}\n${cp.size}\n${Buffer.alloc(32, 7).toString('base64')}\n`;
    const bigger = `${cp.origin}\n${cp.size + 1}\n${Buffer.from(cp.root).toString('base64')}\n`;
    const otherOrigin = `evil.example/log\n${cp.size}\n${Buffer.from(cp.root).toString('base64')}\n`;
    for (const body of [otherRoot, bigger, otherOrigin]) {
      const res = await post(forge(body));
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    for (const served of await servedNotes()) {
      expect(served).toBe(note);
      expect(kt.verifyCosignature(served, wkey)).toBeNull();
    }
  });

  it('refuses bad input: no witness line, a malformed note, a missing or extra field, without signing in', async () => {
    const note = await latestNote();
    for (const body of [{ checkpoint: note }, { checkpoint: 'not a note' }, {}, { checkpoint: note, extra: 1 }]) {
      const res = await api(t.url, 'POST', '/api/kt/cosignatures', { body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    expect((await api(t.url, 'GET', '/api/kt/checkpoint')).status).toBe(200);
  });
});

describe('KT_WITNESSES', () => {
  it('is refused at start-up when a key is not a C2SP cosignature key', async () => {
    const relayStyle = kt.formatVerifierKey('w', kt.SIG_ED25519, witness.publicKey);
    await expect(startRelay({ KT_WITNESSES: relayStyle })).rejects.toThrow(/KT_WITNESSES/);
    await expect(startRelay({ KT_WITNESSES: 'nonsense' })).rejects.toThrow(/KT_WITNESSES/);
  });

  it('takes no cosignature at all when none is configured (403 forbidden)', async () => {
    const plain = await startRelay();
    try {
      const note = (await api(plain.url, 'GET', '/api/kt/checkpoint')).body.checkpoint as string;
      const res = await api(plain.url, 'POST', '/api/kt/cosignatures', {
        body: { checkpoint: note + cosign(witness, kt.noteBody(note), now()) },
      });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    } finally {
      await plain.close();
    }
  });
});
