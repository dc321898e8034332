// PQXDH: signed ML-KEM-768 prekeys, the KEM shared secret in the root secret, the version bound into the AD, and
// refusal of a session start stripped of its KEM part (downgrade).

import { describe, expect, it } from 'vitest';
import {
  acceptSession,
  createMessageId,
  decryptFromDevice,
  deserializeKemPrekey,
  deserializeSession,
  encryptToDevice,
  type Envelope,
  generateKemPrekeys,
  initiateSession,
  KEM_CIPHERTEXT_BYTES,
  type KemPrekey,
  kemPrekeyToWire,
  openEnvelope,
  readPrekeyMessage,
  serializeKemPrekey,
  serializeSession,
  type Session,
  verifyKemPrekey,
  verifyPrekeyBundle,
} from '../src/index.js';
import { PQ_PREKEY_VERSION } from '../src/session.js';
import { expectCode, party, type Party, str, text } from './helpers.js';

interface PqParty extends Party {
  kem: KemPrekey[];
  lastResort: KemPrekey;
}

function pqParty(userId: string): PqParty {
  const p = party(userId);
  return {
    ...p,
    kem: generateKemPrekeys(p.keys.identity, 1, 2),
    lastResort: generateKemPrekeys(p.keys.identity, 1000, 1, true)[0]!,
  };
}

/** Bob's bundle as the relay would hand it out, with the given KEM prekey (or none). */
function bundleOf(bob: PqParty, kem: KemPrekey | null) {
  return verifyPrekeyBundle({
    identityKey: bob.keys.upload.identityKey,
    signedPrekey: bob.keys.upload.signedPrekey,
    oneTimePrekey: bob.keys.upload.oneTimePrekeys[0],
    kemPrekey: kem ? kemPrekeyToWire(kem) : null,
  });
}

function start(alice: PqParty, bob: PqParty, kem: KemPrekey | null, requirePostQuantum = false): Session {
  return initiateSession({
    identity: alice.keys.identity,
    localUserId: alice.userId,
    localDeviceId: alice.deviceId,
    peerUserId: bob.userId,
    peerDeviceId: bob.deviceId,
    bundle: bundleOf(bob, kem),
    requirePostQuantum,
  });
}

async function firstMessage(s: Session, body = 'hello, post-quantum bob') {
  const out = await encryptToDevice(s, { messageId: createMessageId(), content: { kind: 'chat', body: text(body) } });
  return out;
}

function acceptAs(bob: PqParty, env: Envelope, kem: KemPrekey | null, requirePostQuantum = false) {
  return acceptSession({
    identity: bob.keys.identity,
    localUserId: bob.userId,
    localDeviceId: bob.deviceId,
    envelope: env,
    signedPrekey: bob.keys.signedPrekey,
    oneTimePrekey: bob.keys.oneTimePrekeys[0]!,
    expectedPeerIdentityKey: env.payload.slice(1, 33),
    kemPrekey: kem,
    requirePostQuantum,
  });
}

/** The same envelope with its payload replaced. */
const withPayload = (env: Envelope, payload: Uint8Array): Envelope => ({ ...env, payload });

/** A PQXDH prekey payload turned into a classic one: version 1, KEM key id and ciphertext cut out. */
function stripKem(payload: Uint8Array): Uint8Array {
  const prefix = 1 + 32 + 32 + 4 + 1 + 4;
  const out = new Uint8Array(payload.length - 4 - KEM_CIPHERTEXT_BYTES);
  out.set(payload.subarray(0, prefix));
  out[0] = 1;
  out.set(payload.subarray(prefix + 4 + KEM_CIPHERTEXT_BYTES), prefix);
  return out;
}

describe('KEM prekeys', () => {
  it('are signed by the identity key over their id, last-resort flag and key', () => {
    const bob = pqParty('bob');
    const wire = kemPrekeyToWire(bob.kem[0]!);
    expect(verifyKemPrekey(bob.keys.upload.identityKey, wire)).toEqual({
      keyId: 1,
      lastResort: false,
      publicKey: bob.kem[0]!.publicKey,
    });
    expect(verifyKemPrekey(bob.keys.upload.identityKey, kemPrekeyToWire(bob.lastResort)).lastResort).toBe(true);
    // A relay that relabels, renumbers or swaps a key, or signs with another identity, is caught.
    expectCode(() => verifyKemPrekey(bob.keys.upload.identityKey, { ...wire, lastResort: true }), 'invalid_signature');
    expectCode(() => verifyKemPrekey(bob.keys.upload.identityKey, { ...wire, keyId: 2 }), 'invalid_signature');
    const other = kemPrekeyToWire(bob.kem[1]!);
    expectCode(
      () => verifyKemPrekey(bob.keys.upload.identityKey, { ...wire, publicKey: other.publicKey }),
      'invalid_signature',
    );
    expectCode(() => verifyKemPrekey(party('mallory').keys.upload.identityKey, wire), 'invalid_signature');
    expectCode(() => verifyKemPrekey(bob.keys.upload.identityKey, { ...wire, publicKey: 'AAAA' }), 'bad_input');
  });

  it('round-trip through storage, and refuse a last-resort batch of more than one', () => {
    const bob = pqParty('bob');
    const back = deserializeKemPrekey(JSON.parse(JSON.stringify(serializeKemPrekey(bob.lastResort))));
    expect(back).toEqual(bob.lastResort);
    expectCode(() => generateKemPrekeys(bob.keys.identity, 1, 2, true), 'bad_input');
  });
});

describe('PQXDH', () => {
  it('starts a post-quantum session that both sides read, with a one-time or the last-resort KEM prekey', async () => {
    for (const pick of ['one-time', 'last-resort'] as const) {
      const alice = pqParty('alice');
      const bob = pqParty('bob');
      const kem = pick === 'one-time' ? bob.kem[0]! : bob.lastResort;
      const s = start(alice, bob, kem, true);
      expect(s.postQuantum).toBe(true);
      const { session: sent, body } = await firstMessage(s);
      const env = await openEnvelope(bob.keys.identity, body);
      expect(env.payload[0]).toBe(PQ_PREKEY_VERSION);
      expect(readPrekeyMessage(env.payload).kemPrekeyId).toBe(kem.keyId);
      const { session: bobSide, content } = acceptAs(bob, env, kem, true);
      expect(str(content.body)).toBe('hello, post-quantum bob');
      expect(bobSide.postQuantum).toBe(true);
      // And back: the reply ends alice's prekey phase.
      const reply = await encryptToDevice(bobSide, {
        messageId: createMessageId(),
        content: { kind: 'chat', body: text('hi alice') },
      });
      const got = decryptFromDevice(sent, await openEnvelope(alice.keys.identity, reply.body));
      expect(str(got.content.body)).toBe('hi alice');
      expect(got.session.pendingPrekey).toBeNull();
    }
  });

  it('mixes the KEM secret into the root secret: the wrong KEM key or a tampered ciphertext never decrypts', async () => {
    const alice = pqParty('alice');
    const bob = pqParty('bob');
    const { body } = await firstMessage(start(alice, bob, bob.kem[0]!));
    const env = await openEnvelope(bob.keys.identity, body);
    // Another key under the same id (the secret decapsulates to an unrelated value: implicit rejection).
    const impostor = { ...bob.kem[1]!, keyId: bob.kem[0]!.keyId };
    expectCode(() => acceptAs(bob, env, impostor), 'decrypt_failed');
    const tampered = env.payload.slice();
    tampered[1 + 32 + 32 + 4 + 1 + 4 + 4 + 100]! ^= 1; // one bit of the ML-KEM ciphertext
    expectCode(() => acceptAs(bob, withPayload(env, tampered), bob.kem[0]!), 'decrypt_failed');
    // Naming a KEM prekey the caller does not pass, or a different one.
    expectCode(() => acceptAs(bob, env, null), 'unknown_prekey');
    expectCode(() => acceptAs(bob, env, bob.kem[1]!), 'unknown_prekey');
    // The untouched message still opens.
    expect(str(acceptAs(bob, env, bob.kem[0]!).content.body)).toBe('hello, post-quantum bob');
  });

  it('refuses a downgrade: a classic start where post-quantum is required, and a PQXDH start stripped of its KEM part', async () => {
    const alice = pqParty('alice');
    const bob = pqParty('bob');
    // The initiator refuses a bundle without a KEM prekey.
    expectCode(() => start(alice, bob, null, true), 'post_quantum_required');
    // The responder refuses a classic session start.
    const classic = await openEnvelope(bob.keys.identity, (await firstMessage(start(alice, bob, null))).body);
    expect(classic.payload[0]).toBe(1);
    expectCode(() => acceptAs(bob, classic, null, true), 'post_quantum_required');
    // Stripping the KEM part of a PQXDH start: refused as a downgrade, and even where classic sessions are still
    // accepted it does not decrypt (the KEM secret is in the root secret and the AD label names the version).
    const pq = await openEnvelope(bob.keys.identity, (await firstMessage(start(alice, bob, bob.kem[0]!))).body);
    const stripped = withPayload(pq, stripKem(pq.payload));
    expect(readPrekeyMessage(stripped.payload).kemPrekeyId).toBeNull();
    expectCode(() => acceptAs(bob, stripped, null, true), 'post_quantum_required');
    expectCode(() => acceptAs(bob, stripped, null, false), 'decrypt_failed');
    // A classic start still works where it is allowed (existing sessions and old clients).
    expect(str(acceptAs(bob, classic, null, false).content.body)).toBe('hello, post-quantum bob');
  });

  it('keeps the pending KEM ciphertext through storage, and reads sessions stored before PQXDH', async () => {
    const alice = pqParty('alice');
    const bob = pqParty('bob');
    const s = start(alice, bob, bob.kem[0]!);
    const back = deserializeSession(JSON.parse(JSON.stringify(serializeSession(s))));
    expect(back.postQuantum).toBe(true);
    expect(back.pendingPrekey?.kem?.ciphertext).toEqual(s.pendingPrekey?.kem?.ciphertext);
    // The stored session goes on sending the same PQXDH prekey message that bob accepts.
    const env = await openEnvelope(bob.keys.identity, (await firstMessage(back)).body);
    expect(str(acceptAs(bob, env, bob.kem[0]!).content.body)).toBe('hello, post-quantum bob');
    // A record written before this change has no postQuantum field: it is a classic session.
    const legacy = serializeSession(start(alice, bob, null)) as unknown as Record<string, unknown>;
    expect('postQuantum' in legacy).toBe(false);
    expect(deserializeSession(legacy).postQuantum).toBe(false);
    // A KEM part on a record that says classic is refused.
    const forged = { ...serializeSession(s) } as Record<string, unknown>;
    delete forged['postQuantum'];
    expectCode(() => deserializeSession(forged), 'bad_input');
  });
});
