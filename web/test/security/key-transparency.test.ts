// Key transparency (issue #16) against a relay that lies: the real web engine, the real relay, and a malicious proxy
// between them (./malicious-relay.ts). A relay that shows one user another key for a third, one that rewrites its
// history (a forked tree signed with the relay's own key, as its operator can), and one that hides a device from
// its owner are each detected by the engine: a blocking error and a stopped conversation, or an alarm.
import 'fake-indexeddb/auto';
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
import type { ChatEngineApi } from '../../src/client/types';
import { attackerAccount, type Attacker } from '../support/accounts';
import { asClient, boot, hasText, openWith, signUpUser, until, type TestUser } from '../support/engine';
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
const deviceOf = (u: TestUser): string => u.engine.getSnapshot().me.deviceId;
const bundlePath = (u: TestUser): string => `/api/users/${u.userId}/bundle`;

/** A bundle answer naming the attacker's keys for a user, on the user's own device ids. */
function swapped(body: { userId: string; username: string; devices: { deviceId: string }[] }, m: Attacker) {
  return {
    ...body,
    identityKey: m.keys.upload.identityKey,
    devices: body.devices.map((d) => ({
      deviceId: d.deviceId,
      signedPrekey: m.keys.upload.signedPrekey,
      oneTimePrekey: null,
      kemPrekey: m.c.kemPrekeyToWire(m.kem.lastResort),
    })),
  };
}

/** Every envelope a device sent through the relay, addressed to one of `to`. */
const sentTo = (u: TestUser, to: string[]) => (evil.sent.get(deviceOf(u)) ?? []).filter((s) => to.includes(s.to));

describe('an honest relay', () => {
  it('lets a checked conversation run, pinning the relay key on first use and keeping the checkpoint it saw', async () => {
    const alice = await user('ktalice');
    const bob = await user('ktbob');
    await openWith(alice, bob);
    await alice.engine.send(bob.userId, 'hello through the log');
    await until('delivery', () => hasText(bob.engine, alice.userId, 'hello through the log'));
    const kt = asClient(alice.engine).transparency;
    expect((await kt.pinnedKey())?.pinned).toBe('tofu');
    const note = await kt.latestCheckpoint();
    expect(note).not.toBeNull();
    expect(alice.engine.getSnapshot().trust[bob.userId]?.transparency).toBeUndefined();
    // Gossip between two honest views raises nothing on the receiving side either.
    expect(bob.engine.getSnapshot().trust[alice.userId]?.transparency).toBeUndefined();
    // Baseline for the next tests: the pinned key is the relay's own.
    const secret = readFileSync(join(relay.dataDir, 'jwt-secret'), 'utf8').trim();
    expect((await kt.pinnedKey())?.verifierKey).toBe(new KeyTransparency(null!, transparencyKey(secret)).verifierKey);
  });
});

describe('a relay that shows two users different keys for a third', () => {
  it('is caught by the user shown the wrong key: the send fails loudly and nothing reaches the attacker', async () => {
    const carol = await user('ktcarol');
    const dave = await user('ktdave');
    const erin = await user('kterin');
    const m = await attackerAccount(relay.url);
    // Erin sees Dave's real key; Carol is shown the attacker's (a relay that splits its answers by who asks).
    await openWith(erin, dave);
    await erin.engine.send(dave.userId, 'erin sees the real key');
    await until('erin → dave', () => hasText(dave.engine, erin.userId, 'erin sees the real key'));
    evil.rewriteHttp = (path, status, body) =>
      path === bundlePath(dave) && status === 200 ? swapped(body as never, m) : body;
    try {
      await openWith(carol, dave);
      const failed = await carol.engine.send(dave.userId, 'for dave only').then(
        () => null,
        (e: unknown) => e,
      );
      const trust = await until('the conversation blocked', () => carol.engine.getSnapshot().trust[dave.userId]);
      // The send either threw at once or failed in the outbox; either way the conversation is stopped.
      if (failed !== null) expect((failed as ClientError).code).toBe('transparency_failed');
      expect(trust.transparency).toMatch(/not the one in its public log/);
      await expect(carol.engine.send(dave.userId, 'again')).rejects.toMatchObject({ code: 'transparency_failed' });
      expect(sentTo(carol, [m.deviceId, deviceOf(dave)])).toEqual([]);
    } finally {
      evil.rewriteHttp = null;
    }
  });
});

describe('a relay that rewrites its history', () => {
  it('is caught when it serves a checkpoint (signed with its own key) for a tree that does not extend the one seen', async () => {
    const fay = await user('ktfay');
    const gil = await user('ktgil');
    const hal = await user('kthal');
    const m = await attackerAccount(relay.url);
    await openWith(fay, hal);
    await fay.engine.send(hal.userId, 'fay has seen the log');
    await until('fay → hal', () => hasText(hal.engine, fay.userId, 'fay has seen the log'));
    const seen = c.kt.parseCheckpointBody(c.kt.noteBody((await asClient(fay.engine).transparency.latestCheckpoint())!));

    // The operator's fork: a tree (larger than the one Fay saw) whose last leaf gives Gil the attacker's key,
    // signed with the relay's real key. Everything in it verifies — except that it is not an extension of the past.
    const secret = readFileSync(join(relay.dataDir, 'jwt-secret'), 'utf8').trim();
    const signer = new KeyTransparency(null!, transparencyKey(secret));
    const forged = encodeKtEntry({
      kind: 'account',
      seq: 5,
      userId: gil.userId,
      username: gil.name.toLowerCase(),
      identityKey: Buffer.from(m.keys.upload.identityKey, 'base64url'),
      deviceIds: [deviceOf(gil)],
    });
    const size = seen.size + 3;
    const nodes = new Map<string, Uint8Array>();
    for (let i = 0; i < size; i += 1) {
      const entry = i === size - 1 ? forged : Buffer.from(`fork ${i}`);
      const siblings = appendSiblings(i).map((k) => nodes.get(`${k.level}:${k.index}`)!);
      for (const n of appendNodes(i, leafHash(entry), siblings)) nodes.set(`${n.level}:${n.index}`, n.hash);
    }
    const read = (level: number, index: number) => nodes.get(`${level}:${index}`)!;
    const root = rootOf(read, size);
    const { sign } = await import('node:crypto');
    const body = `${signer.origin}\n${size}\n${Buffer.from(root).toString('base64')}\n`;
    const keyId = c.kt.keyIdOf(signer.origin, 1, transparencyKey(secret).publicKey);
    const sig = sign(null, Buffer.from(body), transparencyKey(secret).privateKey);
    const note = `${body}\n\u2014 ${signer.origin} ${Buffer.concat([keyId, sig]).toString('base64')}\n`;
    // The fork verifies on its own: signed by the pinned key, the forged entry included.
    const opened = c.kt.openCheckpoint(note, c.kt.parseVerifierKey(signer.verifierKey));
    const proof = inclusionProof(read, size - 1, size);
    expect(c.kt.verifyInclusion(size - 1, size, leafHash(forged), proof, opened.root)).toBe(true);

    evil.forgeHttp = (path) =>
      path === `/api/kt/accounts/${gil.userId}`
        ? {
            checkpoint: note,
            leaf: {
              index: size - 1,
              entry: Buffer.from(forged).toString('base64url'),
              proof: proof.map((h) => Buffer.from(h).toString('base64url')),
            },
          }
        : undefined;
    evil.rewriteHttp = (path, status, b) => (path === bundlePath(gil) && status === 200 ? swapped(b as never, m) : b);
    try {
      await openWith(fay, gil);
      await fay.engine.send(gil.userId, 'for gil only').catch(() => undefined);
      const trust = await until('the conversation blocked', () => fay.engine.getSnapshot().trust[gil.userId]);
      expect(trust.transparency).toMatch(/history changed|cannot prove that its log/);
      expect(sentTo(fay, [m.deviceId, deviceOf(gil)])).toEqual([]);
    } finally {
      evil.forgeHttp = null;
      evil.rewriteHttp = null;
    }
  });

  it('is caught when it truncates: a checkpoint smaller than the one seen must be a prefix of it', async () => {
    const ida = await user('ktida');
    const kt = asClient(ida.engine).transparency;
    await until('a first checkpoint', () => kt.latestCheckpoint());
    // Enough new accounts that the log grows past what Ida saw, then a truncated (and different) history.
    await user('ktjon');
    const seen = c.kt.parseCheckpointBody(c.kt.noteBody((await kt.latestCheckpoint())!));
    const secret = readFileSync(join(relay.dataDir, 'jwt-secret'), 'utf8').trim();
    const signer = transparencyKey(secret);
    const origin = new KeyTransparency(null!, signer).origin;
    const { sign } = await import('node:crypto');
    const small = Math.max(1, seen.size - 1);
    const body = `${origin}\n${small}\n${Buffer.alloc(32, 7).toString('base64')}\n`;
    const line = Buffer.concat([
      c.kt.keyIdOf(origin, 1, signer.publicKey),
      sign(null, Buffer.from(body), signer.privateKey),
    ]);
    evil.rewriteHttp = (path, status, b) =>
      path === '/api/kt/self/entries' && status === 200
        ? { checkpoint: `${body}\n\u2014 ${origin} ${line.toString('base64')}\n`, entries: [], more: false }
        : b;
    try {
      await expect(kt.checkOwnAccount()).rejects.toMatchObject({
        code: 'transparency_failed',
        message: expect.stringMatching(/its history changed/),
      });
    } finally {
      evil.rewriteHttp = null;
    }
  });
});

describe('a relay that hides a device from its owner', () => {
  it('raises no alarm for a device its owner sees, and "A device you don\'t know was added" for one hidden', async () => {
    const kim = await user('ktkim');
    const first = deviceOf(kim);
    const kt = asClient(kim.engine).transparency;
    await until('the first self-check', async () => (await kt.latestCheckpoint()) !== null);
    // Baseline: a second device the relay lists raises no alarm.
    const second = await boot(evil.url, `engine-${kim.name}-2`).signIn(kim.name, kim.password);
    engines.push(second);
    await until('second online', () => second.getSnapshot().connection === 'online');
    expect(await kt.checkOwnAccount()).toEqual([]);
    // Now a third device, hidden from the owner's device list.
    evil.rewriteHttp = (path, status, b) => {
      if (path !== '/api/devices' || status !== 200) return b;
      const list = b as { devices: { deviceId: string }[] };
      const shown = [first, second.getSnapshot().me.deviceId];
      return { devices: list.devices.filter((d) => shown.includes(d.deviceId)) };
    };
    try {
      const third = await boot(evil.url, `engine-${kim.name}-3`).signIn(kim.name, kim.password);
      engines.push(third);
      await until('third online', () => third.getSnapshot().connection === 'online');
      const alarms = await until('the alarm', async () => {
        const notices = kim.engine.getSnapshot().notices.filter((n) => /device you don't know/.test(n.text));
        return notices.length > 0 ? notices : null;
      });
      expect(alarms[0]!.kind).toBe('error');
    } finally {
      evil.rewriteHttp = null;
    }
  });
});

describe('gossip against a split view', () => {
  it('stops the conversation when a peer carries a checkpoint of another tree, signed with the relay key', async () => {
    const lia = await user('ktlia');
    await until('lia has seen the log', () => asClient(lia.engine).transparency.latestCheckpoint());
    const seen = c.kt.parseCheckpointBody(c.kt.noteBody((await asClient(lia.engine).transparency.latestCheckpoint())!));
    const m = await attackerAccount(relay.url);
    const realEntry = async (userId: string) => {
      const res = await fetch(`${relay.url}/api/kt/accounts/${userId}`, {
        headers: { authorization: `Bearer ${m.accessToken}` },
      });
      return Buffer.from(((await res.json()) as { leaf: { entry: string } }).leaf.entry, 'base64url');
    };
    const secret = readFileSync(join(relay.dataDir, 'jwt-secret'), 'utf8').trim();
    const keys = transparencyKey(secret);
    const signer = new KeyTransparency(null!, keys);

    // A newcomer, Max, is kept away from the real log until the operator's other view of it is ready.
    evil.forgeHttp = (path) => {
      if (path === '/api/kt/checkpoint') return { checkpoint: 'not yet', verifierKey: signer.verifierKey };
      if (path.startsWith('/api/kt/')) return {};
      return undefined;
    };
    let max: TestUser;
    try {
      max = await user('ktmax');
      // The other view: a tree in which Lia's and Max's real entries are the last leaves, signed with the relay key.
      const entries = [await realEntry(lia.userId), await realEntry(max.userId)];
      const size = seen.size + 10;
      const nodes = new Map<string, Uint8Array>();
      for (let i = 0; i < size; i += 1) {
        const entry = i >= size - 2 ? entries[i - (size - 2)]! : Buffer.from(`other view ${i}`);
        const siblings = appendSiblings(i).map((k) => nodes.get(`${k.level}:${k.index}`)!);
        for (const n of appendNodes(i, leafHash(entry), siblings)) nodes.set(`${n.level}:${n.index}`, n.hash);
      }
      const read = (level: number, index: number) => nodes.get(`${level}:${index}`)!;
      const body = `${signer.origin}\n${size}\n${Buffer.from(rootOf(read, size)).toString('base64')}\n`;
      const { sign } = await import('node:crypto');
      const line = Buffer.concat([
        c.kt.keyIdOf(signer.origin, 1, keys.publicKey),
        sign(null, Buffer.from(body), keys.privateKey),
      ]);
      const fork = `${body}\n\u2014 ${signer.origin} ${line.toString('base64')}\n`;
      const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
      const leafAt = (index: number) => ({
        index,
        entry: b64u(entries[index - (size - 2)]!),
        proof: inclusionProof(read, index, size).map(b64u),
      });
      // From here on the other view goes to Max's device only; Lia keeps talking to the real log.
      const maxDevice = deviceOf(max);
      evil.forgeHttp = null;
      evil.rewriteHttp = (path, status, answer, device) => {
        if (device !== maxDevice) return answer;
        if (path === '/api/kt/checkpoint') return { checkpoint: fork, verifierKey: signer.verifierKey };
        if (path === '/api/kt/self/entries') return { checkpoint: fork, entries: [], more: false };
        if (path === `/api/kt/accounts/${lia.userId}`) return { checkpoint: fork, leaf: leafAt(size - 2) };
        if (path === `/api/kt/accounts/${max.userId}`) return { checkpoint: fork, leaf: leafAt(size - 1) };
        return answer;
      };
      // Every check on Max's side passes, and his message to Lia carries the checkpoint of his view. (A message
      // carries the newest checkpoint its device verified when it was queued: wait until Max holds the fork, as he
      // does once his self-check or a bundle check ran; before that his first message would carry none.)
      await openWith(max, lia);
      await until('max holds the checkpoint of his view', async () => {
        const note = await asClient(max.engine).transparency.latestCheckpoint();
        return note === fork;
      });
      await max.engine.send(lia.userId, 'hello from the other view');
      await until('max → lia', () => hasText(lia.engine, max.userId, 'hello from the other view'));
    } finally {
      evil.forgeHttp = null;
      evil.rewriteHttp = null;
    }
    expect(max.engine.getSnapshot().trust[lia.userId]?.transparency).toBeUndefined();
    const trust = await until(
      'lia blocks the conversation',
      () => lia.engine.getSnapshot().trust[max.userId]?.transparency,
    );
    expect(trust).toMatch(/different versions of the relay's key log/);
    expect(lia.engine.getSnapshot().notices.some((n) => n.kind === 'error' && /different versions/.test(n.text))).toBe(
      true,
    );
  });
});
