// Serialisation: JSON-safe round trips of every state, mid-conversation, and strict parsing.

import { describe, expect, it } from 'vitest';
import {
  createSenderKey,
  decryptGroupMessage,
  deserializeIdentity,
  deserializeOneTimePrekey,
  deserializeOwnSenderKey,
  deserializeSenderKeyRecord,
  deserializeSession,
  deserializeSignedPrekey,
  encryptGroupMessage,
  createMessageId,
  generateIdentity,
  senderKeyDistribution,
  serializeIdentity,
  serializeOneTimePrekey,
  serializeOwnSenderKey,
  serializeSenderKeyRecord,
  serializeSession,
  serializeSignedPrekey,
  type Session,
} from '../src/index.js';
import { acceptSenderKeyDistribution } from '../src/sender-keys.js';
import { expectCode, party, receive, send, startConversation, str, text } from './helpers.js';

/** Through JSON text, as IndexedDB or a backup would see it. */
const viaJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

describe('serialisation', () => {
  it('round-trips identities and prekeys', () => {
    const { keys } = party('alice');
    const id = deserializeIdentity(viaJson(serializeIdentity(keys.identity)));
    expect(id).toEqual(keys.identity);
    expect(deserializeSignedPrekey(viaJson(serializeSignedPrekey(keys.signedPrekey)))).toEqual(keys.signedPrekey);
    const otk = keys.oneTimePrekeys[0]!;
    expect(deserializeOneTimePrekey(viaJson(serializeOneTimePrekey(otk)))).toEqual(otk);
    expect(serializeIdentity(keys.identity).version).toBe(1);
  });

  it('saves and loads sessions mid-conversation, then continues both ways', async () => {
    const { alice, bob, ...started } = await startConversation();
    let { aliceSession, bobSession } = started;
    const reload = (s: Session) => deserializeSession(viaJson(serializeSession(s)));
    // Leave skipped keys in Alice's session so they are serialized too.
    const m0 = await send(bobSession, 'm0');
    const m1 = await send(m0.session, 'm1');
    bobSession = m1.session;
    aliceSession = (await receive(alice, aliceSession, m1.body)).session;
    expect(aliceSession.skipped.size).toBe(1);
    aliceSession = reload(aliceSession);
    bobSession = reload(bobSession);
    expect(aliceSession.skipped.size).toBe(1);
    expect(str((await receive(alice, aliceSession, m0.body)).content.body)).toBe('m0');
    for (let i = 0; i < 3; i++) {
      const a = await send(aliceSession, `a${i}`);
      aliceSession = reload(a.session);
      const got = await receive(bob, bobSession, a.body);
      bobSession = reload(got.session);
      expect(str(got.content.body)).toBe(`a${i}`);
      const b = await send(bobSession, `b${i}`);
      bobSession = reload(b.session);
      const back = await receive(alice, aliceSession, b.body);
      aliceSession = reload(back.session);
      expect(str(back.content.body)).toBe(`b${i}`);
    }
  });

  it('keeps a pending prekey state across a reload', async () => {
    const { aliceSession } = await startConversation();
    const loaded = deserializeSession(viaJson(serializeSession(aliceSession)));
    expect(loaded.pendingPrekey).toEqual(aliceSession.pendingPrekey);
    expect(serializeSession(loaded)).toEqual(serializeSession(aliceSession));
  });

  it('round-trips sender keys and records mid-chain', () => {
    let own = createSenderKey({ groupId: 'g', senderUserId: 'alice', senderDeviceId: 'a1' });
    let record = acceptSenderKeyDistribution('alice', 'a1', senderKeyDistribution(own));
    const sent: { id: string; body: Uint8Array }[] = [];
    for (let i = 0; i < 3; i++) {
      const id = createMessageId();
      const r = encryptGroupMessage(own, { messageId: id, content: { kind: 'chat', body: text(`g${i}`) } });
      own = deserializeOwnSenderKey(viaJson(serializeOwnSenderKey(r.senderKey)));
      sent.push({ id, body: r.body });
    }
    const open = (r: typeof record, m: { id: string; body: Uint8Array }) =>
      decryptGroupMessage(r, { groupId: 'g', messageId: m.id, body: m.body });
    record = open(record, sent[2]!).record;
    record = deserializeSenderKeyRecord(viaJson(serializeSenderKeyRecord(record)));
    expect(record.skipped.size).toBe(2);
    expect(record.senderDeviceId).toBe('a1');
    expect(str(open(record, sent[0]!).message.content.body)).toBe('g0');
    const id = createMessageId();
    const next = encryptGroupMessage(own, { messageId: id, content: { kind: 'chat', body: text('g3') } });
    expect(str(open(record, { id, body: next.body }).message.content.body)).toBe('g3');
  });

  it('refuses sender keys and records of version 1, which named no sender', () => {
    const own = serializeOwnSenderKey(createSenderKey({ groupId: 'g', senderUserId: 'alice', senderDeviceId: 'a1' }));
    const { senderUserId: _u, senderDeviceId: _d, ...v1Own } = { ...own, version: 1 };
    expectCode(() => deserializeOwnSenderKey(v1Own), 'unsupported_version');
    const record = serializeSenderKeyRecord(
      acceptSenderKeyDistribution('alice', 'a1', senderKeyDistribution(deserializeOwnSenderKey(own))),
    );
    expectCode(() => deserializeSenderKeyRecord({ ...record, version: 1 }), 'unsupported_version');
  });

  it('rejects wrong shapes, lengths and versions with errors naming the field', async () => {
    const { aliceSession } = await startConversation();
    const good = serializeSession(aliceSession);
    const cases: [unknown, string, RegExp][] = [
      [null, 'bad_input', /session/],
      [{ ...good, version: 2 }, 'unsupported_version', /version/],
      [{ ...good, rootKey: good.rootKey.slice(0, -2) }, 'bad_input', /session\.rootKey/],
      [{ ...good, rootKey: `${good.rootKey}=` }, 'bad_input', /session\.rootKey/],
      [{ ...good, previousCounter: -1 }, 'bad_input', /previousCounter/],
      [{ ...good, previousCounter: 1.5 }, 'bad_input', /previousCounter/],
      [{ ...good, extra: true }, 'bad_input', /unexpected field/],
      [{ ...good, sendChain: { key: good.rootKey } }, 'bad_input', /sendChain\.counter/],
      [{ ...good, dhRemote: 'A'.repeat(43) }, 'invalid_key', /dhRemote/],
      [{ ...good, skipped: [{ ratchetKey: good.baseKey, counter: 1 }] }, 'bad_input', /skipped\[0\]/],
      [{ ...good, peerUserId: '' }, 'bad_input', /peerUserId/],
    ];
    for (const [value, code, pattern] of cases) {
      const err = expectCode(() => deserializeSession(value), code as never);
      expect(err.message).toMatch(pattern);
    }
    const { localUserId: _omit, ...missing } = good;
    expect(expectCode(() => deserializeSession(missing), 'bad_input').message).toMatch(/localUserId/);
    const id = serializeIdentity(generateIdentity());
    expectCode(
      () => deserializeIdentity({ ...id, publicKey: serializeIdentity(generateIdentity()).publicKey }),
      'bad_input',
    );
    const sk = { groupId: 'g', senderUserId: 'alice', senderDeviceId: 'a1' };
    const own = serializeOwnSenderKey(createSenderKey(sk));
    expectCode(
      () =>
        deserializeOwnSenderKey({
          ...own,
          signingPublicKey: serializeOwnSenderKey(createSenderKey(sk)).signingPublicKey,
        }),
      'bad_input',
    );
  });
});
