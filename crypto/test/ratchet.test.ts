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
import { expectCode, expectCodeAsync, receive, send, startConversation, str, text } from './helpers.js';

async function sendMany(session: Session, n: number, prefix: string) {
  const bodies: Uint8Array[] = [];
  let s = session;
  for (let i = 0; i < n; i++) {
    const r = await send(s, `${prefix} ${i}`);
    s = r.session;
    bodies.push(r.body);
  }
  return { session: s, bodies };
}

describe('Double Ratchet', () => {
  it('round-trips messages both ways over several ratchet steps', async () => {
    const { alice, bob, ...started } = await startConversation();
    let { aliceSession, bobSession } = started;
    for (let round = 0; round < 4; round++) {
      const fromBob = await send(bobSession, `bob ${round}`);
      bobSession = fromBob.session;
      const got = await receive(alice, aliceSession, fromBob.body);
      aliceSession = got.session;
      expect(str(got.content.body)).toBe(`bob ${round}`);
      const fromAlice = await send(aliceSession, `alice ${round}`);
      aliceSession = fromAlice.session;
      const back = await receive(bob, bobSession, fromAlice.body);
      bobSession = back.session;
      expect(str(back.content.body)).toBe(`alice ${round}`);
    }
  });

  it('sends prekey messages until the first reply, then normal messages', async () => {
    const { alice, bob, aliceSession, bobSession } = await startConversation();
    const second = await send(aliceSession, 'again');
    expect((await openEnvelope(bob.keys.identity, second.body)).type).toBe('prekey');
    const reply = await send(bobSession, 'reply');
    expect((await openEnvelope(alice.keys.identity, reply.body)).type).toBe('message');
    const afterReply = await send((await receive(alice, second.session, reply.body)).session, 'now normal');
    expect((await openEnvelope(bob.keys.identity, afterReply.body)).type).toBe('message');
  });

  it('decrypts out-of-order messages within the cap, across a ratchet step', async () => {
    const { alice, bob, ...started } = await startConversation();
    let { aliceSession, bobSession } = started;
    const first = await sendMany(bobSession, 5, 'chain1');
    bobSession = first.session;
    // Alice answers after message 0 only: Bob's next messages start a new chain, the old one has gaps.
    let got = await receive(alice, aliceSession, first.bodies[0]!);
    aliceSession = got.session;
    const answer = await send(aliceSession, 'answer');
    aliceSession = answer.session;
    bobSession = (await receive(bob, bobSession, answer.body)).session;
    const second = await sendMany(bobSession, 3, 'chain2');
    for (const i of [2, 0, 1]) {
      got = await receive(alice, aliceSession, second.bodies[i]!);
      aliceSession = got.session;
      expect(str(got.content.body)).toBe(`chain2 ${i}`);
    }
    for (const i of [4, 1, 3, 2]) {
      got = await receive(alice, aliceSession, first.bodies[i]!);
      aliceSession = got.session;
      expect(str(got.content.body)).toBe(`chain1 ${i}`);
    }
    expect(aliceSession.skipped.size).toBe(0);
  });

  it('rejects a message past the skip cap without corrupting the session', async () => {
    const { alice, bobSession, ...started } = await startConversation();
    let { aliceSession } = started;
    const many = await sendMany(bobSession, MAX_SKIP_PER_STEP + 2, 'm');
    await expectCodeAsync(
      async () => await receive(alice, aliceSession, many.bodies[MAX_SKIP_PER_STEP + 1]!),
      'too_many_skipped',
    );
    // Exactly at the cap still works, and the session before it is untouched.
    const atCap = await receive(alice, aliceSession, many.bodies[MAX_SKIP_PER_STEP]!);
    expect(str(atCap.content.body)).toBe(`m ${MAX_SKIP_PER_STEP}`);
    expect(atCap.session.skipped.size).toBe(MAX_SKIP_PER_STEP);
    const got = await receive(alice, aliceSession, many.bodies[0]!);
    aliceSession = got.session;
    expect(str(got.content.body)).toBe('m 0');
  });

  it('keeps at most 2000 skipped keys, dropping the oldest', async () => {
    const { alice, bob, ...started } = await startConversation();
    let { aliceSession, bobSession } = started;
    // Three chains from Bob with 999 unread messages each (Alice reads only the last one of each).
    const firstBodies: Uint8Array[] = [];
    for (let chain = 0; chain < 3; chain++) {
      const burst = await sendMany(bobSession, 1000, `c${chain}`);
      firstBodies.push(burst.bodies[0]!);
      bobSession = burst.session;
      aliceSession = (await receive(alice, aliceSession, burst.bodies[999]!)).session;
      const ping = await send(aliceSession, 'ping');
      aliceSession = ping.session;
      bobSession = (await receive(bob, bobSession, ping.body)).session;
    }
    expect(aliceSession.skipped.size).toBe(2000);
    await expectCodeAsync(async () => await receive(alice, aliceSession, firstBodies[0]!), 'duplicate_message');
    expect(str((await receive(alice, aliceSession, firstBodies[2]!)).content.body)).toBe('c2 0');
  });

  it('rejects a replayed message', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const m = await send(bobSession, 'once');
    const got = await receive(alice, aliceSession, m.body);
    await expectCodeAsync(async () => await receive(alice, got.session, m.body), 'duplicate_message');
  });

  it('rejects a replayed message whose key was kept as skipped and then used', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const two = await sendMany(bobSession, 2, 'x');
    let s = (await receive(alice, aliceSession, two.bodies[1]!)).session;
    s = (await receive(alice, s, two.bodies[0]!)).session;
    await expectCodeAsync(async () => await receive(alice, s, two.bodies[0]!), 'duplicate_message');
  });

  it('rejects a replay from a finished chain', async () => {
    const { alice, bob, ...started } = await startConversation();
    let { aliceSession, bobSession } = started;
    const old = await send(bobSession, 'old');
    bobSession = old.session;
    aliceSession = (await receive(alice, aliceSession, old.body)).session;
    const ping = await send(aliceSession, 'ping');
    aliceSession = ping.session;
    bobSession = (await receive(bob, bobSession, ping.body)).session;
    aliceSession = (await receive(alice, aliceSession, (await send(bobSession, 'new')).body)).session;
    await expectCodeAsync(async () => await receive(alice, aliceSession, old.body), 'duplicate_message');
  });

  it('rejects truncated messages', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const m = await send(bobSession, 'whole');
    const env = await openEnvelope(alice.keys.identity, m.body);
    for (const cut of [1, 16, 17, env.payload.length - 41]) {
      const truncated: Envelope = { ...env, payload: env.payload.subarray(0, env.payload.length - cut) };
      expectCode(() => decryptFromDevice(aliceSession, truncated), 'decrypt_failed');
    }
    expect(str(decryptFromDevice(aliceSession, env).content.body)).toBe('whole');
  });

  it('rejects every single-bit flip of a message and stays usable', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const m = await send(bobSession, 'flip me');
    const env = await openEnvelope(alice.keys.identity, m.body);
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

  it('rejects a message whose ratchet key is all-zero or of low order', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const env = await openEnvelope(alice.keys.identity, (await send(bobSession, 'x')).body);
    const lowOrder = Uint8Array.from(
      Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex'),
    );
    for (const bad of [new Uint8Array(32), lowOrder]) {
      const payload = env.payload.slice();
      payload.set(bad, 1);
      expectCode(() => decryptFromDevice(aliceSession, { ...env, payload }), 'invalid_key');
    }
  });

  it('never mutates the input session, on success or failure', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const snapshot = JSON.stringify(aliceSession, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v instanceof Map ? [...v] : v,
    );
    const m = await send(bobSession, 'x');
    const env = await openEnvelope(alice.keys.identity, m.body);
    const bad = { ...env, payload: env.payload.slice() };
    bad.payload[bad.payload.length - 1]! ^= 1;
    expectCode(() => decryptFromDevice(aliceSession, bad), 'decrypt_failed');
    decryptFromDevice(aliceSession, env);
    await send(aliceSession, 'y');
    const after = JSON.stringify(aliceSession, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v instanceof Map ? [...v] : v,
    );
    expect(after).toBe(snapshot);
  });

  it('binds caller associated data in the low-level API', async () => {
    const { aliceSession, bobSession } = await startConversation();
    const ad = text('context');
    const r = ratchetEncrypt(bobSession, text('raw'), ad);
    expect(r.type).toBe('message');
    expect(str(ratchetDecrypt(aliceSession, r.type, r.payload, ad).plaintext)).toBe('raw');
    expectCode(() => ratchetDecrypt(aliceSession, r.type, r.payload, text('other')), 'decrypt_failed');
  });

  it('uses a fresh random nonce for every message', async () => {
    const { bobSession } = await startConversation();
    const a = ratchetEncrypt(bobSession, text('same'));
    const b = ratchetEncrypt(bobSession, text('same'));
    expect(Buffer.from(a.payload.subarray(41, 65)).equals(Buffer.from(b.payload.subarray(41, 65)))).toBe(false);
  });

  it('rejects a message id that was changed after encryption', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const env = await openEnvelope(alice.keys.identity, (await send(bobSession, 'id-bound')).body);
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
