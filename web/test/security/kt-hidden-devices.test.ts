// Key transparency (issue #16), the devices a relay serves and "Check again": the real web engine, the real relay,
// and a malicious proxy between them (./malicious-relay.ts). A relay that leaves a logged device of a contact out of
// the bundle is caught (a device without keys yet, which the relay names as pending, is not an alarm, and a device
// added while the check runs is read again); a re-check lifts a block only when everything now passes, and never
// one caused by a checkpoint the relay cannot show to extend the stored one (a fork), even if it answers honestly
// afterwards. The log key and witness keys a user configures apply to every later check.
import 'fake-indexeddb/auto';
import { sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transparencyKey } from '../../../relay/src/secrets';
import {
  appendNodes,
  appendSiblings,
  encodeKtEntry,
  inclusionProof,
  leafHash,
  rootOf,
} from '../../../relay/src/service/kt-tree';
import { KeyTransparency } from '../../../relay/src/service/transparency';
import { loadCrypto, type Crypto } from '../../src/client/crypto-loader';
import type { ClientError } from '../../src/client/errors';
import { OwnKeys } from '../../src/client/own-keys';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, boot, hasText, openWith, signUpUser, uniqueName, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';
import { startMaliciousRelay, type MaliciousRelay } from './malicious-relay';

let c: Crypto;
let relay: TestRelay;
let evil: MaliciousRelay;
const engines: ChatEngineApi[] = [];

beforeAll(async () => {
  c = await loadCrypto();
  relay = await startTestRelay();
  evil = await startMaliciousRelay(relay.url);
});
afterAll(async () => {
  for (const e of engines) await e.signOut(false).catch(() => undefined);
  await evil.close();
  await relay.close();
});

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(evil.url, prefix);
  engines.push(u.engine);
  return u;
}

/** A second device of `u`, signed in through the proxy (it uploads its keys as every client does). */
async function secondDevice(u: TestUser): Promise<string> {
  const second = await boot(evil.url, `${u.db}-2`).signIn(u.name, u.password);
  engines.push(second);
  await until('the second device online', () => second.getSnapshot().connection === 'online');
  return second.getSnapshot().me.deviceId;
}

const deviceOf = (u: TestUser): string => u.engine.getSnapshot().me.deviceId;
const bundlePath = (userId: string): string => `/api/users/${userId}/bundle`;
const sentTo = (u: TestUser, to: string[]) => (evil.sent.get(deviceOf(u)) ?? []).filter((s) => to.includes(s.to));
const trustOf = (u: TestUser, userId: string) => u.engine.getSnapshot().trust[userId];

/** A bundle answer without `deviceId`, in `devices` or `pendingDevices`: the relay hides it entirely. */
function without(body: unknown, deviceId: string): unknown {
  const b = body as { devices: { deviceId: string }[]; pendingDevices?: string[] };
  return {
    ...b,
    devices: b.devices.filter((d) => d.deviceId !== deviceId),
    pendingDevices: (b.pendingDevices ?? []).filter((d) => d !== deviceId),
  };
}

/** Sends and waits until the conversation is blocked by key transparency; the send itself may throw or queue. */
async function sendUntilBlocked(from: TestUser, to: TestUser, text: string): Promise<string> {
  await from.engine.send(to.userId, text).catch(() => undefined);
  return until('the conversation blocked', () => trustOf(from, to.userId)?.transparency);
}

/**
 * An account made over plain HTTP with a known auth key, so that a second device can sign in and never upload
 * keys (as a device does between its sign-in and its first prekey upload).
 */
async function accountWithKeylessDevice() {
  const keys = c.createAccountKeys({ oneTimePrekeyCount: 5 });
  const kem = OwnKeys.initialKemPrekeys(c, keys.identity);
  const username = uniqueName('ktnokeys');
  const authKey = c.toBase64Url(c.randomBytes(32));
  const post = (path: string, body: unknown) =>
    fetch(new URL(path, relay.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const created = await post('/api/accounts', {
    username,
    salt: c.toBase64Url(c.randomBytes(16)),
    authKey,
    ...keys.upload,
    ...OwnKeys.kemUpload(c, kem.lastResort, kem.oneTime),
  });
  expect(created.status).toBe(201);
  const account = (await created.json()) as { userId: string; deviceId: string };
  const signedIn = await post('/api/sessions', { username, authKey });
  expect(signedIn.status).toBe(200);
  return { ...account, username, keyless: ((await signedIn.json()) as { deviceId: string }).deviceId };
}

describe('a relay that leaves a logged device of a contact out of the bundle', () => {
  it('raises no alarm for a device that signed in but has no keys yet, which the relay names as pending', async () => {
    const ann = await user('kthdann');
    const bob = await accountWithKeylessDevice();
    const found = (await ann.engine.searchPeople(bob.username)).find((p) => p.userId === bob.userId);
    await ann.engine.openConversation(found!);
    await ann.engine.send(bob.userId, 'to the device that has keys');
    await until('the envelope to the keyed device', () => sentTo(ann, [bob.deviceId]).length > 0);
    expect(trustOf(ann, bob.userId)?.transparency).toBeUndefined();
    expect(sentTo(ann, [bob.keyless])).toEqual([]);
  });

  it('is caught when the relay also hides a device without keys (not named as pending either)', async () => {
    const ann = await user('kthdann');
    const bob = await accountWithKeylessDevice();
    evil.rewriteHttp = (path, status, body) =>
      path === bundlePath(bob.userId) && status === 200 ? without(body, bob.keyless) : body;
    try {
      const found = (await ann.engine.searchPeople(bob.username)).find((p) => p.userId === bob.userId);
      await ann.engine.openConversation(found!);
      await ann.engine.send(bob.userId, 'hidden').catch(() => undefined);
      const reason = await until('blocked', () => trustOf(ann, bob.userId)?.transparency);
      expect(reason).toMatch(/left out a device of this account that is in its public log/);
      expect(sentTo(ann, [bob.deviceId, bob.keyless])).toEqual([]);
    } finally {
      evil.rewriteHttp = null;
    }
  });

  it('blocks the conversation, sends nothing and says why when one keyed device is dropped', async () => {
    const cat = await user('kthdcat');
    const dan = await user('kthddan');
    const hidden = await secondDevice(dan);
    evil.rewriteHttp = (path, status, body) =>
      path === bundlePath(dan.userId) && status === 200 ? without(body, hidden) : body;
    try {
      await openWith(cat, dan);
      const failed = await cat.engine.send(dan.userId, 'only for the devices shown').then(
        () => null,
        (e: unknown) => e as ClientError,
      );
      const reason = await until('blocked', () => trustOf(cat, dan.userId)?.transparency);
      if (failed !== null) expect(failed.code).toBe('transparency_failed');
      expect(reason).toMatch(/left out a device of this account that is in its public log/);
      await expect(cat.engine.send(dan.userId, 'again')).rejects.toMatchObject({ code: 'transparency_failed' });
      expect(sentTo(cat, [deviceOf(dan), hidden])).toEqual([]);
    } finally {
      evil.rewriteHttp = null;
    }
  });

  it('reads the bundle again once before failing: a device added between the bundle and the log is no alarm', async () => {
    const eve = await user('kthdeve');
    const fin = await user('kthdfin');
    const second = await secondDevice(fin);
    // The first bundle answer predates the second device (as if it signed in right after); later ones are current.
    let first = true;
    evil.rewriteHttp = (path, status, body) => {
      if (path !== bundlePath(fin.userId) || status !== 200 || !first) return body;
      first = false;
      return without(body, second);
    };
    try {
      const before = evil.requests.length;
      await openWith(eve, fin);
      await eve.engine.send(fin.userId, 'after the race');
      await until('delivery', () => hasText(fin.engine, eve.userId, 'after the race'));
      expect(first).toBe(false);
      expect(evil.requests.slice(before)).toContain(`${bundlePath(fin.userId)}?devices=`);
      expect(trustOf(eve, fin.userId)?.transparency).toBeUndefined();
    } finally {
      evil.rewriteHttp = null;
    }
  });
});

describe('Check again', () => {
  it('keeps the block with its reason while the relay still hides the device, and lifts it once it does not', async () => {
    const gus = await user('ktcagus');
    const hex = await user('ktcahex');
    const hidden = await secondDevice(hex);
    evil.rewriteHttp = (path, status, body) =>
      path === bundlePath(hex.userId) && status === 200 ? without(body, hidden) : body;
    try {
      await openWith(gus, hex);
      await sendUntilBlocked(gus, hex, 'first try');
      await expect(gus.engine.recheckContact(hex.userId)).rejects.toMatchObject({
        code: 'transparency_failed',
        message: expect.stringMatching(/left out a device/),
      });
      expect(trustOf(gus, hex.userId)?.transparency).toMatch(/left out a device/);
    } finally {
      evil.rewriteHttp = null;
    }
    // The relay serves the truth again: the re-check passes and sending reaches both devices.
    await gus.engine.recheckContact(hex.userId);
    expect(trustOf(gus, hex.userId)?.transparency).toBeUndefined();
    await gus.engine.send(hex.userId, 'after the check');
    await until('delivery', () => hasText(hex.engine, gus.userId, 'after the check'));
    await until('an envelope for the device once hidden', () => sentTo(gus, [hidden]).length > 0);
  });

  it('keeps the block after a relay forked its log and then answers honestly', async () => {
    const ivy = await user('ktcaivy');
    const jay = await user('ktcajay');
    const kt = asClient(ivy.engine).transparency;
    await until('ivy has seen the log', () => kt.latestCheckpoint());
    const seen = c.kt.parseCheckpointBody(c.kt.noteBody((await kt.latestCheckpoint())!));
    // The real log grows past the fork's size, so the relay can answer the consistency proof honestly afterwards.
    await user('ktcapad');
    await user('ktcapad');

    // The operator's other history: a tree of `seen.size + 1` leaves that does not start with the one Ivy saw,
    // whose last leaf gives Jay another key, signed with the relay's own key.
    const secret = readFileSync(join(relay.dataDir, 'jwt-secret'), 'utf8').trim();
    const keys = transparencyKey(secret);
    const origin = new KeyTransparency(null!, keys).origin;
    const jayEntry = encodeKtEntry({
      kind: 'account',
      seq: 0,
      userId: jay.userId,
      username: jay.name.toLowerCase(),
      identityKey: c.randomBytes(32),
      deviceIds: [deviceOf(jay)],
    });
    const size = seen.size + 1;
    const nodes = new Map<string, Uint8Array>();
    for (let i = 0; i < size; i += 1) {
      const entry = i === size - 1 ? jayEntry : Buffer.from(`fork ${i}`);
      const siblings = appendSiblings(i).map((k) => nodes.get(`${k.level}:${k.index}`)!);
      for (const n of appendNodes(i, leafHash(entry), siblings)) nodes.set(`${n.level}:${n.index}`, n.hash);
    }
    const read = (level: number, index: number) => nodes.get(`${level}:${index}`)!;
    const body = `${origin}\n${size}\n${Buffer.from(rootOf(read, size)).toString('base64')}\n`;
    const line = Buffer.concat([
      c.kt.keyIdOf(origin, 1, keys.publicKey),
      sign(null, Buffer.from(body), keys.privateKey),
    ]);
    const fork = `${body}\n\u2014 ${origin} ${line.toString('base64')}\n`;
    const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
    const leaf = { index: size - 1, entry: b64u(jayEntry), proof: inclusionProof(read, size - 1, size).map(b64u) };
    evil.forgeHttp = (path) => (path === `/api/kt/accounts/${jay.userId}` ? { checkpoint: fork, leaf } : undefined);
    try {
      await openWith(ivy, jay);
      const reason = await sendUntilBlocked(ivy, jay, 'into the fork');
      expect(reason).toMatch(/its history changed/);
    } finally {
      evil.forgeHttp = null;
    }
    // From here on the relay answers honestly: its log, checkpoints and proofs are the real ones. The check of Jay
    // alone would pass now (his bundle is his logged entry) — but the fork it signed is still unexplained.
    await expect(ivy.engine.recheckContact(jay.userId)).rejects.toMatchObject({
      code: 'transparency_failed',
      message: expect.stringMatching(/its history changed/),
    });
    expect(trustOf(ivy, jay.userId)?.transparency).toMatch(/its history changed/);
    expect(sentTo(ivy, [deviceOf(jay)])).toEqual([]);
  });
  it('keeps the block after a contact carried a checkpoint of another tree signed with the relay key', async () => {
    const ola = await user('ktcaola');
    const pat = await user('ktcapat');
    await openWith(ola, pat);
    await ola.engine.send(pat.userId, 'before the split');
    await until('delivery', () => hasText(pat.engine, ola.userId, 'before the split'));
    const kt = asClient(ola.engine).transparency;
    const held = c.kt.parseCheckpointBody(c.kt.noteBody((await kt.latestCheckpoint())!));
    // Pat's view (as gossip carries it): the same size, another root, signed with the relay's key.
    const secret = readFileSync(join(relay.dataDir, 'jwt-secret'), 'utf8').trim();
    const keys = transparencyKey(secret);
    const origin = new KeyTransparency(null!, keys).origin;
    const body = `${origin}\n${held.size}\n${Buffer.alloc(32, 9).toString('base64')}\n`;
    const line = Buffer.concat([
      c.kt.keyIdOf(origin, 1, keys.publicKey),
      sign(null, Buffer.from(body), keys.privateKey),
    ]);
    expect(await kt.compareGossip(pat.userId, `${body}\n\u2014 ${origin} ${line.toString('base64')}\n`)).toMatch(
      /different versions of the relay's key log/,
    );
    expect(trustOf(ola, pat.userId)?.transparency).toMatch(/different versions/);
    // The relay answers every request honestly; the view it signed for Pat still does not fit Ola's.
    await expect(ola.engine.recheckContact(pat.userId)).rejects.toMatchObject({
      code: 'transparency_failed',
      message: expect.stringMatching(/its history changed/),
    });
    expect(trustOf(ola, pat.userId)?.transparency).toMatch(/its history changed/);
  });
  it('lifts the block once a relay that failed to prove its log consistent proves it', async () => {
    const quin = await user('ktcaquin');
    const rex = await user('ktcarex');
    const kt = asClient(quin.engine).transparency;
    await until('quin has seen the log', () => kt.latestCheckpoint());
    await user('ktcapad'); // the log grows: Quin's next check needs a consistency proof
    evil.forgeHttp = (path) => (path === '/api/kt/consistency' ? { proof: 'not a proof' } : undefined);
    try {
      await openWith(quin, rex);
      expect(await sendUntilBlocked(quin, rex, 'while the proof fails')).toMatch(/cannot prove that its log/);
      await expect(quin.engine.recheckContact(rex.userId)).rejects.toMatchObject({ code: 'transparency_failed' });
    } finally {
      evil.forgeHttp = null;
    }
    await quin.engine.recheckContact(rex.userId);
    expect(trustOf(quin, rex.userId)?.transparency).toBeUndefined();
    await quin.engine.send(rex.userId, 'once the proof is given');
    await until('delivery', () => hasText(rex.engine, quin.userId, 'once the proof is given'));
  });
});

describe('a log key and witness keys configured in Settings', () => {
  const otherLogKey = () => c.kt.formatVerifierKey('other.example/log', 1, c.randomBytes(32));
  const someWitness = () => c.kt.formatVerifierKey('witness.example', c.kt.SIG_COSIGNATURE, c.randomBytes(32));

  it('refuses what is not a log key or a witness key, naming the line', async () => {
    const lou = await user('ktsetlou');
    await expect(lou.engine.configureLogKey('not a key')).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(lou.engine.configureLogKey(someWitness())).rejects.toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/witness key/),
    });
    await expect(lou.engine.configureWitnesses([someWitness(), 'witness+00000000+AAAA'])).rejects.toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/^Line 2 /),
    });
    await expect(lou.engine.configureWitnesses(['', otherLogKey()])).rejects.toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/^Line 2 is a log key/),
    });
    expect((await asClient(lou.engine).transparency.witnessKeys()).configured).toEqual([]);
  });

  it('marks the pinned key as configured when given again, and never takes another key without being told to', async () => {
    const max = await user('ktsetmax');
    const kt = asClient(max.engine).transparency;
    await until('a first checkpoint', () => kt.latestCheckpoint());
    const pinned = (await max.engine.keyTransparencyStatus())!;
    expect(pinned.pinned).toBe('tofu');
    expect(await max.engine.configureLogKey(` ${pinned.verifierKey}\n`)).toBe('saved');
    expect(await max.engine.keyTransparencyStatus()).toMatchObject({
      verifierKey: pinned.verifierKey,
      pinned: 'configured',
    });
    // A different key does not sign the checkpoint this device holds: nothing changes.
    const other = otherLogKey();
    expect(await max.engine.configureLogKey(other)).toBe('mismatch');
    expect((await max.engine.keyTransparencyStatus())?.verifierKey).toBe(pinned.verifierKey);
    expect(await kt.checkOwnAccount()).toEqual([]);
    // Told to, it replaces the key, says so loudly, and every check from then on is against that key.
    expect(await max.engine.configureLogKey(other, true)).toBe('saved');
    expect(
      max.engine.getSnapshot().notices.some((n) => n.kind === 'error' && /replaced the relay's log key/.test(n.text)),
    ).toBe(true);
    expect(await max.engine.keyTransparencyStatus()).toMatchObject({ verifierKey: other, treeSize: null });
    await expect(kt.checkOwnAccount()).rejects.toMatchObject({
      code: 'transparency_failed',
      message: expect.stringMatching(/not signed as required/),
    });
  });

  it('requires the configured witnesses on every later check, and none once they are removed', async () => {
    const ned = await user('ktsetned');
    const kt = asClient(ned.engine).transparency;
    expect(await kt.checkOwnAccount()).toEqual([]);
    const witness = someWitness();
    await ned.engine.configureWitnesses([witness, '', witness]);
    expect((await ned.engine.keyTransparencyStatus())?.witnessKeys).toEqual([witness]);
    await expect(kt.checkOwnAccount()).rejects.toMatchObject({
      code: 'transparency_failed',
      message: expect.stringMatching(/no witness cosignature/),
    });
    await ned.engine.configureWitnesses([]);
    expect(await kt.checkOwnAccount()).toEqual([]);
  });
});
