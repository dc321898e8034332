// The client-cost workload, run as-is in Node and (bundled by client-cost.ts) in a Chromium page: what one 1:1 or
// group message costs the sending and the receiving client, 200-byte messages, in µs per message.

import {
  acceptSession,
  createAccountKeys,
  createMessageId,
  createSenderKey,
  decryptFromDevice,
  decryptGroupMessage,
  encryptGroupMessage,
  encryptToDevice,
  generateKemPrekeys,
  initiateSession,
  kemPrekeyToWire,
  openEnvelope,
  randomBytes,
  readPrekeyMessage,
  ready,
  senderKeyDistribution,
  type Session,
  verifyPrekeyBundle,
} from '../src/index.js';
import { acceptSenderKeyDistribution } from '../src/sender-keys.js';
import { dangerousTestOnlySetX25519Backend, x25519Backend, type X25519Backend } from '../src/x25519.js';

export interface ClientCost {
  send_us: number;
  receive_us: number;
  group100_send_us: number;
  group_receive_us: number;
  /** A conversation where every message answers the last (a DH ratchet step each), per message, both ends. */
  conversation_us: number;
  /** The same on post-quantum sessions: PQXDH, ML-KEM rekeying every KEM_REKEY_STEPS steps (amortised). */
  pq_conversation_us: number;
  /** Session setup, both ends: initiate + first message + accept + decrypt. */
  x3dh_setup_us: number;
  pqxdh_setup_us: number;
}

const SLICES = 5;
const BODY_BYTES = 200;

/** Median of `SLICES` timed slices of `ms / SLICES` each (after a warm-up): robust to a busy shared machine. */
async function perOp(ms: number, warmup: number, step: () => Promise<unknown> | unknown, limit = Infinity) {
  for (let i = 0; i < warmup; i++) await step();
  const slices: number[] = [];
  let done = warmup;
  for (let s = 0; s < SLICES && done < limit; s++) {
    let n = 0;
    const start = performance.now();
    let elapsed = 0;
    while ((elapsed < ms / SLICES || n === 0) && done < limit) {
      await step();
      n++;
      done++;
      elapsed = performance.now() - start;
    }
    slices.push((elapsed * 1000) / n);
  }
  slices.sort((a, b) => a - b);
  return Math.round(slices[Math.floor(slices.length / 2)]! * 10) / 10;
}

/** A session start, both ends: Bob's bundle (with a KEM prekey when `pq`), Alice's first message, Bob's accept. */
async function started(pq: boolean) {
  const alice = createAccountKeys({ oneTimePrekeyCount: 0 });
  const bob = createAccountKeys({ oneTimePrekeyCount: 1 });
  const kem = pq ? generateKemPrekeys(bob.identity, 1, 1, true)[0]! : null;
  const bundle = verifyPrekeyBundle({
    identityKey: bob.upload.identityKey,
    signedPrekey: bob.upload.signedPrekey,
    oneTimePrekey: bob.upload.oneTimePrekeys[0],
    kemPrekey: kem ? kemPrekeyToWire(kem) : null,
  });
  return { alice, bob, kem, bundle };
}

async function firstExchange(pq: boolean, s: Awaited<ReturnType<typeof started>>, body: Uint8Array) {
  const { alice, bob, kem, bundle } = s;
  const start = initiateSession({
    identity: alice.identity,
    localUserId: 'alice',
    localDeviceId: 'a1',
    peerUserId: 'bob',
    peerDeviceId: 'b1',
    bundle,
    requirePostQuantum: pq,
  });
  const first = await encryptToDevice(start, { messageId: createMessageId(), content: { kind: 'chat', body } });
  const env = await openEnvelope(bob.identity, first.body);
  const otkId = readPrekeyMessage(env.payload).oneTimePrekeyId;
  const accepted = acceptSession({
    identity: bob.identity,
    localUserId: 'bob',
    localDeviceId: 'b1',
    envelope: env,
    signedPrekey: bob.signedPrekey,
    oneTimePrekey: bob.oneTimePrekeys.find((k) => k.keyId === otkId) ?? null,
    expectedPeerIdentityKey: alice.identity.publicKey,
    kemPrekey: kem,
    requirePostQuantum: pq,
  });
  return { first, accepted };
}

/** Alice's and Bob's sessions after one round trip: both send normal (not prekey) messages. Post-quantum (PQXDH,
 * as the app makes them) unless `pq` is false. */
async function established(pq = true) {
  const body = randomBytes(BODY_BYTES);
  const s = await started(pq);
  const { alice, bob } = s;
  const { first, accepted } = await firstExchange(pq, s, body);
  const reply = await encryptToDevice(accepted.session, {
    messageId: createMessageId(),
    content: { kind: 'chat', body },
  });
  const a = decryptFromDevice(first.session, await openEnvelope(alice.identity, reply.body)).session;
  return { alice, bob, a, b: reply.session };
}

/** Per message, both ends, in a conversation where each message answers the last (every message a DH step). */
async function conversation(ms: number, pq: boolean, body: Uint8Array) {
  const { alice, bob, a: a0, b: b0 } = await established(pq);
  let a: Session = a0;
  let b: Session = b0;
  let turn = 0;
  return perOp(ms, 60, async () => {
    if (turn++ % 2 === 0) {
      const r = await encryptToDevice(a, { messageId: createMessageId(), content: { kind: 'chat', body } });
      a = r.session;
      b = decryptFromDevice(b, await openEnvelope(bob.identity, r.body)).session;
    } else {
      const r = await encryptToDevice(b, { messageId: createMessageId(), content: { kind: 'chat', body } });
      b = r.session;
      a = decryptFromDevice(a, await openEnvelope(alice.identity, r.body)).session;
    }
  });
}

/** Sizes in bytes: a bundle device's KEM prekey (JSON), the first message, and a header's KEM offer / answer. */
export async function pqSizes() {
  await ready();
  const body = randomBytes(BODY_BYTES);
  const sizes: Record<string, number> = {};
  for (const pq of [false, true]) {
    const s = await started(pq);
    const { first } = await firstExchange(pq, s, body);
    sizes[pq ? 'pqxdh_first_message' : 'x3dh_first_message'] = first.body.length;
  }
  const kem = generateKemPrekeys(createAccountKeys({ oneTimePrekeyCount: 0 }).identity, 1, 1, true)[0]!;
  sizes['bundle_kem_prekey_json'] = JSON.stringify(kemPrekeyToWire(kem)).length;
  sizes['header_kem_offer'] = 4 + 1184;
  sizes['header_kem_answer'] = 4 + 1088;
  return sizes;
}

/**
 * Measures the four client costs for about `seconds` in all. `backend` forces an X25519 implementation (the
 * libsodium fallback is the cost before platform X25519); it needs the test hooks (NODE_ENV=test).
 */
export async function measureClientCost(
  seconds: number,
  backend: X25519Backend | null = null,
): Promise<ClientCost & { backend: X25519Backend }> {
  await ready();
  if (backend) await dangerousTestOnlySetX25519Backend(backend);
  const ms = (seconds * 1000) / 8;
  const body = randomBytes(BODY_BYTES);

  // (a) 1:1 send: pad + ratchet encrypt + seal (encryptToDevice), on an established session.
  const { bob, a: aliceSession, b: bobSession } = await established();
  let a: Session = aliceSession;
  const bodies: Uint8Array[] = [];
  const send_us = await perOp(ms, 30, async () => {
    const r = await encryptToDevice(a, { messageId: createMessageId(), content: { kind: 'chat', body } });
    a = r.session;
    bodies.push(r.body);
  });
  // Enough bodies for a fair receive sample (receiving stops early, not late, if it runs out).
  while (bodies.length < 1500) {
    const r = await encryptToDevice(a, { messageId: createMessageId(), content: { kind: 'chat', body } });
    a = r.session;
    bodies.push(r.body);
  }

  // (b) 1:1 receive: open + ratchet decrypt + unpad (openEnvelope + decryptFromDevice), in order.
  let b: Session = bobSession;
  let next = 0;
  const receive_us = await perOp(
    ms,
    30,
    async () => {
      b = decryptFromDevice(b, await openEnvelope(bob.identity, bodies[next++]!)).session;
    },
    bodies.length,
  );

  // (c) group send to 100 members: what the web client does per group message (group-messaging.ts flushRow): one
  // encryptGroupMessage (sender-key encrypt + Ed25519 sign); the relay fans the one body out. Sender keys reach
  // members over pairwise sessions only when they lack it, not per message.
  let own = createSenderKey({ groupId: 'group-100', senderUserId: 'u0', senderDeviceId: 'd0' });
  // Every member's record of the one sender (the distribution names u0/d0, so it is accepted as from u0/d0).
  const records = Array.from({ length: 99 }, () => acceptSenderKeyDistribution('u0', 'd0', senderKeyDistribution(own)));
  const groupBodies: { id: string; body: Uint8Array }[] = [];
  const group100_send_us = await perOp(ms, 30, () => {
    const id = createMessageId();
    const r = encryptGroupMessage(own, { messageId: id, content: { kind: 'chat', body } });
    own = r.senderKey;
    groupBodies.push({ id, body: r.body });
  });
  while (groupBodies.length < 1500) {
    const id = createMessageId();
    const r = encryptGroupMessage(own, { messageId: id, content: { kind: 'chat', body } });
    own = r.senderKey;
    groupBodies.push({ id, body: r.body });
  }

  // (d) group receive, per member: verify + decrypt + unpad (decryptGroupMessage), in order.
  let record = records[0]!;
  let g = 0;
  const group_receive_us = await perOp(
    ms,
    0,
    () => {
      const m = groupBodies[g++]!;
      record = decryptGroupMessage(record, { groupId: 'group-100', messageId: m.id, body: m.body }).record;
    },
    groupBodies.length,
  );

  // (e) a conversation, classic and post-quantum: the amortised cost of ML-KEM rekeying.
  const conversation_us = await conversation(ms, false, body);
  const pq_conversation_us = await conversation(ms, true, body);

  // (f) session setup, both ends. Key generation belongs to the accounts (made once per device), not to the setup:
  // only the exchange is timed.
  const x3dh_setup_us = await perOpOf(ms / 2, false, body);
  const pqxdh_setup_us = await perOpOf(ms / 2, true, body);

  return {
    send_us,
    receive_us,
    group100_send_us,
    group_receive_us,
    conversation_us,
    pq_conversation_us,
    x3dh_setup_us,
    pqxdh_setup_us,
    backend: x25519Backend(),
  };
}

/** Session setup cost, both ends, over pre-made accounts and bundles (a new bundle per setup, as the relay hands). */
async function perOpOf(ms: number, pq: boolean, body: Uint8Array) {
  const pool = await Promise.all(Array.from({ length: 400 }, () => started(pq)));
  let i = 0;
  return perOp(ms, 10, () => firstExchange(pq, pool[i++ % pool.length]!, body), Infinity);
}
