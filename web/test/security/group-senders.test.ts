// Group messages against a hostile relay and a hostile member: a group body re-delivered under an id of the relay's
// is refused and stored under no id; a member who forwards Alice's sender-key distribution as his own never gets
// Alice's messages shown under his name. Alice and Bob are real engines; Mallory is a real relay account and a real
// group member whose client is written here with the crypto library (his keys are the attacker's).
import 'fake-indexeddb/auto';
import type { Envelope, Session } from '@weconnect/crypto';
import { io, type Socket } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCrypto } from '../../src/client/crypto-loader';
import type { Person } from '../../src/client/types';
import { asClient, history, signUpUser, until, uniqueName, type TestUser } from '../support/engine';
import { attackerAccount, bundleAs, type Attacker } from '../support/accounts';
import { startTestRelay, type TestRelay } from '../support/relay';
import { startMaliciousRelay, type Delivery, type MaliciousRelay } from './malicious-relay';

type Crypto = Awaited<ReturnType<typeof loadCrypto>>;

let relay: TestRelay;
let evil: MaliciousRelay;
let alice: TestUser;
let bob: TestUser;
let mallory: Mallory;

const deviceOf = (u: TestUser): string => u.engine.getSnapshot().me.deviceId;
const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });
const notices = (u: TestUser): string[] => u.engine.getSnapshot().notices.map((n) => n.text);
const knowsGroup = (u: TestUser, group: string) =>
  u.engine.getSnapshot().conversations.some((c) => c.conv === group && c.group !== undefined);

/**
 * Mallory's own client: registers on the real relay, connects with his token, opens what his devices are sent
 * (pairwise, as a responder) and sends pairwise envelopes of his choosing over his own sessions.
 */
class Mallory {
  readonly sessions = new Map<string, Session>();
  /** Every pairwise content Mallory's device received, decrypted, with its sender. */
  readonly received: { from: string; kind: string; body: Uint8Array }[] = [];
  readonly groupEntries: Delivery[] = [];
  #socket: Socket | null = null;

  private constructor(
    readonly c: Crypto,
    readonly keys: ReturnType<Crypto['createAccountKeys']>,
    readonly kemPrekey: Attacker['kemPrekey'],
    readonly userId: string,
    readonly deviceId: string,
    readonly username: string,
    readonly token: string,
  ) {}

  static async register(relayUrl: string): Promise<Mallory> {
    const a = await attackerAccount(relayUrl, uniqueName('mallory'));
    const m = new Mallory(a.c, a.keys, a.kemPrekey, a.userId, a.deviceId, a.username, a.accessToken);
    await m.#connect(relayUrl);
    return m;
  }

  get person(): Person {
    return { userId: this.userId, username: this.username };
  }

  async #connect(relayUrl: string): Promise<void> {
    const socket = io(relayUrl, {
      parser: msgpackParser,
      transports: ['websocket'],
      forceNew: true,
      auth: { token: this.token },
    });
    socket.on('messages', (batch: Delivery[], ack: () => void) => {
      void (async () => {
        for (const d of batch) {
          // What Mallory's client cannot open (e.g. replies on sessions it started and did not keep) it skips.
          await this.#open(d).catch(() => undefined);
        }
        ack();
      })();
    });
    this.#socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
  }

  async #open(d: Delivery): Promise<void> {
    if (d.group !== undefined) {
      this.groupEntries.push(d);
      return;
    }
    const c = this.c;
    const env: Envelope = await c.openEnvelope(this.keys.identity, new Uint8Array(d.body));
    const slot = JSON.stringify([env.senderUserId, env.senderDeviceId]);
    const existing = this.sessions.get(slot) ?? null;
    let out;
    if (c.isNewSession(existing, env)) {
      const info = c.readPrekeyMessage(env.payload);
      out = c.acceptSession({
        identity: this.keys.identity,
        localUserId: this.userId,
        localDeviceId: this.deviceId,
        envelope: env,
        signedPrekey: this.keys.signedPrekey,
        oneTimePrekey: this.keys.oneTimePrekeys.find((k) => k.keyId === info.oneTimePrekeyId) ?? null,
        kemPrekey: this.kemPrekey(info.kemPrekeyId),
        expectedPeerIdentityKey: info.identityKey,
      });
    } else {
      out = c.decryptFromDevice(existing!, env);
    }
    this.sessions.set(slot, out.session);
    this.received.push({ from: env.senderUserId, kind: out.content.kind, body: out.content.body });
  }

  /** Sends `content` to every device of `userId` over Mallory's own (new) pairwise sessions, through the relay. */
  async sendPairwise(userId: string, id: string, content: { kind: 'sender_key'; body: Uint8Array }): Promise<void> {
    const c = this.c;
    const bundle = await bundleAs(relay.url, this.token, userId);
    const envelopes = [];
    for (const device of bundle.devices) {
      const session = c.initiateSession({
        identity: this.keys.identity,
        localUserId: this.userId,
        localDeviceId: this.deviceId,
        peerUserId: userId,
        peerDeviceId: device.deviceId,
        bundle: c.verifyPrekeyBundle({ identityKey: bundle.identityKey, ...device }),
      });
      const sent = await c.encryptToDevice(session, { messageId: id, content });
      envelopes.push({ to: device.deviceId, body: sent.body });
    }
    const ack = (await this.#socket!.emitWithAck('message:send', { id, envelopes })) as { ok: boolean };
    expect(ack.ok).toBe(true);
  }

  close(): void {
    this.#socket?.close();
  }
}

beforeAll(async () => {
  relay = await startTestRelay();
  evil = await startMaliciousRelay(relay.url);
  [alice, bob] = await Promise.all([signUpUser(evil.url, 'gs_alice'), signUpUser(evil.url, 'gs_bob')]);
  mallory = await Mallory.register(relay.url);
}, 60_000);

afterAll(async () => {
  for (const u of [alice, bob]) if (u) asClient(u.engine).close();
  mallory?.close();
  await evil?.close();
  await relay?.close();
});

describe('group senders against a hostile member and a hostile relay', () => {
  it("a member who forwards Alice's sender-key distribution as his own never has her messages shown as his", async () => {
    const group = await alice.engine.createGroup('Forwarded keys', [person(bob), mallory.person]);
    await until('bob knows the group', () => knowsGroup(bob, group));

    // From here Bob's deliveries are held until Mallory's forgery arrives; it then reaches Bob first, ahead of
    // Alice's own distribution (the relay colludes on ordering; a fast member could win this race alone).
    const held: Delivery[] = [];
    let forgeryId: string | null = null;
    evil.tamper = (device, batch) => {
      if (device !== deviceOf(bob)) return batch;
      const forgery = batch.find((d) => d.id === forgeryId);
      if (!forgery) {
        held.push(...batch);
        return [];
      }
      evil.tamper = null;
      return [forgery, ...held.splice(0), ...batch.filter((d) => d !== forgery)];
    };
    try {
      const id = await alice.engine.send(group, 'the real alice speaks');
      const distribution = await until('mallory has alice’s distribution', () =>
        mallory.received.find((r) => r.from === alice.userId && r.kind === 'sender_key'),
      );
      await until('alice’s group body is on its way to bob', () => held.some((d) => d.group === group));
      // Mallory's client forwards the bytes unchanged, over his own session with Bob.
      forgeryId = mallory.c.createMessageId();
      await mallory.sendPairwise(bob.userId, forgeryId, { kind: 'sender_key', body: distribution.body });

      const shown = await until('bob shows the message', async () =>
        (await history(bob.engine, group)).find((m) => m.id === id),
      );
      expect(shown).toMatchObject({ text: 'the real alice speaks', sender: alice.userId });
      expect(shown.failure).toBeUndefined();
      expect((await history(bob.engine, group)).filter((m) => m.sender === mallory.userId)).toEqual([]);
    } finally {
      evil.tamper = null;
    }
  });

  it('a relay that re-delivers a group body under another message id: refused, nothing stored under its id', async () => {
    const c = await loadCrypto();
    const group = await alice.engine.createGroup('Relabelled ids', [person(bob), mallory.person]);
    await until('bob knows the group', () => knowsGroup(bob, group));
    let original: Delivery | null = null;
    const relayId = c.createMessageId();
    evil.tamper = (device, batch) => {
      if (device !== deviceOf(bob)) return batch;
      return batch.map((d) => {
        if (d.group !== group || d.seq === 0 || original) return d;
        original = d;
        return { ...d, id: relayId };
      });
    };
    try {
      const before = notices(bob).length;
      const id = await alice.engine.send(group, 'sent under my own id');
      const underRelayId = async () => (await history(bob.engine, group)).filter((m) => m.id === relayId);
      // Bob handled the relabelled delivery: he was told, or (what must not happen) stored it under the relay's id.
      await until(
        'bob handles it',
        async () =>
          notices(bob)
            .slice(before)
            .some((n) => /header did not check out/.test(n)) || (await underRelayId()).length > 0,
      );
      expect(await underRelayId()).toEqual([]);
      expect(original!.id).toBe(id);
      // The refusal consumed nothing: the body under its own id still opens, once.
      evil.tamper = null;
      await evil.inject(deviceOf(bob), [original!]);
      const copies = await until('bob shows it under its own id', async () => {
        const got = (await history(bob.engine, group)).filter((m) => m.text === 'sent under my own id');
        return got.length > 0 ? got : undefined;
      });
      expect(copies).toHaveLength(1);
      expect(copies[0]).toMatchObject({ id, sender: alice.userId });
      expect(copies[0]!.failure).toBeUndefined();
    } finally {
      evil.tamper = null;
    }
  });
});
