// Requiring a witness without failing on mere log growth (issue #16): the real web engine requires the witness's
// cosignature, asks the relay for witnessed proofs (`?witnessed=`), and waits — never blocks the contact — while the
// relay answers kt_unwitnessed. What stays refused: a relay that serves a stale witnessed checkpoint whose entry for
// the contact lacks a device the bundle lists. With the real `kt-audit --follow` witness running beside the relay, a
// contact's new device is reached within about one round, and the sender never sees a failed check.
import 'fake-indexeddb/auto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditOnce, loadWitness, type Witness } from '../../../relay/scripts/kt-audit';
import { loadCrypto, type Crypto } from '../../src/client/crypto-loader';
import type { ChatEngineApi } from '../../src/client/types';
import {
  asClient,
  bareAccount,
  boot,
  hasText,
  history,
  http,
  openWith,
  signUpUser,
  until,
  type TestUser,
} from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';
import { startMaliciousRelay, type MaliciousRelay } from './malicious-relay';

let c: Crypto;
let dir: string;
let witness: Witness;
let witnessKey: string;
let witnessId: string;
let relay: TestRelay;
let evil: MaliciousRelay;
const engines: ChatEngineApi[] = [];

beforeAll(async () => {
  c = await loadCrypto();
  dir = mkdtempSync(join(tmpdir(), 'kt-witness-wait-'));
  witness = loadWitness(join(dir, 'witness.pem'), 'witness.example');
  witnessKey = c.kt.formatVerifierKey(witness.name, c.kt.SIG_COSIGNATURE, witness.publicKey);
  witnessId = Buffer.from(c.kt.keyIdOf(witness.name, c.kt.SIG_COSIGNATURE, witness.publicKey)).toString('hex');
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

/** Another device of `u` (signed in through the malicious relay; it uploads its prekeys). */
async function secondDevice(u: TestUser): Promise<ChatEngineApi> {
  const engine = await boot(evil.url, `${u.db}-2`, {
    engine: { transparency: { witnessKeys: [witnessKey] } },
  }).signIn(u.name, u.password);
  engines.push(engine);
  await until('second device online', () => engine.getSnapshot().connection === 'online');
  return engine;
}

const witnessCosigns = () => auditOnce(relay.url, null, { witness, submit: true });
const requestsTo = (path: string) => evil.requests.filter((r) => r.split('?')[0] === path).length;

describe('a relay that says kt_unwitnessed', () => {
  it('forever: the engine never sends, never blocks the contact, says why, and probes the log only', async () => {
    const ann = await user('uann');
    const ben = await user('uben');
    await witnessCosigns();
    // The relay lies: Ben's entry is cosigned (the real relay would answer), it claims it is not, every time.
    const kt = `/api/kt/accounts/${ben.userId}`;
    evil.refuseHttp = (path) =>
      path === kt ? { status: 503, code: 'kt_unwitnessed', message: 'not cosigned yet', retryAfter: 5 } : undefined;
    try {
      await openWith(ann, ben);
      await ann.engine.send(ben.userId, 'held by the witness');
      const said = await until('the wait explained', () =>
        ann.engine.getSnapshot().notices.find((n) => /Waiting for the log's witness/.test(n.text)),
      );
      expect(said.text).toContain(ben.name);
      // It keeps asking, with a growing pause: the first attempt and three retries take about 1 + 2 + 4 seconds.
      await until('three retries', () => requestsTo(kt) >= 4, 20_000);
      // Waiting takes none of Ben's one-time prekeys: one bundle fetch that takes them, then only the log is asked.
      const taking = evil.requests.filter((r) => r.startsWith(`/api/users/${ben.userId}/bundle`) && !r.endsWith('='));
      expect(taking).toEqual([`/api/users/${ben.userId}/bundle`]);
      expect(ann.engine.getSnapshot().trust[ben.userId]?.transparency).toBeUndefined();
      expect((await history(ann.engine, ben.userId)).map((m) => m.status)).toEqual(['pending']);
      expect(await hasText(ben.engine, ann.userId, 'held by the witness')).toBe(false);
      expect(ann.engine.getSnapshot().notices.filter((n) => /Waiting for the log's witness/.test(n.text))).toHaveLength(
        1,
      );
    } finally {
      evil.refuseHttp = null;
    }
    // Nothing was blocked for good: once the relay answers, the queued message goes out.
    await until('ann → ben', () => hasText(ben.engine, ann.userId, 'held by the witness'), 30_000);
    expect(ann.engine.getSnapshot().trust[ben.userId]?.transparency).toBeUndefined();
  }, 60_000);
});

describe('a relay that serves a stale witnessed checkpoint', () => {
  it("is refused when the bundle lists a device the contact's entry in that checkpoint does not have", async () => {
    const ann = await user('sann');
    const ben = await user('sben');
    const cal = await user('scal');
    await witnessCosigns();
    // The relay keeps the witnessed answer for Ben's account (his first device only) that Ann's check got.
    const kt = `/api/kt/accounts/${ben.userId}`;
    let kept: unknown = null;
    evil.rewriteHttp = (path, status, body) => {
      if (path === kt && status === 200) kept = body;
      return body;
    };
    await openWith(ann, ben);
    await ann.engine.send(ben.userId, 'hello ben');
    await until('ann → ben', () => hasText(ben.engine, ann.userId, 'hello ben'));
    evil.rewriteHttp = null;
    expect(kept).not.toBeNull();
    // Ben adds a device: his newest entry is past every checkpoint the witness cosigned.
    const second = await secondDevice(ben);
    const secondId = second.getSnapshot().me.deviceId;
    const probe = await bareAccount(relay.url);
    const honest = await http(relay.url, 'GET', `${kt}?witnessed=${witnessId}`, probe.token);
    expect(honest.status).toBe(503); // baseline: the honest relay would make Cal wait
    // The relay replays the stale witnessed answer, with a bundle (the real one) that lists the new device.
    evil.forgeHttp = (path) => (path === kt ? kept : undefined);
    try {
      await openWith(cal, ben);
      await cal.engine.send(ben.userId, 'not to an unwitnessed device').catch(() => undefined);
      const calDevice = cal.engine.getSnapshot().me.deviceId;
      const toSecond = () => (evil.sent.get(calDevice) ?? []).filter((e) => e.to === secondId);
      // Whichever comes first: the check refuses, or an envelope for the unwitnessed device reaches the relay.
      await until('the outcome', () => cal.engine.getSnapshot().trust[ben.userId]?.transparency ?? toSecond()[0]);
      // What the relay holds from Cal: nothing addressed to the device the witness never saw.
      expect(toSecond()).toEqual([]);
      expect(cal.engine.getSnapshot().trust[ben.userId]?.transparency).toMatch(
        /a device that is not in its public log/,
      );
      expect(await hasText(second, cal.userId, 'not to an unwitnessed device')).toBe(false);
    } finally {
      evil.forgeHttp = null;
    }
  });
});

describe('a first message from someone whose newest entry awaits the witness', () => {
  it('is kept and shown once the witness cosigns, never "could not be decrypted"', async () => {
    const zed = await user('ized');
    // A newcomer (whose client requires no witness) signs up after the witness's last round.
    const newcomer = await signUpUser(evil.url, 'inew');
    engines.push(newcomer.engine);
    await openWith(newcomer, zed);
    await newcomer.engine.send(zed.userId, 'hello from a new account');
    const said = await until('the wait explained', () =>
      zed.engine.getSnapshot().notices.find((n) => /Waiting for the log's witness/.test(n.text)),
    );
    expect(said.text).toContain(newcomer.name);
    expect(await hasText(zed.engine, newcomer.userId, 'hello from a new account')).toBe(false);
    await witnessCosigns();
    await until('newcomer → zed', () => hasText(zed.engine, newcomer.userId, 'hello from a new account'), 20_000);
    expect(zed.engine.getSnapshot().notices.filter((n) => /could not be decrypted/.test(n.text))).toEqual([]);
    expect(zed.engine.getSnapshot().trust[newcomer.userId]?.transparency).toBeUndefined();
    // The newcomer's engine (no witness required) stops here: the next test counts the log requests it sees.
    await newcomer.engine.signOut(false);
  }, 40_000);
});

describe('self-monitoring with a required witness', () => {
  it('checks its own entries past the witnessed checkpoint later: no alarm while they wait, then the real one', async () => {
    const kim = await user('mkim');
    const from = evil.requests.length;
    const kt = asClient(kim.engine).transparency;
    const first = kim.engine.getSnapshot().me.deviceId;
    // No witnessed checkpoint at all yet (503 kt_unwitnessed): nothing to check, and nothing to alarm about.
    evil.refuseHttp = (path) =>
      path === '/api/kt/self/entries' ? { status: 503, code: 'kt_unwitnessed', message: 'not yet' } : undefined;
    try {
      expect(await kt.checkOwnAccount()).toEqual([]);
    } finally {
      evil.refuseHttp = null;
    }
    await witnessCosigns();
    expect(await kt.checkOwnAccount()).toEqual([]);
    // A device added behind Kim's back: the relay hides it from her device list; the witness has not cosigned yet.
    evil.rewriteHttp = (path, status, b) => {
      if (path !== '/api/devices' || status !== 200) return b;
      return { devices: (b as { devices: { deviceId: string }[] }).devices.filter((d) => d.deviceId === first) };
    };
    const alarmsOf = () =>
      kim.engine
        .getSnapshot()
        .notices.filter((n) => n.kind === 'error' && /device you don't know|not signed/.test(n.text));
    try {
      await secondDevice(kim);
      expect(await kt.checkOwnAccount()).toEqual([]);
      expect(alarmsOf()).toEqual([]);
      const since = evil.requests.slice(from);
      expect(since.filter((r) => r.startsWith('/api/kt/self/entries?') && !r.includes('witnessed='))).toEqual([]);
      await witnessCosigns();
      const alarms = await until('the alarm', async () => {
        await kt.checkOwnAccount();
        return alarmsOf().length > 0 ? alarmsOf() : null;
      });
      expect(alarms.map((a) => a.text)).toEqual(["A device you don't know was added to your account."]);
    } finally {
      evil.rewriteHttp = null;
    }
  });
});

describe('a witness following the relay (`kt-audit --follow`)', () => {
  let follower: ChildProcess | null = null;
  let rounds = 0;

  beforeAll(async () => {
    // One process (node with tsx's loader), so that the test can pause the witness itself (SIGSTOP / SIGCONT).
    const args = ['--import', 'tsx', '--conditions=source', 'relay/scripts/kt-audit.ts', relay.url];
    args.push('--state', join(dir, 'follow.json'), '--witness-key', join(dir, 'witness.pem'));
    args.push('--witness-name', witness.name, '--submit', '--follow', '1');
    follower = spawn(process.execPath, args, { cwd: join(import.meta.dirname, '../../..') });
    follower.stdout?.on('data', (chunk: Buffer) => {
      rounds += chunk.toString('utf8').split(/cosignature submitted|already cosigned/).length - 1;
    });
    await until('the witness submitted a round', () => rounds > 0, 30_000);
  }, 40_000);
  afterAll(() => {
    follower?.kill('SIGCONT');
    follower?.kill();
  });

  it("reaches a contact's new device within about one round, and the sender never sees a failed check", async () => {
    const dan = await user('fdan');
    const eve = await user('feve');
    const failures: string[] = [];
    const stop = dan.engine.subscribe(() => {
      const t = dan.engine.getSnapshot().trust[eve.userId]?.transparency;
      if (t) failures.push(t);
    });
    try {
      // The witness is paused while Eve adds a device, so Dan's send surely meets the log before its cosignature.
      follower!.kill('SIGSTOP');
      const second = await secondDevice(eve);
      await openWith(dan, eve);
      await dan.engine.send(eve.userId, 'to both of your devices');
      await until('the wait explained', () =>
        dan.engine.getSnapshot().notices.find((n) => /Waiting for the log's witness/.test(n.text)),
      );
      expect(await hasText(second, dan.userId, 'to both of your devices')).toBe(false);
      const resumed = Date.now();
      follower!.kill('SIGCONT');
      await until('dan → eve (new device)', () => hasText(second, dan.userId, 'to both of your devices'), 30_000);
      await until('dan → eve', () => hasText(eve.engine, dan.userId, 'to both of your devices'), 10_000);
      // One round of the witness (1 s) and the engine's pause between retries (at most a few seconds here).
      expect(Date.now() - resumed).toBeLessThan(20_000);
      expect(failures).toEqual([]);
      expect(dan.engine.getSnapshot().trust[eve.userId]?.transparency).toBeUndefined();
    } finally {
      follower!.kill('SIGCONT');
      stop();
    }
  }, 60_000);
});
