// Group sender keys: distribution over pairwise sessions, one encryption per message, rotation on removal.

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
  readGroupMessageDistributionId,
  type SenderKeyRecord,
  senderKeyDistribution,
  toBase64Url,
} from '../src/index.js';
import { acceptSenderKeyDistribution as acceptRaw } from '../src/sender-keys.js';
import { expectCode, startConversation, str, text } from './helpers.js';

const GROUP = 'group-1';

function encrypt(key: OwnSenderKey, message: string) {
  return encryptGroupMessage(key, { messageId: createMessageId(), content: { kind: 'chat', body: text(message) } });
}

/** Records held by each reader, by distribution id: what a client stores. */
class Member {
  own: OwnSenderKey;
  records = new Map<string, SenderKeyRecord>();
  constructor(
    readonly userId: string,
    readonly deviceId = `${userId}-d1`,
  ) {
    this.own = createSenderKey(GROUP);
  }
  learn(from: Member) {
    const record = acceptRaw(from.userId, from.deviceId, senderKeyDistribution(from.own));
    this.records.set(toBase64Url(record.distributionId), record);
  }
  send(message: string) {
    const r = encrypt(this.own, message);
    this.own = r.senderKey;
    return r.body;
  }
  read(body: Uint8Array) {
    const record = this.records.get(readGroupMessageDistributionId(body));
    if (!record) throw Object.assign(new Error('no record'), { code: 'unknown_sender_key' });
    const r = decryptGroupMessage(record, { groupId: GROUP, body });
    this.records.set(toBase64Url(record.distributionId), r.record);
    return r.message;
  }
}

function group(...names: string[]) {
  const members = names.map((n) => new Member(n));
  for (const a of members) for (const b of members) if (a !== b) a.learn(b);
  return members;
}

describe('sender keys', () => {
  it('distributes a sender key over a pairwise session', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const own = createSenderKey(GROUP);
    const sent = await encryptToDevice(bobSession, {
      messageId: createMessageId(),
      content: { kind: 'sender_key', body: senderKeyDistribution(own) },
    });
    const got = decryptFromDevice(aliceSession, await openEnvelope(alice.keys.identity, sent.body));
    expect(got.content.kind).toBe('sender_key');
    const record = acceptSenderKeyDistribution(got.session, got.content.body);
    expect(record.senderUserId).toBe('bob');
    const m = encrypt(own, 'to the group');
    const out = decryptGroupMessage(record, { groupId: GROUP, body: m.body });
    expect(str(out.message.content.body)).toBe('to the group');
    expect(out.message.senderUserId).toBe('bob');
  });

  it('encrypts once for every member and each member decrypts it', () => {
    const [alice, bob, carol] = group('alice', 'bob', 'carol');
    const body = alice!.send('hi all');
    expect(str(bob!.read(body).content.body)).toBe('hi all');
    expect(str(carol!.read(body).content.body)).toBe('hi all');
    expect(bob!.read(carol!.send('reply')).senderUserId).toBe('carol');
  });

  it('carries the message id and the content kind', () => {
    const [alice, bob] = group('alice', 'bob');
    const messageId = createMessageId();
    const r = encryptGroupMessage(alice!.own, { messageId, content: { kind: 'control', body: text('typing') } });
    const m = bob!.read(r.body);
    expect(m.messageId).toBe(messageId);
    expect(m.content.kind).toBe('control');
    expectCode(
      () => encryptGroupMessage(alice!.own, { messageId, content: { kind: 'sender_key', body: text('x') } }),
      'bad_input',
    );
  });

  it('decrypts out of order and rejects replays', () => {
    const [alice, bob] = group('alice', 'bob');
    const bodies = [alice!.send('0'), alice!.send('1'), alice!.send('2')];
    expect(str(bob!.read(bodies[2]!).content.body)).toBe('2');
    expect(str(bob!.read(bodies[0]!).content.body)).toBe('0');
    expectCode(() => bob!.read(bodies[0]!), 'duplicate_message');
    expectCode(() => bob!.read(bodies[2]!), 'duplicate_message');
    expect(str(bob!.read(bodies[1]!).content.body)).toBe('1');
  });

  it('rejects a message past the skip cap without changing the record', () => {
    const [alice, bob] = group('alice', 'bob');
    let last: Uint8Array = new Uint8Array(0);
    const first = alice!.send('first');
    for (let i = 0; i < 1001; i++) last = alice!.send(`m${i}`);
    const before = bob!.records.get(readGroupMessageDistributionId(first))!;
    expectCode(() => decryptGroupMessage(before, { groupId: GROUP, body: last }), 'too_many_skipped');
    expect(str(bob!.read(first).content.body)).toBe('first');
  });

  it('rejects forged, tampered and misdirected group messages', () => {
    const [alice, bob] = group('alice', 'bob');
    const body = alice!.send('signed');
    const record = bob!.records.get(readGroupMessageDistributionId(body))!;
    for (const i of [2, 20, 45, body.length - 70, body.length - 1]) {
      const t = body.slice();
      t[i]! ^= 1;
      if (i >= 2 && i < 18)
        expectCode(() => decryptGroupMessage(record, { groupId: GROUP, body: t }), 'unknown_sender_key');
      else expectCode(() => decryptGroupMessage(record, { groupId: GROUP, body: t }), 'invalid_signature');
    }
    expectCode(() => decryptGroupMessage(record, { groupId: 'group-2', body }), 'sender_mismatch');
    expectCode(() => decryptGroupMessage(record, { groupId: GROUP, body: body.subarray(0, 60) }), 'decrypt_failed');
    // Someone who knows the chain key (any member) still cannot sign as Alice.
    const forger: OwnSenderKey = {
      ...createSenderKey(GROUP),
      distributionId: alice!.own.distributionId,
      chainKey: record.chainKey,
      iteration: record.iteration,
    };
    expectCode(
      () => decryptGroupMessage(record, { groupId: GROUP, body: encrypt(forger, 'fake').body }),
      'invalid_signature',
    );
  });

  it('locks a removed member out after everyone rotates', () => {
    const [alice, bob, carol] = group('alice', 'bob', 'carol');
    expect(str(carol!.read(alice!.send('before')).content.body)).toBe('before');
    // Carol leaves: Alice and Bob each create a new sender key and distribute it to the remaining members only.
    for (const m of [alice!, bob!]) m.own = createSenderKey(GROUP);
    alice!.learn(bob!);
    bob!.learn(alice!);
    const after = [alice!.send('after 1'), bob!.send('after 2'), alice!.send('after 3')];
    expect(str(bob!.read(after[0]!).content.body)).toBe('after 1');
    expect(str(alice!.read(after[1]!).content.body)).toBe('after 2');
    for (const body of after) {
      expect(() => carol!.read(body)).toThrow();
      // Even trying every record Carol ever held fails.
      for (const record of carol!.records.values()) {
        expect(() => decryptGroupMessage(record, { groupId: GROUP, body })).toThrow(/different sender key/);
      }
    }
  });

  it('rejects a distribution with a bad signing key or version', () => {
    const own = createSenderKey(GROUP);
    const d = senderKeyDistribution(own);
    const badKey = d.slice();
    badKey.fill(0, d.length - 32);
    expectCode(() => acceptRaw('a', 'b', badKey), 'invalid_key');
    const badVersion = d.slice();
    badVersion[0] = 9;
    expectCode(() => acceptRaw('a', 'b', badVersion), 'unsupported_version');
    expectCode(() => acceptRaw('a', 'b', d.subarray(0, 20)), 'bad_input');
  });
});
