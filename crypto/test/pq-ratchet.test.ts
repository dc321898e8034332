// Post-quantum rekeying of the Double Ratchet: ML-KEM-768 offers and answers in version-2 headers, mixed into the
// root KDF. The proof that matters: an adversary who stole one side's whole state AND can break X25519 (it knows
// every X25519 secret the victim draws: same random stream) reads the conversation until the first rekeying after
// the theft completes, and nothing after it.

import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  acceptSession,
  CryptoError,
  createMessageId,
  dangerousTestOnlySetKemRekeySteps,
  dangerousTestOnlySetRandomSource,
  decryptFromDevice,
  deserializeSession,
  encryptToDevice,
  type Envelope,
  generateKemPrekeys,
  initiateSession,
  KEM_REKEY_STEPS,
  kemPrekeyToWire,
  openEnvelope,
  readPrekeyMessage,
  serializeSession,
  type Session,
  verifyPrekeyBundle,
} from '../src/index.js';
import { party, type Party, str, text } from './helpers.js';

afterEach(() => {
  dangerousTestOnlySetKemRekeySteps(null);
  dangerousTestOnlySetRandomSource(null);
});

/** Alice starts a PQXDH session with Bob; Bob accepts it. Both sessions are post-quantum. */
async function startPq(): Promise<{ alice: Party; bob: Party; a: Session; b: Session }> {
  const alice = party('alice');
  const bob = party('bob');
  const [kem] = generateKemPrekeys(bob.keys.identity, 7, 1, true);
  const a0 = initiateSession({
    identity: alice.keys.identity,
    localUserId: alice.userId,
    localDeviceId: alice.deviceId,
    peerUserId: bob.userId,
    peerDeviceId: bob.deviceId,
    bundle: verifyPrekeyBundle({
      identityKey: bob.keys.upload.identityKey,
      signedPrekey: bob.keys.upload.signedPrekey,
      oneTimePrekey: bob.keys.upload.oneTimePrekeys[0],
      kemPrekey: kemPrekeyToWire(kem!),
    }),
    requirePostQuantum: true,
  });
  const first = await seal(a0, 'hello');
  const env = await openEnvelope(bob.keys.identity, first.body);
  const info = readPrekeyMessage(env.payload);
  const { session: b, content } = acceptSession({
    identity: bob.keys.identity,
    localUserId: bob.userId,
    localDeviceId: bob.deviceId,
    envelope: env,
    signedPrekey: bob.keys.signedPrekey,
    oneTimePrekey: bob.keys.oneTimePrekeys.find((k) => k.keyId === info.oneTimePrekeyId) ?? null,
    expectedPeerIdentityKey: alice.keys.identity.publicKey,
    kemPrekey: kem!,
    requirePostQuantum: true,
  });
  expect(str(content.body)).toBe('hello');
  expect(first.session.pqRatchet).toBeDefined();
  expect(b.pqRatchet).toBeDefined();
  return { alice, bob, a: first.session, b };
}

function seal(s: Session, message: string) {
  return encryptToDevice(s, { messageId: createMessageId(), content: { kind: 'chat', body: text(message) } });
}

async function open(me: Party, s: Session, body: Uint8Array) {
  const env = await openEnvelope(me.keys.identity, body);
  return { env, ...decryptFromDevice(s, env) };
}

/** Runs `fn` with the platform CSPRNG, recording every byte it draws (X25519 keys, nonces). */
function recording<T>(fn: () => T): { result: T; drawn: Uint8Array[] } {
  const drawn: Uint8Array[] = [];
  dangerousTestOnlySetRandomSource((n) => {
    const out = new Uint8Array(n);
    globalThis.crypto.getRandomValues(out);
    drawn.push(out.slice());
    return out;
  });
  try {
    return { result: fn(), drawn };
  } finally {
    dangerousTestOnlySetRandomSource(null);
  }
}

/** Runs `fn` drawing exactly the bytes another run drew: its X25519 key pairs come out the same. */
function replaying<T>(drawn: Uint8Array[], fn: () => T): T {
  const queue = drawn.map((d) => d.slice());
  dangerousTestOnlySetRandomSource((n) => {
    const next = queue.shift();
    if (!next || next.length !== n) throw new Error('the replayed run drew different randomness');
    return next;
  });
  try {
    return fn();
  } finally {
    dangerousTestOnlySetRandomSource(null);
  }
}

describe('post-quantum rekeying', () => {
  it(`offers a fresh ML-KEM key every ${KEM_REKEY_STEPS} ratchet steps, the peer answers on its next step, and both directions rekey while every message decrypts`, async () => {
    const started = await startPq();
    const { alice, bob } = started;
    let { a, b } = started;
    const sizes: number[] = [];
    for (let round = 0; round < 3 * KEM_REKEY_STEPS; round++) {
      const fromBob = await seal(b, `bob ${round}`);
      b = fromBob.session;
      const atAlice = await open(alice, a, fromBob.body);
      a = atAlice.session;
      expect(str(atAlice.content.body)).toBe(`bob ${round}`);
      const fromAlice = await seal(a, `alice ${round}`);
      a = fromAlice.session;
      sizes.push(fromAlice.body.length);
      const atBob = await open(bob, b, fromAlice.body);
      b = atBob.session;
      expect(str(atBob.content.body)).toBe(`alice ${round}`);
    }
    // Each side offers once its steps since the last KEM secret reach the threshold; an answer resets both counters.
    expect(a.pqRatchet!.epochs).toBeGreaterThanOrEqual(2);
    expect(b.pqRatchet!.epochs).toBe(a.pqRatchet!.epochs);
    // Most messages carry no KEM part; the few that do carry one key or one ciphertext (1,184 / 1,088 bytes).
    const plain = Math.min(...sizes);
    expect(sizes.filter((s) => s === plain).length).toBeGreaterThan(sizes.length * 0.8);
    expect(Math.max(...sizes) - plain).toBeLessThan(1300);
  });

  it('a thief of the whole state who also breaks X25519 reads along until the first rekeying after the theft completes, and nothing after', async () => {
    const started = await startPq();
    const { alice, bob } = started;
    let { a, b } = started;
    for (let round = 0; round < 5; round++) {
      const fromBob = await seal(b, `before ${round}`);
      b = fromBob.session;
      a = (await open(alice, a, fromBob.body)).session;
      const fromAlice = await seal(a, `ok ${round}`);
      a = fromAlice.session;
      b = (await open(bob, b, fromAlice.body)).session;
    }
    // The theft: alice's full session state, as stored.
    let thief: Session | null = deserializeSession(serializeSession(a));
    const epochsAtTheft = a.pqRatchet!.epochs;
    const readByThief: boolean[] = [];
    const afterRekey: boolean[] = [];
    for (let round = 0; round < 2 * KEM_REKEY_STEPS + 4; round++) {
      const fromBob = await seal(b, `secret ${round}`);
      b = fromBob.session;
      const env: Envelope = await openEnvelope(alice.keys.identity, fromBob.body);
      // Did an ML-KEM secret from after the theft enter alice's root key before this message's step?
      afterRekey.push(a.pqRatchet!.epochs > epochsAtTheft);
      const { result, drawn } = recording(() => decryptFromDevice(a, env));
      a = result.session;
      // The quantum thief derives every X25519 secret alice draws (here: the same random bytes), not her ML-KEM keys.
      let read = false;
      if (thief) {
        try {
          const t = replaying(drawn, () => decryptFromDevice(thief!, env));
          read = str(t.content.body) === `secret ${round}`;
          thief = t.session;
        } catch (e) {
          expect(e).toBeInstanceOf(CryptoError);
          thief = null; // lost the chain: it can only fall further behind
        }
      }
      readByThief.push(read);
      const fromAlice = await seal(a, `reply ${round}`);
      a = fromAlice.session;
      b = (await open(bob, b, fromAlice.body)).session;
    }
    // Baseline: the thief does read the conversation after the theft (the simulation is a real adversary)...
    expect(readByThief.filter((r, i) => r && !afterRekey[i]).length).toBeGreaterThan(KEM_REKEY_STEPS / 2);
    // ...and a rekeying happened, after which it reads nothing.
    expect(afterRekey.some(Boolean)).toBe(true);
    expect(readByThief.filter((r, i) => r && afterRekey[i])).toEqual([]);
  });

  it('refuses a header whose KEM offer or answer was changed, and an answer to an offer the session never made', async () => {
    dangerousTestOnlySetKemRekeySteps(1);
    const started = await startPq();
    const { alice, bob } = started;
    let { a, b } = started;
    // With a rekeying due at every step, Bob's step on accepting made an offer: his first reply carries it.
    expect(b.pqRatchet!.offer).not.toBeNull();
    const withOffer = await seal(b, 'one');
    b = withOffer.session;
    const env = await openEnvelope(alice.keys.identity, withOffer.body);
    const payload = env.payload;
    const flagsAt = 1 + 32 + 4 + 4; // version 2 ‖ ratchet key ‖ PN ‖ N ‖ flags
    expect(payload[0]).toBe(2);
    expect(payload[flagsAt]).toBe(1);
    const tampered = payload.slice();
    tampered[flagsAt + 1 + 4 + 100]! ^= 1;
    expect(() => decryptFromDevice(a, { ...env, payload: tampered })).toThrow(CryptoError);
    const unflagged = payload.slice();
    unflagged[flagsAt] = 0;
    expect(() => decryptFromDevice(a, { ...env, payload: unflagged })).toThrow(CryptoError);
    const ok = decryptFromDevice(a, env);
    expect(str(ok.content.body)).toBe('one');
    a = ok.session;
    expect(a.pqRatchet!.reply).not.toBeNull();
    // Alice's answer: its ciphertext changed is refused; sent to a Bob state without that offer, refused too.
    const answer = await seal(a, 'two');
    const answerEnv = await openEnvelope(bob.keys.identity, answer.body);
    expect(answerEnv.payload[flagsAt]).toBe(2);
    const badCiphertext = answerEnv.payload.slice();
    badCiphertext[flagsAt + 1 + 4 + 500]! ^= 1;
    expect(() => decryptFromDevice(b, { ...answerEnv, payload: badCiphertext })).toThrow(/failed authentication/);
    const stale = { ...b, pqRatchet: { ...b.pqRatchet!, offer: null } };
    expect(() => decryptFromDevice(stale, answerEnv)).toThrow(/KEM offer this session does not hold/);
    const got = decryptFromDevice(b, answerEnv);
    expect(str(got.content.body)).toBe('two');
    expect(got.session.pqRatchet!.epochs).toBe(1);
  });

  it('keeps an outstanding offer and a pending answer through storage', async () => {
    dangerousTestOnlySetKemRekeySteps(1);
    const started = await startPq();
    const { alice, bob } = started;
    let { a, b } = started;
    b = deserializeSession(serializeSession(b));
    expect(b.pqRatchet!.offer?.secretKey.length).toBe(2400);
    const m1 = await seal(b, 'one');
    a = deserializeSession(serializeSession((await open(alice, a, m1.body)).session));
    expect(a.pqRatchet!.reply?.ciphertext.length).toBe(1088);
    const m2 = await seal(a, 'two');
    const got = await open(bob, b, m2.body);
    expect(str(got.content.body)).toBe('two');
    expect(got.session.pqRatchet!.epochs).toBe(1);
    expect(got.session.pqRatchet!.offer).toBeNull();
  });

  it('property: with a rekeying due at every step, random send / drop / reorder / replay still delivers each message exactly once', async () => {
    dangerousTestOnlySetKemRekeySteps(1);
    type Op = { op: 'send' | 'deliver' | 'drop' | 'replay'; who: 0 | 1; pick: number };
    const op = fc.record({
      op: fc.constantFrom<Op['op']>('send', 'send', 'deliver', 'deliver', 'drop', 'replay'),
      who: fc.constantFrom<0 | 1>(0, 1),
      pick: fc.nat({ max: 1000 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const { alice, bob, a, b } = await startPq();
        const sessions: Session[] = [a, b];
        const people = [alice, bob];
        const inFlight: { body: Uint8Array; text: string }[][] = [[], []];
        const delivered: { body: Uint8Array; text: string }[][] = [[], []];
        let n = 0;
        for (const o of ops) {
          const to = 1 - o.who;
          if (o.op === 'send') {
            const t = `m${n++}`;
            const r = await seal(sessions[o.who]!, t);
            sessions[o.who] = r.session;
            inFlight[o.who]!.push({ body: r.body, text: t });
          } else if (o.op === 'deliver' || o.op === 'drop') {
            const q = inFlight[o.who]!;
            if (q.length === 0) continue;
            const [m] = q.splice(o.pick % q.length, 1);
            if (o.op === 'drop') continue;
            const got = await open(people[to]!, sessions[to]!, m!.body);
            expect(str(got.content.body)).toBe(m!.text);
            sessions[to] = got.session;
            delivered[o.who]!.push(m!);
          } else {
            const done = delivered[o.who]!;
            if (done.length === 0) continue;
            const m = done[o.pick % done.length]!;
            const before = sessions[to]!;
            await expect(open(people[to]!, before, m.body)).rejects.toBeInstanceOf(CryptoError);
          }
        }
        for (const from of [0, 1] as const) {
          for (const m of inFlight[from]!.reverse()) {
            const got = await open(people[1 - from]!, sessions[1 - from]!, m.body);
            expect(str(got.content.body)).toBe(m.text);
            sessions[1 - from] = got.session;
          }
        }
      }),
      { numRuns: 40 },
    );
  });
});
