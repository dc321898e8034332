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
  initiateSession,
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

/** Alice's and Bob's sessions after one round trip: both send normal (not prekey) messages. */
async function established() {
  const alice = createAccountKeys({ oneTimePrekeyCount: 0 });
  const bob = createAccountKeys({ oneTimePrekeyCount: 1 });
  const bundle = verifyPrekeyBundle({
    identityKey: bob.upload.identityKey,
    signedPrekey: bob.upload.signedPrekey,
    oneTimePrekey: bob.upload.oneTimePrekeys[0],
  });
  const body = randomBytes(BODY_BYTES);
  const start = initiateSession({
    identity: alice.identity,
    localUserId: 'alice',
    localDeviceId: 'a1',
    peerUserId: 'bob',
    peerDeviceId: 'b1',
    bundle,
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
  });
  const reply = await encryptToDevice(accepted.session, {
    messageId: createMessageId(),
    content: { kind: 'chat', body },
  });
  const a = decryptFromDevice(first.session, await openEnvelope(alice.identity, reply.body)).session;
  return { bob, a, b: reply.session };
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
  const ms = (seconds * 1000) / 4;
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

  return { send_us, receive_us, group100_send_us, group_receive_us, backend: x25519Backend() };
}
