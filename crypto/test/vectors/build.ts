// Builds the golden vectors from fixed seeds. generate.ts writes them to JSON; vectors.test.ts checks that the
// library still produces exactly the committed bytes.

import {
  acceptSession,
  AttachmentSealer,
  createAccountKeys,
  createMessageId,
  createSenderKey,
  dangerousTestOnlySetRandomSource,
  decryptFromDevice,
  decryptGroupMessage,
  derivePasswordKeys,
  encryptGroupMessage,
  encryptToDevice,
  generateAttachmentHeader,
  generateAttachmentKey,
  initiateSession,
  KDF_PARAMS,
  openEnvelope,
  readPrekeyMessage,
  safetyNumber,
  sealLegacyBackup,
  senderKeyDistribution,
  serializeSession,
  Sha256,
  toBase64Url,
  verifyPrekeyBundle,
  type Session,
} from '../../src/index.js';
import { acceptSenderKeyDistribution } from '../../src/sender-keys.js';
import { deterministicRandom } from './drbg.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const utf8 = (s: string) => new TextEncoder().encode(s);
const fromUtf8 = (b: Uint8Array) => new TextDecoder().decode(b);

/** Runs `fn` (sync or async) with the deterministic random source; every vector is built through it. */
export async function withRandom<T>(seed: string, fn: () => T | Promise<T>): Promise<T> {
  dangerousTestOnlySetRandomSource(deterministicRandom(seed));
  try {
    return await fn();
  } finally {
    dangerousTestOnlySetRandomSource(null);
  }
}

export const PAIRWISE_SEED = 'weconnect-golden-pairwise-v1';

/** The pairwise vector's two accounts: the first random draws of its seed. */
export function pairwiseAccounts() {
  return { alice: createAccountKeys({ oneTimePrekeyCount: 1 }), bob: createAccountKeys({ oneTimePrekeyCount: 1 }) };
}

/** X3DH + three Double Ratchet messages (prekey message, reply, normal message), sealed. */
function pairwise() {
  const seed = PAIRWISE_SEED;
  return withRandom(seed, async () => {
    const { alice, bob } = pairwiseAccounts();
    const bundle = verifyPrekeyBundle({
      identityKey: bob.upload.identityKey,
      signedPrekey: bob.upload.signedPrekey,
      oneTimePrekey: bob.upload.oneTimePrekeys[0],
    });
    let a: Session = initiateSession({
      identity: alice.identity,
      localUserId: 'alice',
      localDeviceId: 'alice-phone',
      peerUserId: 'bob',
      peerDeviceId: 'bob-laptop',
      bundle,
    });
    const messages: { from: string; messageId: string; plaintext: string; type: string; body: string }[] = [];
    const m1 = { messageId: createMessageId(), plaintext: 'Hello Bob' };
    const e1 = await encryptToDevice(a, {
      messageId: m1.messageId,
      content: { kind: 'chat', body: utf8(m1.plaintext) },
    });
    a = e1.session;
    const env1 = await openEnvelope(bob.identity, e1.body);
    const accepted = acceptSession({
      identity: bob.identity,
      localUserId: 'bob',
      localDeviceId: 'bob-laptop',
      envelope: env1,
      signedPrekey: bob.signedPrekey,
      oneTimePrekey: bob.oneTimePrekeys.find((k) => k.keyId === readPrekeyMessage(env1.payload).oneTimePrekeyId)!,
      expectedPeerIdentityKey: alice.identity.publicKey,
    });
    let b = accepted.session;
    messages.push({ from: 'alice', ...m1, type: env1.type, body: hex(e1.body) });
    if (fromUtf8(accepted.content.body) !== m1.plaintext) throw new Error('vector self-check failed');

    const m2 = { messageId: createMessageId(), plaintext: 'Hi Alice, got it.' };
    const e2 = await encryptToDevice(b, {
      messageId: m2.messageId,
      content: { kind: 'chat', body: utf8(m2.plaintext) },
    });
    b = e2.session;
    const env2 = await openEnvelope(alice.identity, e2.body);
    a = decryptFromDevice(a, env2).session;
    messages.push({ from: 'bob', ...m2, type: env2.type, body: hex(e2.body) });

    const m3 = { messageId: createMessageId(), plaintext: 'typing…' };
    const e3 = await encryptToDevice(a, {
      messageId: m3.messageId,
      content: { kind: 'control', body: utf8(m3.plaintext) },
    });
    a = e3.session;
    const env3 = await openEnvelope(bob.identity, e3.body);
    b = decryptFromDevice(b, env3).session;
    messages.push({ from: 'alice', ...m3, type: env3.type, body: hex(e3.body) });

    return {
      description:
        "X3DH session start and three Double Ratchet messages (prekey, message, message) in sealed envelopes of format 2 (Alice's two share one seal epoch)",
      randomSeed: seed,
      alice: { userId: 'alice', deviceId: 'alice-phone', upload: alice.upload },
      bob: { userId: 'bob', deviceId: 'bob-laptop', upload: bob.upload },
      messages,
      finalSessions: { alice: serializeSession(a), bob: serializeSession(b) },
    };
  });
}

/** A sender-key distribution and two signed group messages. */
function group() {
  const seed = 'weconnect-golden-group-v1';
  return withRandom(seed, () => {
    let own = createSenderKey({ groupId: 'group-42', senderUserId: 'carol', senderDeviceId: 'carol-phone' });
    const distribution = senderKeyDistribution(own);
    let record = acceptSenderKeyDistribution('carol', 'carol-phone', distribution);
    const bodies: { messageId: string; plaintext: string; body: string }[] = [];
    for (const plaintext of ['Welcome to the group', 'Second message']) {
      const messageId = createMessageId();
      const r = encryptGroupMessage(own, { messageId, content: { kind: 'chat', body: utf8(plaintext) } });
      own = r.senderKey;
      const d = decryptGroupMessage(record, { groupId: 'group-42', messageId, body: r.body });
      record = d.record;
      if (fromUtf8(d.message.content.body) !== plaintext) throw new Error('vector self-check failed');
      bodies.push({ messageId, plaintext, body: hex(r.body) });
    }
    return {
      description:
        'Sender-key distribution (format version 2) and two group messages of one sender (groupId group-42, sender carol/carol-phone)',
      randomSeed: seed,
      groupId: 'group-42',
      senderUserId: 'carol',
      senderDeviceId: 'carol-phone',
      distribution: hex(distribution),
      messages: bodies,
    };
  });
}

/** Safety number and QR bytes for two identities drawn from a fixed seed. */
function safety() {
  const seed = 'weconnect-golden-safety-v1';
  return withRandom(seed, () => {
    const a = createAccountKeys({ oneTimePrekeyCount: 0 }).upload.identityKey;
    const b = createAccountKeys({ oneTimePrekeyCount: 0 }).upload.identityKey;
    const sn = safetyNumber({ localUserId: 'user-a', localIdentityKey: a, peerUserId: 'user-b', peerIdentityKey: b });
    return {
      description: 'Safety number of (user-a, identityKeyA) and (user-b, identityKeyB), as seen by user-a',
      randomSeed: seed,
      localUserId: 'user-a',
      localIdentityKey: a,
      peerUserId: 'user-b',
      peerIdentityKey: b,
      digits: sn.digits,
      qr: hex(sn.qr),
    };
  });
}

/** Argon2id split (protocol v1 parameters) and a sealed key backup. */
function password() {
  const seed = 'weconnect-golden-password-v1';
  return withRandom(seed, () => {
    const salt = new Uint8Array(16).map((_, i) => i * 17);
    const keys = derivePasswordKeys('correct horse battery staple', { salt, ...KDF_PARAMS });
    const identity = createAccountKeys({ oneTimePrekeyCount: 0 }).identity;
    const contacts = [{ userId: 'bob', identityKey: toBase64Url(new Uint8Array(32).fill(0x42)), verified: true }];
    return {
      description: 'Argon2id (opslimit 3, memlimit 64 MiB) → crypto_kdf auth/wrap keys, and a sealed key backup',
      randomSeed: seed,
      password: 'correct horse battery staple',
      salt: toBase64Url(salt),
      ...KDF_PARAMS,
      authKey: keys.authKeyBase64Url,
      wrapKey: toBase64Url(keys.wrapKey),
      backupIdentityKey: toBase64Url(identity.publicKey),
      backupContacts: contacts,
      backup: hex(sealLegacyBackup(keys.wrapKey, { identity, contacts })),
    };
  });
}

/** A patterned file of `size` bytes (byte i is i mod 251), the plaintext of the attachment vectors. */
export function patternFile(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = i % 251;
  return out;
}

/**
 * Two attachments sealed with a key and header from the seed: a 1,000-byte file (one chunk, padded to 1,020; all
 * sealed bytes kept) and a 150,000-byte file (three chunks, the last one final; its SHA-256, the `digest`).
 */
function attachment() {
  const seed = 'weconnect-golden-attachment-v1';
  return withRandom(seed, () => {
    const sealOne = (size: number) => {
      const key = generateAttachmentKey();
      const header = generateAttachmentHeader();
      const sealer = new AttachmentSealer(key, size, header);
      const parts = [...sealer.write(patternFile(size)), ...sealer.finish()];
      const sealed = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        sealed.set(p, at);
        at += p.length;
      }
      const sha = new Sha256();
      sha.update(sealed);
      return {
        key: toBase64Url(key),
        header: hex(header),
        size,
        paddedSize: sealer.paddedSize,
        sealed,
        digest: sha.digest(),
      };
    };
    const small = sealOne(1000);
    const large = sealOne(150_000);
    return {
      randomSeed: seed,
      plaintext: 'byte i of the file is i mod 251',
      small: { ...small, sealed: hex(small.sealed), digest: toBase64Url(small.digest) },
      large: { ...large, sealed: undefined, sealedBytes: large.sealed.length, digest: toBase64Url(large.digest) },
    };
  });
}

export const VECTORS = { pairwise, group, safety, password, attachment } as const;
export type VectorName = keyof typeof VECTORS;
