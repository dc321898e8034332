// Witness cosignatures end to end (issue #16): the real web engine configured to require a witness
// (`transparency.witnessKeys`), the real relay configured with that witness (KT_WITNESSES), the witness's
// `kt-audit` round that cosigns and submits, and a malicious proxy between the engine and the relay. Until the
// witness cosigns a checkpoint that holds the contact's latest entry, a send waits (the relay says kt_unwitnessed;
// the contact is not blocked); once it has, bundles check and messages flow; a relay that forges the witness's
// cosignature line (its name and key id, another key's signature) is refused.
import 'fake-indexeddb/auto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditOnce, cosign, loadWitness, type Witness } from '../../../relay/scripts/kt-audit';
import { loadCrypto, type Crypto } from '../../src/client/crypto-loader';
import type { ClientError } from '../../src/client/errors';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';
import { startMaliciousRelay, type MaliciousRelay } from './malicious-relay';

let c: Crypto;
let dir: string;
let witness: Witness;
let impostor: Witness;
let witnessKey: string;
let relay: TestRelay;
let evil: MaliciousRelay;
const engines: ChatEngineApi[] = [];

beforeAll(async () => {
  c = await loadCrypto();
  dir = mkdtempSync(join(tmpdir(), 'kt-witness-web-'));
  witness = loadWitness(join(dir, 'witness.pem'), 'witness.example');
  impostor = loadWitness(join(dir, 'impostor.pem'), 'witness.example');
  witnessKey = c.kt.formatVerifierKey(witness.name, c.kt.SIG_COSIGNATURE, witness.publicKey);
  relay = await startTestRelay({ KT_WITNESSES: witnessKey });
  evil = await startMaliciousRelay(relay.url);
});
afterAll(async () => {
  for (const e of engines) await e.signOut(false).catch(() => undefined);
  await evil.close();
  await relay.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A user whose engine requires the witness's cosignature on every checkpoint. */
async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(evil.url, prefix, { engine: { transparency: { witnessKeys: [witnessKey] } } });
  engines.push(u.engine);
  return u;
}

/** The witness's round: audit the relay's latest checkpoint, cosign it and submit the cosignature. */
async function witnessCosigns(): Promise<void> {
  await auditOnce(relay.url, null, { witness, submit: true });
}

/** Sends, and resolves to the error (a send that fails loudly) or null. */
async function trySend(from: TestUser, to: TestUser, text: string): Promise<unknown> {
  return from.engine.send(to.userId, text).then(
    () => null,
    (e: unknown) => e,
  );
}

describe('an engine that requires a witness', () => {
  it('waits, without blocking the contact, while no checkpoint the witness cosigned holds the contact, then sends', async () => {
    const ann = await user('wann');
    const ben = await user('wben');
    const served = (await (await fetch(`${relay.url}/api/kt/checkpoint`)).json()) as { checkpoint: string };
    expect(c.kt.verifyCosignature(served.checkpoint, c.kt.parseVerifierKey(witnessKey))).toBeNull();
    await openWith(ann, ben);
    await ann.engine.send(ben.userId, 'not before a witness');
    const said = await until('the wait explained', () =>
      ann.engine.getSnapshot().notices.find((n) => /Waiting for the log's witness/.test(n.text)),
    );
    expect(said.text).toContain(ben.name);
    expect(ann.engine.getSnapshot().trust[ben.userId]?.transparency).toBeUndefined();
    expect((await history(ann.engine, ben.userId)).map((m) => m.status)).toEqual(['pending']);
    expect(await hasText(ben.engine, ann.userId, 'not before a witness')).toBe(false);
    // The witness's round cosigns the checkpoint that holds Ben's entry: the queued message goes out by itself.
    await witnessCosigns();
    await until('ann → ben', () => hasText(ben.engine, ann.userId, 'not before a witness'), 20_000);
    expect(ann.engine.getSnapshot().trust[ben.userId]?.transparency).toBeUndefined();
  });

  it('checks bundles and delivers once kt-audit has cosigned and submitted the latest checkpoint', async () => {
    const cat = await user('wcat');
    const dan = await user('wdan');
    await witnessCosigns();
    await openWith(cat, dan);
    await cat.engine.send(dan.userId, 'witnessed hello');
    await until('cat → dan', () => hasText(dan.engine, cat.userId, 'witnessed hello'));
    await dan.engine.send(cat.userId, 'witnessed reply');
    await until('dan → cat', () => hasText(cat.engine, dan.userId, 'witnessed reply'));
    expect(cat.engine.getSnapshot().trust[dan.userId]?.transparency).toBeUndefined();
    // What the engine keeps as the newest checkpoint it verified carries the witness's valid cosignature.
    const kept = await asClient(cat.engine).transparency.latestCheckpoint();
    expect(c.kt.verifyCosignature(kept!, c.kt.parseVerifierKey(witnessKey))).not.toBeNull();
  });

  it("refuses a checkpoint on which the relay forged the witness's cosignature line with another key", async () => {
    const eve = await user('weve');
    const fin = await user('wfin');
    await witnessCosigns();
    // Baseline: the relay's real answer carries a valid cosignature, so only the forgery below can fail the check.
    const real = (await (await fetch(`${relay.url}/api/kt/checkpoint`)).json()) as { checkpoint: string };
    expect(c.kt.verifyCosignature(real.checkpoint, c.kt.parseVerifierKey(witnessKey))).not.toBeNull();
    const witnessId = Buffer.from(c.kt.keyIdOf(witness.name, c.kt.SIG_COSIGNATURE, witness.publicKey));
    const forgeLine = (body: string): string => {
      // The impostor's signature, under the witness's name and key id (what a relay without the witness key can do).
      const raw = Buffer.from(
        cosign(impostor, body, Math.floor(Date.now() / 1000))
          .trim()
          .split(' ')[2]!,
        'base64',
      );
      witnessId.copy(raw, 0);
      return `\u2014 ${witness.name} ${raw.toString('base64')}\n`;
    };
    const forged: string[] = [];
    evil.rewriteHttp = (path, status, body) => {
      if (!path.startsWith('/api/kt/') || status !== 200) return body;
      const answer = body as { checkpoint?: string };
      if (typeof answer.checkpoint !== 'string') return body;
      const { body: text } = c.kt.splitNote(answer.checkpoint);
      const own = answer.checkpoint.slice(text.length + 1).split('\n')[0]!;
      const checkpoint = `${text}\n${own}\n${forgeLine(text)}`;
      forged.push(checkpoint);
      return { ...answer, checkpoint };
    };
    try {
      await openWith(eve, fin);
      const failed = await trySend(eve, fin, 'not on a forged cosignature');
      const trust = await until('the conversation blocked', () => eve.engine.getSnapshot().trust[fin.userId]);
      if (failed !== null) expect((failed as ClientError).code).toBe('transparency_failed');
      expect(trust.transparency).toMatch(/no witness cosignature/);
      expect(forged.length).toBeGreaterThan(0);
      expect(await hasText(fin.engine, eve.userId, 'not on a forged cosignature')).toBe(false);
    } finally {
      evil.rewriteHttp = null;
    }
  });

  it('takes gossip from a peer that requires no witness without a false split-view alarm', async () => {
    const gil = await user('wgil');
    const hal = await signUpUser(evil.url, 'whal');
    engines.push(hal.engine);
    // Hal (no witness required) verified the latest checkpoint before any witness cosigned it, and keeps that note.
    await until('hal checked his own account', () => asClient(hal.engine).transparency.latestCheckpoint());
    await witnessCosigns();
    const halNote = await asClient(hal.engine).transparency.latestCheckpoint();
    expect(c.kt.verifyCosignature(halNote!, c.kt.parseVerifierKey(witnessKey))).toBeNull();
    await openWith(hal, gil);
    await hal.engine.send(gil.userId, 'gossip without a witness');
    await until('hal → gil', () => hasText(gil.engine, hal.userId, 'gossip without a witness'));
    await gil.engine.send(hal.userId, 'and back');
    await until('gil → hal', () => hasText(hal.engine, gil.userId, 'and back'));
    expect(gil.engine.getSnapshot().trust[hal.userId]?.transparency).toBeUndefined();
    expect(hal.engine.getSnapshot().trust[gil.userId]?.transparency).toBeUndefined();
  });
});
