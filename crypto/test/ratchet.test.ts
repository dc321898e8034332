// Double Ratchet behaviour through the public API: round trips, ordering, caps, replays and tampering.

import { describe, expect, it } from 'vitest';
import {
  createMessageId,
  decryptFromDevice,
  type Envelope,
  MAX_SKIP_PER_STEP,
  openEnvelope,
  ratchetDecrypt,
  ratchetEncrypt,
  type Session,
} from '../src/index.js';
import { expectCode, receive, send, startConversation, str, text } from './helpers.js';

function sendMany(session: Session, n: number, prefix: string) {
  const bodies: Uint8Array[] = [];
  let s = session;
  for (let i = 0; i < n; i++) {
    const r = send(s, `${prefix} ${i}`);
    s = r.session;
    bodies.push(r.body);
  }
  return { session: s, bodies };
}

describe('Double Ratchet', () => {
  it('round-trips messages both ways over several ratchet steps', () => {
    const { alice, bob, ...started } = startConversation();
    let { aliceSession, bobSession } = started;
    for (let round = 0; round < 4; round++) {
      const fromBob = send(bobSession, `bob ${round}`);
      bobSession = fromBob.session;
      const got = receive(alice, aliceSession, fromBob.body);
      aliceSession = got.session;
      expect(str(got.content.body)).toBe(`bob ${round}`);
      const fromAlice = send(aliceSession, `alice ${round}`);
      aliceSession = fromAlice.session;
      const back = receive(bob, bobSession, fromAlice.body);
      bobSession = back.session;
      expect(str(back.content.body)).toBe(`alice ${round}`);
    }
  });

  it('sends prekey messages until the first reply, then normal messages', () => {
    const { alice, bob, aliceSession, bobSession } = startConversation();
    const second = send(aliceSession, 'again');
    expect(openEnvelope(bob.keys.identity, second.body).type).toBe('prekey');
    const reply = send(bobSession, 'reply');
    expect(openEnvelope(alice.keys.identity, reply.body).type).toBe('message');
    const afterReply = send(receive(alice, second.session, reply.body).session, 'now normal');
    expect(openEnvelope(bob.keys.identity, afterReply.body).type).toBe('message');
  });

  it('decrypts out-of-order messages within the cap, across a ratchet step', () => {
    const { alice, bob, ...started } = startConversation();
    let { aliceSession, bobSession } = started;
    const first = sendMany(bobSession, 5, 'chain1');
    bobSession = first.session;
    // Alice answers after message 0 only: Bob's next messages start a new chain, the old one has gaps.
    let got = receive(alice, aliceSession, first.bodies[0]!);
    aliceSession = got.session;
    const answer = send(aliceSession, 'answer');
    aliceSession = answer.session;
    bobSession = receive(bob, bobSession, answer.body).session;
    const second = sendMany(bobSession, 3, 'chain2');
    for (const i of [2, 0, 1]) {
      got = receive(alice, aliceSession, second.bodies[i]!);
      aliceSession = got.session;
      expect(str(got.content.body)).toBe(`chain2 ${i}`);
    }
    for (const i of [4, 1, 3, 2]) {
      got = receive(alice, aliceSession, first.bodies[i]!);
      aliceSession = got.session;
      expect(str(got.content.body)).toBe(`chain1 ${i}`);
    }
    expect(aliceSession.skipped.size).toBe(0);
  });

  it('rejects a message past the skip cap without corrupting the session', () => {
    const { alice, bobSession, ...started } = startConversation();
    let { aliceSession } = started;
    const many = sendMany(bobSession, MAX_SKIP_PER_STEP + 2, 'm');
    expectCode(() => receive(alice, aliceSession, many.bodies[MAX_SKIP_PER_STEP + 1]!), 'too_many_skipped');
    // Exactly at the cap still works, and the session before it is untouched.
    const atCap = receive(alice, aliceSession, many.bodies[MAX_SKIP_PER_STEP]!);
    expect(str(atCap.content.body)).toBe(`m ${MAX_SKIP_PER_STEP}`);
    expect(atCap.session.skipped.size).toBe(MAX_SKIP_PER_STEP);
    const got = receive(alice, aliceSession, many.bodies[0]!);
    aliceSession = got.session;
    expect(str(got.content.body)).toBe('m 0');
  });

  it('keeps at most 2000 skipped keys, dropping the oldest', () => {
    const { alice, bob, ...started } = startConversation();
    let { aliceSession, bobSession } = started;
    // Three chains from Bob with 999 unread messages each (Alice reads only the last one of each).
    const firstBodies: Uint8Array[] = [];
    for (let chain = 0; chain < 3; chain++) {
      const burst = sendMany(bobSession, 1000, `c${chain}`);
      firstBodies.push(burst.bodies[0]!);
      bobSession = burst.session;
      aliceSession = receive(alice, aliceSession, burst.bodies[999]!).session;
      const ping = send(aliceSession, 'ping');
      aliceSession = ping.session;
      bobSession = receive(bob, bobSession, ping.body).session;
    }
    expect(aliceSession.skipped.size).toBe(2000);
    expectCode(() => receive(alice, aliceSession, firstBodies[0]!), 'duplicate_message');
    expect(str(receive(alice, aliceSession, firstBodies[2]!).content.body)).toBe('c2 0');
  });

  it('rejects a replayed message', () => {
    const { alice, aliceSession, bobSession } = startConversation();
    const m = send(bobSession, 'once');
    const got = receive(alice, aliceSession, m.body);
    expectCode(() => receive(alice, got.session, m.body), 'duplicate_message');
  });

  it('rejects a replayed message whose key was kept as skipped and then used', () => {
    const { alice, aliceSession, bobSession } = startConversation();
    const two = sendMany(bobSession, 2, 'x');
    let s = receive(alice, aliceSession, two.bodies[1]!).session;
    s = receive(alice, s, two.bodies[0]!).session;
    expectCode(() => receive(alice, s, two.bodies[0]!), 'duplicate_message');
  });

  it('rejects a replay from a finished chain', () => {
    const { alice, bob, ...started } = startConversation();
    let { aliceSession, bobSession } = started;
    const old = send(bobSession, 'old');
    bobSession = old.session;
    aliceSession = receive(alice, aliceSession, old.body).session;
    const ping = send(aliceSession, 'ping');
    aliceSession = ping.session;
    bobSession = receive(bob, bobSession, ping.body).session;
    aliceSession = receive(alice, aliceSession, send(bobSession, 'new').body).session;
    expectCode(() => receive(alice, aliceSession, old.body), 'duplicate_message');
  });

  it('rejects truncated messages', () => {
    const { alice, aliceSession, bobSession } = startConversation();
    const m = send(bobSession, 'whole');
    const env = openEnvelope(alice.keys.identity, m.body);
    for (const cut of [1, 16, 17, env.payload.length - 41]) {
      const truncated: Envelope = { ...env, payload: env.payload.subarray(0, env.payload.length - cut) };
      expectCode(() => decryptFromDevice(aliceSession, truncated), 'decrypt_failed');
    }
    expect(str(decryptFromDevice(aliceSession, env).content.body)).toBe('whole');
  });

  it('rejects every single-bit flip of a message and stays usable', () => {
    const { alice, aliceSession, bobSession } = startConversation();
    const m = send(bobSession, 'flip me');
    const env = openEnvelope(alice.keys.identity, m.body);
    const headerBytes = 41;
    for (let i = 0; i < env.payload.length; i++) {
      const payload = env.payload.slice();
      payload[i]! ^= 1 << (i % 8);
      const tampered: Envelope = { ...env, payload };
      const err = expectCodeAny(() => decryptFromDevice(aliceSession, tampered));
      // Past the header (nonce, ciphertext, tag) authentication is the only possible failure.
      if (i >= headerBytes) expect(err.code).toBe('decrypt_failed');
    }
    expect(str(decryptFromDevice(aliceSession, env).content.body)).toBe('flip me');
  });

  it('rejects a message whose ratchet key is all-zero or of low order', () => {
    const { alice, aliceSession, bobSession } = startConversation();
    const env = openEnvelope(alice.keys.identity, send(bobSession, 'x').body);
    const lowOrder = Uint8Array.from(
      Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex'),
    );
    for (const bad of [new Uint8Array(32), lowOrder]) {
      const payload = env.payload.slice();
      payload.set(bad, 1);
      expectCode(() => decryptFromDevice(aliceSession, { ...env, payload }), 'invalid_key');
    }
  });

  it('never mutates the input session, on success or failure', () => {
    const { alice, aliceSession, bobSession } = startConversation();
    const snapshot = JSON.stringify(aliceSession, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v instanceof Map ? [...v] : v,
    );
    const m = send(bobSession, 'x');
    const env = openEnvelope(alice.keys.identity, m.body);
    const bad = { ...env, payload: env.payload.slice() };
    bad.payload[bad.payload.length - 1]! ^= 1;
    expectCode(() => decryptFromDevice(aliceSession, bad), 'decrypt_failed');
    decryptFromDevice(aliceSession, env);
    send(aliceSession, 'y');
    const after = JSON.stringify(aliceSession, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v instanceof Map ? [...v] : v,
    );
    expect(after).toBe(snapshot);
  });

  it('binds caller associated data in the low-level API', () => {
    const { aliceSession, bobSession } = startConversation();
    const ad = text('context');
    const r = ratchetEncrypt(bobSession, text('raw'), ad);
    expect(r.type).toBe('message');
    expect(str(ratchetDecrypt(aliceSession, r.type, r.payload, ad).plaintext)).toBe('raw');
    expectCode(() => ratchetDecrypt(aliceSession, r.type, r.payload, text('other')), 'decrypt_failed');
  });

  it('uses a fresh random nonce for every message', () => {
    const { bobSession } = startConversation();
    const a = ratchetEncrypt(bobSession, text('same'));
    const b = ratchetEncrypt(bobSession, text('same'));
    expect(Buffer.from(a.payload.subarray(41, 65)).equals(Buffer.from(b.payload.subarray(41, 65)))).toBe(false);
  });

  it('rejects a message id that was changed after encryption', () => {
    const { alice, aliceSession, bobSession } = startConversation();
    const env = openEnvelope(alice.keys.identity, send(bobSession, 'id-bound').body);
    expectCode(() => decryptFromDevice(aliceSession, { ...env, messageId: createMessageId() }), 'decrypt_failed');
  });
});

function expectCodeAny(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    expect((err as { code?: unknown }).code).toBeTypeOf('string');
    return err as { code: string };
  }
  throw new Error('expected a CryptoError');
}
