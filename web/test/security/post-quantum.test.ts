// Post-quantum session setup (PQXDH) against the real relay and a malicious proxy in front of it: every new session
// encapsulates to a signed ML-KEM-768 prekey the relay handed out once; a relay that strips the KEM part gets no
// session, and a classic (X3DH) start sent to a device that published KEM prekeys is refused.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatEngineApi } from '../../src/client/types';
import { KEM_ONE_TIME_TARGET } from '../../src/client/own-keys';
import { asClient, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { attackerAccount, bundleAs, type Attacker } from '../support/accounts';
import { startTestRelay, type TestRelay } from '../support/relay';
import { startMaliciousRelay, type MaliciousRelay } from './malicious-relay';

let relay: TestRelay;
let evil: MaliciousRelay;
let now = Date.now();
const clock = { now: () => now };
const engines: ChatEngineApi[] = [];

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(evil.url, prefix, clock);
  engines.push(u.engine);
  return u;
}
const deviceOf = (u: TestUser): string => u.engine.getSnapshot().me.deviceId;
const kemStatus = async (u: TestUser) => {
  const s = await asClient(u.engine).dangerousTestOnlyPrekeyStatus();
  return { oneTime: s.kemOneTimePrekeys, lastResort: s.kemLastResortPrekeyId };
};

/** A first message from the attacker's own account to `to`'s device, as a session start of its choosing. */
async function startFrom(m: Attacker, to: TestUser, text: string, kem: 'post-quantum' | 'classic') {
  const { c } = m;
  const bundle = await bundleAs(relay.url, m.accessToken, to.userId);
  const device = bundle.devices.find((d) => d.deviceId === deviceOf(to))!;
  expect(device.kemPrekey).toBeTruthy(); // the relay holds one: a classic start is the sender's choice
  const session = c.initiateSession({
    identity: m.keys.identity,
    localUserId: m.userId,
    localDeviceId: m.deviceId,
    peerUserId: to.userId,
    peerDeviceId: device.deviceId,
    bundle: c.verifyPrekeyBundle({
      identityKey: bundle.identityKey,
      signedPrekey: device.signedPrekey,
      oneTimePrekey: device.oneTimePrekey,
      ...(kem === 'post-quantum' ? { kemPrekey: device.kemPrekey } : {}),
    }),
  });
  expect(session.postQuantum === true).toBe(kem === 'post-quantum');
  const id = c.createMessageId();
  const payload = new TextEncoder().encode(JSON.stringify({ v: 1, text, sentAt: now }));
  const { body } = await c.encryptToDevice(session, { messageId: id, content: { kind: 'chat', body: payload } });
  await evil.inject(deviceOf(to), [{ id, seq: 8_000_000 + Math.floor(Math.random() * 1_000_000), ts: now, body }]);
  return id;
}

beforeAll(async () => {
  relay = await startTestRelay();
  evil = await startMaliciousRelay(relay.url);
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await evil?.close();
  await relay?.close();
});

describe('post-quantum sessions (PQXDH)', () => {
  it('a new device publishes signed KEM prekeys, and the first message between two users starts a post-quantum session on a one-time KEM prekey handed out once', async () => {
    const alice = await user('pq_alice');
    const bob = await user('pq_bob');
    const before = await kemStatus(bob);
    expect(before).toEqual({ oneTime: KEM_ONE_TIME_TARGET, lastResort: expect.any(Number) });
    await openWith(alice, bob);
    await alice.engine.send(bob.userId, 'hello over PQXDH');
    await until('bob reads it', () => hasText(bob.engine, alice.userId, 'hello over PQXDH'));
    expect((await kemStatus(bob)).oneTime).toBe(before.oneTime - 1);
    expect(await asClient(alice.engine).dangerousTestOnlyPostQuantum(bob.userId)).toEqual(
      new Map([[deviceOf(bob), [true]]]),
    );
    expect(await asClient(bob.engine).dangerousTestOnlyPostQuantum(alice.userId)).toEqual(
      new Map([[deviceOf(alice), [true]]]),
    );
    await bob.engine.send(alice.userId, 'and back');
    await until('alice reads the reply', () => hasText(alice.engine, bob.userId, 'and back'));
  });

  it('a relay that strips the KEM prekey from a bundle gets no session: the send is refused and nothing reaches the device', async () => {
    const carol = await user('pq_carol');
    const dave = await user('pq_dave');
    const seenBefore = (evil.seen.get(deviceOf(dave)) ?? []).length;
    evil.rewriteHttp = (path, status, body) => {
      if (status !== 200 || !path.startsWith(`/api/users/${dave.userId}/bundle`)) return body;
      const answer = body as { devices: Record<string, unknown>[] };
      return { ...answer, devices: answer.devices.map(({ kemPrekey: _stripped, ...d }) => d) };
    };
    try {
      await openWith(carol, dave);
      const id = await carol.engine.send(dave.userId, 'not without PQ');
      const failed = await until('the send fails', async () =>
        (await history(carol.engine, dave.userId)).find((m) => m.id === id && m.failure !== undefined),
      );
      expect(failed.failure).toMatch(/no device that can receive post-quantum messages/);
    } finally {
      evil.rewriteHttp = null;
    }
    expect(await asClient(carol.engine).dangerousTestOnlyPostQuantum(dave.userId)).toEqual(new Map());
    // A later send, with the relay honest again, starts a post-quantum session and is the first thing dave gets.
    await carol.engine.send(dave.userId, 'with PQ');
    await until('dave reads it', () => hasText(dave.engine, carol.userId, 'with PQ'));
    const delivered = (evil.seen.get(deviceOf(dave)) ?? []).slice(seenBefore).filter((d) => d.seq !== 0);
    expect(delivered).toHaveLength(1);
    expect(await hasText(dave.engine, carol.userId, 'not without PQ')).toBe(false);
  });

  it('refuses a classic (X3DH) session start once the device has published KEM prekeys; a post-quantum one from the same kind of sender opens', async () => {
    const erin = await user('pq_erin');
    // Baseline: a stranger's post-quantum start is accepted and shown.
    const honest = await attackerAccount(relay.url);
    await startFrom(honest, erin, 'a post-quantum hello', 'post-quantum');
    await until('erin reads the post-quantum start', () => hasText(erin.engine, honest.userId, 'a post-quantum hello'));
    // The downgrade: the KEM part left out by the sender (or by a relay that rewrote the start).
    const downgrader = await attackerAccount(relay.url);
    const lastNotice = Math.max(0, ...erin.engine.getSnapshot().notices.map((n) => n.id));
    await startFrom(downgrader, erin, 'a classic hello', 'classic');
    const fresh = await until('the classic start is refused with a notice', () => {
      const added = erin.engine.getSnapshot().notices.filter((n) => n.id > lastNotice);
      return added.length > 0 ? added : undefined;
    });
    expect(fresh.map((n) => n.text)).toEqual(['A message could not be decrypted.']);
    expect(await hasText(erin.engine, downgrader.userId, 'a classic hello')).toBe(false);
    expect(erin.engine.getSnapshot().conversations.map((c) => c.conv)).toEqual([honest.userId]);
    expect(await asClient(erin.engine).dangerousTestOnlyPostQuantum(downgrader.userId)).toEqual(new Map());
  });

  it('hands out the last-resort KEM prekey when the one-time ones are gone, refills them at the next key check, and rotates the last-resort key weekly while the old one still opens', async () => {
    const fay = await user('pq_fay');
    const m = await attackerAccount(relay.url);
    const start = await kemStatus(fay);
    for (let i = 0; i < start.oneTime; i++) await bundleAs(relay.url, m.accessToken, fay.userId);
    expect((await kemStatus(fay)).oneTime).toBe(0);
    const drained = await bundleAs(relay.url, m.accessToken, fay.userId);
    expect(drained.devices[0]?.kemPrekey).toMatchObject({ keyId: start.lastResort, lastResort: true });
    // A start on the last-resort key opens, and the key stays for the next one.
    await startFrom(m, fay, 'on the last-resort key', 'post-quantum');
    await until('fay reads it', () => hasText(fay.engine, m.userId, 'on the last-resort key'));
    const other = await attackerAccount(relay.url);
    await startFrom(other, fay, 'on it again', 'post-quantum');
    await until('fay reads the second', () => hasText(fay.engine, other.userId, 'on it again'));

    await asClient(fay.engine).dangerousTestOnlyMaintain();
    expect(await kemStatus(fay)).toEqual({ oneTime: KEM_ONE_TIME_TARGET, lastResort: start.lastResort });

    // A week later the key check makes and publishes a new last-resort key...
    // A bundle fetched before the rotation that takes no one-time key: it carries the last-resort KEM prekey.
    const res = await fetch(new URL(`/api/users/${fay.userId}/bundle?devices=`, relay.url), {
      headers: { authorization: `Bearer ${m.accessToken}` },
    });
    const cached = (await res.json()) as Awaited<ReturnType<typeof bundleAs>>;
    expect(cached.devices[0]?.kemPrekey).toMatchObject({ keyId: start.lastResort, lastResort: true });
    now += 8 * 86_400_000;
    await asClient(fay.engine).dangerousTestOnlyMaintain();
    const rotated = await kemStatus(fay);
    expect(rotated.lastResort).not.toBeNull();
    expect(rotated.lastResort).not.toBe(start.lastResort);
    // ...and a start made from a bundle fetched before the rotation still opens during the grace period.
    const late = await attackerAccount(relay.url);
    const { c } = late;
    const device = cached.devices[0]!;
    const session = c.initiateSession({
      identity: late.keys.identity,
      localUserId: late.userId,
      localDeviceId: late.deviceId,
      peerUserId: fay.userId,
      peerDeviceId: device.deviceId,
      bundle: c.verifyPrekeyBundle({ identityKey: cached.identityKey, ...device }),
    });
    const id = c.createMessageId();
    const payload = new TextEncoder().encode(JSON.stringify({ v: 1, text: 'from a cached bundle', sentAt: now }));
    const { body } = await c.encryptToDevice(session, { messageId: id, content: { kind: 'chat', body: payload } });
    await evil.inject(deviceOf(fay), [{ id, seq: 7_000_000, ts: now, body }]);
    await until('fay reads the late start', () => hasText(fay.engine, late.userId, 'from a cached bundle'));
  });
});
