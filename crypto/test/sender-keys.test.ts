// Group sender keys: distribution over pairwise sessions, one encryption per message, rotation on removal; every
// distribution and group body names its sender user and device, bound into the signature and the AD.

import { describe, expect, it } from 'vitest';
import {
  acceptSenderKeyDistribution,
  createMessageId,
  createSenderKey,
  decryptFromDevice,
  decryptGroupMessage,
  encryptGroupMessage,
  encryptToDevice,
  openEnvelope,
  type OwnSenderKey,
  readGroupMessageHeader,
  type SenderKeyRecord,
  senderKeyDistribution,
  toBase64Url,
} from '../src/index.js';
import { acceptSenderKeyDistribution as acceptRaw } from '../src/sender-keys.js';
import { expectCode, startConversation, str, text } from './helpers.js';

const GROUP = 'group-1';

/** A group body and the message id it was sent under (what the relay entry carries). */
interface Sent {
  id: string;
  body: Uint8Array;
}

function encrypt(key: OwnSenderKey, message: string): { senderKey: OwnSenderKey } & Sent {
  const id = createMessageId();
  const r = encryptGroupMessage(key, { messageId: id, content: { kind: 'chat', body: text(message) } });
  return { ...r, id };
}

/** How a client stores records: by (sender user, sender device, distribution id), never by distribution id alone. */
const slot = (userId: string, deviceId: string, distributionId: string): string =>
  JSON.stringify([userId, deviceId, distributionId]);

/** Records held by each reader, as a client stores them; the first record for a slot is kept. */
class Member {
  own: OwnSenderKey;
  records = new Map<string, SenderKeyRecord>();
  constructor(
    readonly userId: string,
    readonly deviceId = `${userId}-d1`,
  ) {
    this.own = createSenderKey({ groupId: GROUP, senderUserId: userId, senderDeviceId: deviceId });
  }
  /** A distribution that arrived over the pairwise session with `from` (user, device). */
  receive(from: { userId: string; deviceId: string }, distribution: Uint8Array) {
    const record = acceptRaw(from.userId, from.deviceId, distribution);
    const key = slot(record.senderUserId, record.senderDeviceId, toBase64Url(record.distributionId));
    if (!this.records.has(key)) this.records.set(key, record);
  }
  learn(from: Member) {
    this.receive(from, senderKeyDistribution(from.own));
  }
  send(message: string): Sent {
    const r = encrypt(this.own, message);
    this.own = r.senderKey;
    return { id: r.id, body: r.body };
  }
  recordFor(body: Uint8Array): SenderKeyRecord | undefined {
    const h = readGroupMessageHeader(body);
    return this.records.get(slot(h.senderUserId, h.senderDeviceId, h.distributionId));
  }
  read(m: Sent) {
    const record = this.recordFor(m.body);
    if (!record) throw Object.assign(new Error('no record'), { code: 'unknown_sender_key' });
    const r = decryptGroupMessage(record, { groupId: GROUP, messageId: m.id, body: m.body });
    this.records.set(slot(record.senderUserId, record.senderDeviceId, toBase64Url(record.distributionId)), r.record);
    return r.message;
  }
}

function group(...names: string[]) {
  const members = names.map((n) => new Member(n));
  for (const a of members) for (const b of members) if (a !== b) a.learn(b);
  return members;
}

/** Rewrites the sender a v2 distribution names (what a member who re-labels someone else's key would send). */
function relabel(distribution: Uint8Array, userId: string, deviceId: string): Uint8Array {
  const groupLen = distribution[1]!;
  let at = 2 + groupLen;
  at += 1 + distribution[at]!; // sender user
  at += 1 + distribution[at]!; // sender device
  const enc = (s: string) => {
    const b = text(s);
    return Uint8Array.from([b.length, ...b]);
  };
  return Uint8Array.from([
    ...distribution.subarray(0, 2 + groupLen),
    ...enc(userId),
    ...enc(deviceId),
    ...distribution.subarray(at),
  ]);
}

describe('sender keys', () => {
  it('distributes a sender key over a pairwise session', async () => {
    const { alice, bob, aliceSession, bobSession } = await startConversation();
    const own = createSenderKey({ groupId: GROUP, senderUserId: bob.userId, senderDeviceId: bob.deviceId });
    const sent = await encryptToDevice(bobSession, {
      messageId: createMessageId(),
      content: { kind: 'sender_key', body: senderKeyDistribution(own) },
    });
    const got = decryptFromDevice(aliceSession, await openEnvelope(alice.keys.identity, sent.body));
    expect(got.content.kind).toBe('sender_key');
    const record = acceptSenderKeyDistribution(got.session, got.content.body);
    expect([record.senderUserId, record.senderDeviceId]).toEqual(['bob', 'bob-d1']);
    const m = encrypt(own, 'to the group');
    const out = decryptGroupMessage(record, { groupId: GROUP, messageId: m.id, body: m.body });
    expect(str(out.message.content.body)).toBe('to the group');
    expect([out.message.senderUserId, out.message.senderDeviceId, out.message.messageId]).toEqual([
      'bob',
      'bob-d1',
      m.id,
    ]);
  });

  it('encrypts once for every member and each member decrypts it', () => {
    const [alice, bob, carol] = group('alice', 'bob', 'carol');
    const m = alice!.send('hi all');
    expect(str(bob!.read(m).content.body)).toBe('hi all');
    expect(str(carol!.read(m).content.body)).toBe('hi all');
    expect(bob!.read(carol!.send('reply')).senderUserId).toBe('carol');
  });

  it('carries the message id, the sender and the content kind', () => {
    const [alice, bob] = group('alice', 'bob');
    const messageId = createMessageId();
    const r = encryptGroupMessage(alice!.own, { messageId, content: { kind: 'control', body: text('typing') } });
    expect(readGroupMessageHeader(r.body)).toMatchObject({
      senderUserId: 'alice',
      senderDeviceId: 'alice-d1',
      distributionId: toBase64Url(alice!.own.distributionId),
      iteration: 0,
      messageId,
    });
    const m = bob!.read({ id: messageId, body: r.body });
    expect(m.messageId).toBe(messageId);
    expect(m.content.kind).toBe('control');
    expectCode(
      () => encryptGroupMessage(alice!.own, { messageId, content: { kind: 'sender_key', body: text('x') } }),
      'bad_input',
    );
  });

  it('decrypts out of order and rejects replays', () => {
    const [alice, bob] = group('alice', 'bob');
    const sent = [alice!.send('0'), alice!.send('1'), alice!.send('2')];
    expect(str(bob!.read(sent[2]!).content.body)).toBe('2');
    expect(str(bob!.read(sent[0]!).content.body)).toBe('0');
    expectCode(() => bob!.read(sent[0]!), 'duplicate_message');
    expectCode(() => bob!.read(sent[2]!), 'duplicate_message');
    expect(str(bob!.read(sent[1]!).content.body)).toBe('1');
  });

  it('rejects a message past the skip cap without changing the record', () => {
    const [alice, bob] = group('alice', 'bob');
    let last: Sent = { id: '', body: new Uint8Array(0) };
    const first = alice!.send('first');
    for (let i = 0; i < 1001; i++) last = alice!.send(`m${i}`);
    const before = bob!.recordFor(first.body)!;
    expectCode(
      () => decryptGroupMessage(before, { groupId: GROUP, messageId: last.id, body: last.body }),
      'too_many_skipped',
    );
    expect(str(bob!.read(first).content.body)).toBe('first');
  });

  it('refuses a body whose signed message id is not the id it was delivered under', () => {
    const [alice, bob] = group('alice', 'bob');
    const m = alice!.send('pay carol 5');
    const record = bob!.recordFor(m.body)!;
    // A relay re-delivering Alice's body under an id of its own.
    expectCode(
      () => decryptGroupMessage(record, { groupId: GROUP, messageId: createMessageId(), body: m.body }),
      'message_id_mismatch',
    );
    // The relay also rewrites the id in the clear header: the signature no longer verifies.
    const forged = m.body.slice();
    const newId = createMessageId();
    const at = readHeaderOffsets(m.body).messageId;
    forged.set(Buffer.from(newId, 'base64url'), at);
    expectCode(
      () => decryptGroupMessage(record, { groupId: GROUP, messageId: newId, body: forged }),
      'invalid_signature',
    );
    // Nothing was consumed: the genuine delivery still opens.
    expect(str(bob!.read(m).content.body)).toBe('pay carol 5');
  });

  it('refuses a body delivered for another group than the one it was signed for', () => {
    const [alice, bob] = group('alice', 'bob');
    const m = alice!.send('for group-1');
    const record = bob!.recordFor(m.body)!;
    expectCode(
      () => decryptGroupMessage(record, { groupId: 'group-2', messageId: m.id, body: m.body }),
      'sender_mismatch',
    );
    // Even with a record that claims the other group (same keys), the signed group id does not match.
    const moved: SenderKeyRecord = { ...record, groupId: 'group-2' };
    expectCode(
      () => decryptGroupMessage(moved, { groupId: 'group-2', messageId: m.id, body: m.body }),
      'invalid_signature',
    );
  });

  it('signs and authenticates every field of the header: tampering any one is refused', () => {
    const [alice, bob] = group('alice', 'bob');
    const m = alice!.send('signed');
    const record = bob!.recordFor(m.body)!;
    const o = readHeaderOffsets(m.body);
    const open = (body: Uint8Array, r: SenderKeyRecord = record, messageId = m.id) =>
      decryptGroupMessage(r, { groupId: GROUP, messageId, body });
    const flip = (i: number) => {
      const t = m.body.slice();
      t[i]! ^= 1;
      return t;
    };
    expectCode(() => open(flip(0)), 'unsupported_version');
    expectCode(() => open(flip(1)), 'decrypt_failed');
    // Each field changed, with a record and an expected id that agree with the change: only the signature is left.
    const header = (t: Uint8Array) => readGroupMessageHeader(t);
    const agreeing = (t: Uint8Array): SenderKeyRecord => ({
      ...record,
      senderUserId: header(t).senderUserId,
      senderDeviceId: header(t).senderDeviceId,
      distributionId: Buffer.from(header(t).distributionId, 'base64url'),
    });
    for (const [field, i] of [
      ['sender user', o.senderUserId],
      ['sender device', o.senderDeviceId],
      ['distribution id', o.distributionId],
      ['iteration', o.iteration + 3],
      ['message id', o.messageId],
      ['nonce', o.nonce],
      ['ciphertext', o.ciphertext],
      ['signature', m.body.length - 1],
    ] as const) {
      const t = flip(i);
      const err = expectCode(() => open(t, agreeing(t), header(t).messageId), 'invalid_signature');
      expect(err.message, field).toMatch(/signature/);
      // And against the genuine record and id, it is refused too.
      expect(() => open(t), field).toThrow();
    }
    // Changed names are also refused against the genuine record before any signature check.
    expectCode(() => open(flip(o.senderUserId)), 'sender_mismatch');
    expectCode(() => open(flip(o.senderDeviceId)), 'sender_mismatch');
    expectCode(() => open(flip(o.distributionId)), 'unknown_sender_key');
    expectCode(() => open(m.body.subarray(0, 60)), 'decrypt_failed');
    expectCode(() => open(Uint8Array.from([...m.body.subarray(0, 2), 200, ...m.body.subarray(3)])), 'decrypt_failed');
    // Someone who knows the chain key (any member) still cannot sign as Alice.
    const forger: OwnSenderKey = {
      ...createSenderKey({ groupId: GROUP, senderUserId: 'alice', senderDeviceId: 'alice-d1' }),
      distributionId: alice!.own.distributionId,
      chainKey: record.chainKey,
      iteration: record.iteration,
    };
    const fake = encrypt(forger, 'fake');
    expectCode(() => open(fake.body, record, fake.id), 'invalid_signature');
    expect(str(bob!.read(m).content.body)).toBe('signed');
  });

  it("a member who forwards Alice's distribution as his own cannot make her messages decrypt as his", () => {
    const [alice, bob, mallory] = group('alice', 'bob', 'mallory');
    const fresh = new Member('bob', 'bob-d2'); // a device of Bob's that has no record of Alice's key yet
    const aliceDistribution = senderKeyDistribution(alice!.own);
    // Forwarded unchanged over Mallory's pairwise session: it names Alice, so it is refused.
    expectCode(() => fresh.receive(mallory!, aliceDistribution), 'sender_mismatch');
    // Re-labelled to name Mallory: accepted, but only as Mallory's key.
    fresh.receive(mallory!, relabel(aliceDistribution, 'mallory', 'mallory-d1'));
    fresh.learn(alice!);
    const m = alice!.send('from alice');
    const got = fresh.read(m);
    expect([got.senderUserId, got.senderDeviceId]).toEqual(['alice', 'alice-d1']);
    // The re-labelled record never opens Alice's message, and Mallory cannot re-label the message itself.
    const stolen = fresh.records.get(slot('mallory', 'mallory-d1', toBase64Url(alice!.own.distributionId)))!;
    expectCode(() => decryptGroupMessage(stolen, { groupId: GROUP, messageId: m.id, body: m.body }), 'sender_mismatch');
    const relabelled = relabelBody(m.body, 'mallory', 'mallory-d1');
    expectCode(
      () => decryptGroupMessage(stolen, { groupId: GROUP, messageId: m.id, body: relabelled }),
      'invalid_signature',
    );
    expect(str(bob!.read(m).content.body)).toBe('from alice');
  });

  it('refuses a distribution that names another device or another user than the session it came on', () => {
    const own = createSenderKey({ groupId: GROUP, senderUserId: 'alice', senderDeviceId: 'alice-d1' });
    const d = senderKeyDistribution(own);
    expectCode(() => acceptRaw('alice', 'alice-d2', d), 'sender_mismatch');
    expectCode(() => acceptRaw('mallory', 'alice-d1', d), 'sender_mismatch');
    expectCode(() => acceptRaw('alice-', 'd1', relabel(d, 'alice', '-d1')), 'sender_mismatch');
    expect(acceptRaw('alice', 'alice-d1', d).senderDeviceId).toBe('alice-d1');
  });

  it("squatting Alice's distribution id under another sender does not stop her messages decrypting", () => {
    const [alice, bob, mallory] = group('alice', 'bob', 'mallory');
    const victim = new Member('bob', 'bob-d2');
    // Mallory's own key, but with Alice's distribution id, reaches the new device first.
    mallory!.own = { ...mallory!.own, distributionId: alice!.own.distributionId };
    victim.learn(mallory!);
    victim.learn(alice!);
    const fromAlice = alice!.send('alice speaks');
    const fromMallory = mallory!.send('mallory speaks');
    expect(victim.read(fromAlice)).toMatchObject({ senderUserId: 'alice' });
    expect(str(victim.read(fromMallory).content.body)).toBe('mallory speaks');
    expect(victim.read(alice!.send('again')).senderUserId).toBe('alice');
    expect(str(bob!.read(fromAlice).content.body)).toBe('alice speaks');
  });

  it('locks a removed member out after everyone rotates', () => {
    const [alice, bob, carol] = group('alice', 'bob', 'carol');
    expect(str(carol!.read(alice!.send('before')).content.body)).toBe('before');
    // Carol leaves: Alice and Bob each create a new sender key and distribute it to the remaining members only.
    for (const m of [alice!, bob!]) {
      m.own = createSenderKey({ groupId: GROUP, senderUserId: m.userId, senderDeviceId: m.deviceId });
    }
    alice!.learn(bob!);
    bob!.learn(alice!);
    const after = [alice!.send('after 1'), bob!.send('after 2'), alice!.send('after 3')];
    expect(str(bob!.read(after[0]!).content.body)).toBe('after 1');
    expect(str(alice!.read(after[1]!).content.body)).toBe('after 2');
    for (const m of after) {
      expect(() => carol!.read(m)).toThrow();
      // Even trying every record Carol ever held fails.
      for (const record of carol!.records.values()) {
        expect(() => decryptGroupMessage(record, { groupId: GROUP, messageId: m.id, body: m.body })).toThrow(
          /different sender/,
        );
      }
    }
  });

  it('rejects a distribution with a bad signing key, a version 1 format or trailing bytes', () => {
    const own = createSenderKey({ groupId: GROUP, senderUserId: 'a', senderDeviceId: 'b' });
    const d = senderKeyDistribution(own);
    expect(d[0]).toBe(2);
    const badKey = d.slice();
    badKey.fill(0, d.length - 32);
    expectCode(() => acceptRaw('a', 'b', badKey), 'invalid_key');
    const v1 = d.slice();
    v1[0] = 1;
    expectCode(() => acceptRaw('a', 'b', v1), 'unsupported_version');
    expectCode(() => acceptRaw('a', 'b', d.subarray(0, 20)), 'bad_input');
    expectCode(() => acceptRaw('a', 'b', Uint8Array.from([...d, 0])), 'bad_input');
  });
});

/** Where each field of a v2 group body starts. */
function readHeaderOffsets(body: Uint8Array) {
  const senderUserId = 3;
  const senderDeviceId = senderUserId + body[2]! + 1;
  const distributionId = senderDeviceId + body[senderDeviceId - 1]!;
  const iteration = distributionId + 16;
  const messageId = iteration + 4;
  const nonce = messageId + 16;
  const ciphertext = nonce + 24;
  return { senderUserId, senderDeviceId, distributionId, iteration, messageId, nonce, ciphertext };
}

/** A group body with its sender names rewritten (the signature is left as it was). */
function relabelBody(body: Uint8Array, userId: string, deviceId: string): Uint8Array {
  const o = readHeaderOffsets(body);
  const enc = (s: string) => {
    const b = text(s);
    return [b.length, ...b];
  };
  return Uint8Array.from([
    ...body.subarray(0, 2),
    ...enc(userId),
    ...enc(deviceId),
    ...body.subarray(o.distributionId),
  ]);
}
