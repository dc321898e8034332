// Benchmark (not a test): ops/s of the protocol's hot paths. `npm run bench -w crypto`; results in RESULTS.md.

import { availableParallelism } from 'node:os';
import {
  acceptSession,
  createAccountKeys,
  createMessageId,
  createSenderKey,
  decryptFromDevice,
  decryptGroupMessage,
  derivePasswordKeys,
  encryptGroupMessage,
  encryptToDevice,
  generateIdentity,
  initiateSession,
  KDF_PARAMS,
  openEnvelope,
  type PrekeyBundle,
  randomBytes,
  ratchetDecrypt,
  ratchetEncrypt,
  readPrekeyMessage,
  ready,
  safetyNumber,
  sealEnvelope,
  senderKeyDistribution,
  type Session,
  verifyPrekeyBundle,
} from '../src/index.js';
import { acceptSenderKeyDistribution } from '../src/sender-keys.js';
import { x25519Backend } from '../src/x25519.js';

interface Row {
  name: string;
  ops: number;
  usPerOp: number;
}

const rows: Row[] = [];

/** Runs `fn` for at least `minMs` (after a warm-up) and records ops/s. */
async function bench(name: string, fn: () => unknown, minMs = 1000, warmup = 50): Promise<void> {
  for (let i = 0; i < warmup; i++) await fn();
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    await fn();
    n++;
    elapsed = performance.now() - start;
  }
  rows.push({ name, ops: (n * 1000) / elapsed, usPerOp: (elapsed * 1000) / n });
  console.error(`${name}: ${((n * 1000) / elapsed).toFixed(0)} ops/s`);
}

await ready();
const body200 = randomBytes(200);

// ── session start ──
const alice = createAccountKeys({ oneTimePrekeyCount: 0 });
const bob = createAccountKeys({ oneTimePrekeyCount: 100 });
const bundles: PrekeyBundle[] = bob.upload.oneTimePrekeys.map((otk) =>
  verifyPrekeyBundle({
    identityKey: bob.upload.identityKey,
    signedPrekey: bob.upload.signedPrekey,
    oneTimePrekey: otk,
  }),
);
let bundleIndex = 0;
const start = (b: PrekeyBundle) =>
  initiateSession({
    identity: alice.identity,
    localUserId: 'alice',
    localDeviceId: 'a1',
    peerUserId: 'bob',
    peerDeviceId: 'b1',
    bundle: b,
  });
await bench('X3DH initiator: initiateSession (5 X25519)', () => {
  start(bundles[bundleIndex++ % bundles.length]!);
});
await bench('X3DH both sides: initiate + first message + accept + decrypt', async () => {
  const i = bundleIndex++ % bundles.length;
  const sent = await encryptToDevice(start(bundles[i]!), {
    messageId: createMessageId(),
    content: { kind: 'chat', body: body200 },
  });
  const env = await openEnvelope(bob.identity, sent.body);
  const otkId = readPrekeyMessage(env.payload).oneTimePrekeyId;
  acceptSession({
    identity: bob.identity,
    localUserId: 'bob',
    localDeviceId: 'b1',
    envelope: env,
    signedPrekey: bob.signedPrekey,
    oneTimePrekey: bob.oneTimePrekeys.find((k) => k.keyId === otkId)!,
    expectedPeerIdentityKey: alice.identity.publicKey,
  });
});

// ── an established session ──
async function established(): Promise<{ a: Session; b: Session }> {
  const sent = await encryptToDevice(start(bundles[0]!), {
    messageId: createMessageId(),
    content: { kind: 'chat', body: body200 },
  });
  const env = await openEnvelope(bob.identity, sent.body);
  const accepted = acceptSession({
    identity: bob.identity,
    localUserId: 'bob',
    localDeviceId: 'b1',
    envelope: env,
    signedPrekey: bob.signedPrekey,
    oneTimePrekey: bob.oneTimePrekeys[0]!,
    expectedPeerIdentityKey: alice.identity.publicKey,
  });
  const reply = await encryptToDevice(accepted.session, {
    messageId: createMessageId(),
    content: { kind: 'chat', body: body200 },
  });
  const a = decryptFromDevice(sent.session, await openEnvelope(alice.identity, reply.body)).session;
  return { a, b: reply.session };
}
let { a, b } = await established();

await bench('Double Ratchet encrypt + decrypt, 200 bytes (same chain)', () => {
  const e = ratchetEncrypt(a, body200);
  a = e.session;
  b = ratchetDecrypt(b, e.type, e.payload).session;
});
await bench('Double Ratchet ping-pong, 200 bytes (a DH ratchet step each way)', () => {
  const e = ratchetEncrypt(a, body200);
  a = e.session;
  b = ratchetDecrypt(b, e.type, e.payload).session;
  const r = ratchetEncrypt(b, body200);
  b = r.session;
  a = ratchetDecrypt(a, r.type, r.payload).session;
});

const recipient = generateIdentity();
const payload = randomBytes(300);
await await bench('seal + open envelope, 300-byte payload (incl. Ed25519→X25519 of the recipient key)', async () => {
  const sealed = await sealEnvelope({
    recipientIdentityKey: recipient.publicKey,
    senderUserId: 'alice',
    senderDeviceId: 'a1',
    messageId: createMessageId(),
    type: 'message',
    payload,
  });
  await openEnvelope(recipient, sealed);
});

({ a, b } = await established());
const pending: Uint8Array[] = [];
await await bench('1:1 message send: pad + ratchet encrypt + seal (200 bytes)', async () => {
  const r = await encryptToDevice(a, { messageId: createMessageId(), content: { kind: 'chat', body: body200 } });
  a = r.session;
  if (pending.length < 20000) pending.push(r.body);
});
let next = 0;
await bench(
  '1:1 message receive: open + ratchet decrypt + unpad (200 bytes)',
  async () => {
    const body = pending[next++]!;
    b = decryptFromDevice(b, await openEnvelope(bob.identity, body)).session;
  },
  Math.min(1000, pending.length * 0.2),
  0,
);

// ── groups ──
for (const size of [10, 100]) {
  let own = createSenderKey({ groupId: `group-${size}`, senderUserId: 'u0', senderDeviceId: 'd0' });
  // The other members' records: built to make the group real, never touched by the send path.
  const records = Array.from({ length: size - 1 }, () =>
    acceptSenderKeyDistribution('u0', 'd0', senderKeyDistribution(own)),
  );
  await bench(`group encrypt + sign, ${records.length + 1} members (one ciphertext for all)`, () => {
    own = encryptGroupMessage(own, {
      messageId: createMessageId(),
      content: { kind: 'chat', body: body200 },
    }).senderKey;
  });
  if (size === 10) {
    let sender = createSenderKey({ groupId: 'g', senderUserId: 's', senderDeviceId: 'd' });
    let record = acceptSenderKeyDistribution('s', 'd', senderKeyDistribution(sender));
    const groupBodies: { id: string; body: Uint8Array }[] = [];
    for (let i = 0; i < 3000; i++) {
      const id = createMessageId();
      const r = encryptGroupMessage(sender, { messageId: id, content: { kind: 'chat', body: body200 } });
      sender = r.senderKey;
      groupBodies.push({ id, body: r.body });
    }
    let g = 0;
    await bench(
      'group decrypt + verify, per receiving member',
      () => {
        const m = groupBodies[g++]!;
        record = decryptGroupMessage(record, { groupId: 'g', messageId: m.id, body: m.body }).record;
      },
      500,
      0,
    );
  }
}

await bench(
  'safety number (2 × 5200 BLAKE2b-512)',
  () => {
    safetyNumber({
      localUserId: 'alice',
      localIdentityKey: alice.identity.publicKey,
      peerUserId: 'bob',
      peerIdentityKey: bob.identity.publicKey,
    });
  },
  1000,
  2,
);
const salt = randomBytes(16);
await bench(
  `Argon2id derivePasswordKeys (opslimit ${KDF_PARAMS.opslimit}, ${KDF_PARAMS.memlimit / 1024 / 1024} MiB)`,
  () => {
    derivePasswordKeys('correct horse battery staple', { salt, ...KDF_PARAMS });
  },
  3000,
  1,
);

console.log(
  `Date: ${new Date().toISOString().slice(0, 10)} · Node ${process.version} · ${availableParallelism()} cores · ${process.platform}/${process.arch} · X25519 (sealed box): ${x25519Backend()}`,
);
console.log('');
console.log('| operation | ops/s | µs/op |');
console.log('| --- | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${r.ops.toFixed(r.ops < 10 ? 2 : 0)} | ${r.usPerOp.toFixed(1)} |`);
