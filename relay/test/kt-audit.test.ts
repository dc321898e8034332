// `npm run kt-audit` (issue #16) against a real relay: it pins the relay's checkpoint key, proves each new
// checkpoint consistent with the last one it saw, refuses a history that changed or shrank, and co-signs as a
// witness in the C2SP cosignature format that the crypto library's verifier (what clients use) accepts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kt from '../../crypto/src/kt/index.js';
import { auditOnce, loadWitness } from '../scripts/kt-audit.js';
import { signUp, startRelay, type TestRelay } from './helpers.js';

let t: TestRelay;
let dir: string;
beforeAll(async () => {
  t = await startRelay();
  dir = mkdtempSync(join(tmpdir(), 'kt-audit-'));
});
afterAll(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('kt-audit', () => {
  it('pins the key on its first round, then follows the log as it grows', async () => {
    await signUp(t.url);
    const first = await auditOnce(t.url, null);
    expect(first.round.from).toBeNull();
    expect(first.state.pinned).toBe('tofu');
    await signUp(t.url);
    await signUp(t.url);
    const second = await auditOnce(t.url, first.state);
    expect(second.round).toMatchObject({ from: first.round.size, size: first.round.size + 2 });
  });

  it('refuses a checkpoint that does not extend the one it saw, and one that shrank', async () => {
    const { state } = await auditOnce(t.url, null);
    const seen = kt.parseCheckpointBody(kt.noteBody(state.checkpoint!));
    // What it saw, as another history would have it: same size, another root (the note need not verify: the
    // auditor saved it; what matters is that the relay's next checkpoint cannot be proven to extend it).
    const other = `${seen.origin}\n${seen.size}\n${Buffer.alloc(32, 9).toString('base64')}\n\n\u2014 x AAAAAAA=\n`;
    await signUp(t.url);
    await expect(auditOnce(t.url, { ...state, checkpoint: other })).rejects.toThrow(/history changed/);
    const bigger = `${seen.origin}\n${seen.size + 1000}\n${Buffer.alloc(32, 9).toString('base64')}\n\n\u2014 x AAAAAAA=\n`;
    await expect(auditOnce(t.url, { ...state, checkpoint: bigger })).rejects.toThrow(/shrank/);
  });

  it('refuses a relay that names another key than the pinned one', async () => {
    const { state } = await auditOnce(t.url, null);
    const other = kt.formatVerifierKey('someone-else', kt.SIG_ED25519, new Uint8Array(32).fill(3));
    await expect(auditOnce(t.url, { ...state, verifierKey: other })).rejects.toThrow(/another checkpoint key/);
  });

  it('co-signs as a witness: the cosignature verifies with the witness key and covers this checkpoint only', async () => {
    const witness = loadWitness(join(dir, 'witness.pem'), 'witness.test');
    const { round } = await auditOnce(t.url, null, { witness, now: () => 1_700_000_000_000 });
    const wkey = kt.parseVerifierKey(kt.formatVerifierKey(witness.name, kt.SIG_COSIGNATURE, witness.publicKey));
    expect(kt.verifyCosignature(round.cosigned!, wkey)).toBe(1_700_000_000);
    const moved = round.cosigned!.replace(`\n${round.size}\n`, `\n${round.size + 1}\n`);
    expect(kt.verifyCosignature(moved, wkey)).toBeNull();
    // The same key file is the same witness next time.
    expect(loadWitness(join(dir, 'witness.pem'), 'witness.test').publicKey).toEqual(witness.publicKey);
  });
});
