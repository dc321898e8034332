// Serialisation of every state to JSON-safe objects (base64url strings, numbers) and strict parsing back.

import { constantTimeEqual, fromBase64Url, toBase64Url } from './bytes.js';
import { CryptoError } from './errors.js';
import { checkIdentity, identityFromSeed, identitySeed } from './identity.js';
import {
  checkX25519PublicKey,
  ed25519ToX25519PublicKey,
  KEY_BYTES,
  SIGNATURE_BYTES,
  SIGNING_KEY_BYTES,
} from './keys.js';
import { KEM_CIPHERTEXT_BYTES, KEM_PUBLIC_KEY_BYTES, KEM_SECRET_KEY_BYTES } from './kem.js';
import { initialPqRatchet, MAX_PREVIOUS_REMOTE_KEYS, MAX_SKIPPED_KEYS } from './ratchet.js';
import { DISTRIBUTION_ID_BYTES } from './sender-keys.js';
import { sodium } from './sodium.js';
import type {
  ChainState,
  Identity,
  KemPrekey,
  OneTimePrekey,
  OwnSenderKey,
  SenderKeyRecord,
  PqRatchetState,
  Session,
  SignedPrekey,
} from './types.js';
import { arrayArg, booleanArg, fail, idArg, objectArg, u32Arg, versionArg } from './validate.js';

export interface SerializedIdentity {
  version: 1;
  publicKey: string;
  seed: string;
}
export interface SerializedSignedPrekey {
  version: 1;
  keyId: number;
  publicKey: string;
  privateKey: string;
  signature: string;
}
export interface SerializedOneTimePrekey {
  version: 1;
  keyId: number;
  publicKey: string;
  privateKey: string;
}
export interface SerializedChain {
  key: string;
  counter: number;
}
export interface SerializedSession {
  version: 1;
  localUserId: string;
  localDeviceId: string;
  peerUserId: string;
  peerDeviceId: string;
  localIdentityKey: string;
  peerIdentityKey: string;
  associatedData: string;
  baseKey: string;
  rootKey: string;
  dhSelf: { publicKey: string; privateKey: string };
  dhRemote: string | null;
  sendChain: SerializedChain | null;
  recvChain: SerializedChain | null;
  previousCounter: number;
  skipped: { ratchetKey: string; counter: number; messageKey: string }[];
  previousRemoteKeys: string[];
  pendingPrekey: {
    signedPrekeyId: number;
    oneTimePrekeyId: number | null;
    kem?: { keyId: number; ciphertext: string };
  } | null;
  /** Absent in sessions stored before PQXDH (they are classic). */
  postQuantum?: boolean;
  /** Post-quantum rekeying (PQ sessions made since it exists; older PQ sessions start it when loaded). */
  pqRatchet?: {
    steps: number;
    offer: { id: number; publicKey: string; secretKey: string } | null;
    nextOfferId: number;
    reply: { id: number; ciphertext: string } | null;
    answered: number;
    epochs: number;
  };
}
export interface SerializedOwnSenderKey {
  version: 2;
  groupId: string;
  senderUserId: string;
  senderDeviceId: string;
  distributionId: string;
  chainKey: string;
  iteration: number;
  signingPublicKey: string;
  signingKey: string;
}
export interface SerializedSenderKeyRecord {
  version: 2;
  groupId: string;
  senderUserId: string;
  senderDeviceId: string;
  distributionId: string;
  chainKey: string;
  iteration: number;
  signingPublicKey: string;
  skipped: { iteration: number; messageKey: string }[];
}

const b64 = toBase64Url;
/** Longest associated data: label prefix + two keys + two length-prefixed ids of up to 255 bytes. */
const MAX_AD_BYTES = 64 + 2 * KEY_BYTES + 2 * 256;

function key(value: unknown, name: string, length = KEY_BYTES): Uint8Array {
  return fromBase64Url(value, name, length);
}

function x25519(value: unknown, name: string): Uint8Array {
  return checkX25519PublicKey(key(value, name), name);
}

/** Serializes an identity (secret: the Ed25519 seed) to a JSON-safe object. */
export function serializeIdentity(identity: Identity): SerializedIdentity {
  checkIdentity(identity);
  return { version: 1, publicKey: b64(identity.publicKey), seed: b64(identitySeed(identity)) };
}

/** Parses a serialized identity and re-derives its keys; the stored public key must match the seed. */
export function deserializeIdentity(value: unknown): Identity {
  const o = objectArg(value, 'identity', ['version', 'publicKey', 'seed']);
  versionArg(o['version'], 'identity');
  const publicKey = key(o['publicKey'], 'identity.publicKey');
  const identity = identityFromSeed(key(o['seed'], 'identity.seed'));
  if (!constantTimeEqual(identity.publicKey, publicKey)) fail('identity.publicKey does not match identity.seed');
  return identity;
}

/** Serializes a signed prekey (secret: its private key). */
export function serializeSignedPrekey(spk: SignedPrekey): SerializedSignedPrekey {
  return {
    version: 1,
    keyId: spk.keyId,
    publicKey: b64(spk.keyPair.publicKey),
    privateKey: b64(spk.keyPair.privateKey),
    signature: b64(spk.signature),
  };
}

/** Parses a serialized signed prekey. */
export function deserializeSignedPrekey(value: unknown): SignedPrekey {
  const o = objectArg(value, 'signedPrekey', ['version', 'keyId', 'publicKey', 'privateKey', 'signature']);
  versionArg(o['version'], 'signedPrekey');
  return {
    keyId: u32Arg(o['keyId'], 'signedPrekey.keyId'),
    keyPair: {
      publicKey: x25519(o['publicKey'], 'signedPrekey.publicKey'),
      privateKey: key(o['privateKey'], 'signedPrekey.privateKey'),
    },
    signature: key(o['signature'], 'signedPrekey.signature', SIGNATURE_BYTES),
  };
}

/** Serializes a one-time prekey (secret: its private key). */
export function serializeOneTimePrekey(otk: OneTimePrekey): SerializedOneTimePrekey {
  return {
    version: 1,
    keyId: otk.keyId,
    publicKey: b64(otk.keyPair.publicKey),
    privateKey: b64(otk.keyPair.privateKey),
  };
}

/** Parses a serialized one-time prekey. */
export function deserializeOneTimePrekey(value: unknown): OneTimePrekey {
  const o = objectArg(value, 'oneTimePrekey', ['version', 'keyId', 'publicKey', 'privateKey']);
  versionArg(o['version'], 'oneTimePrekey');
  return {
    keyId: u32Arg(o['keyId'], 'oneTimePrekey.keyId'),
    keyPair: {
      publicKey: x25519(o['publicKey'], 'oneTimePrekey.publicKey'),
      privateKey: key(o['privateKey'], 'oneTimePrekey.privateKey'),
    },
  };
}

export interface SerializedKemPrekey {
  version: 1;
  keyId: number;
  lastResort: boolean;
  publicKey: string;
  secretKey: string;
  signature: string;
}

/** Serializes a KEM prekey (secret: its ML-KEM secret key). */
export function serializeKemPrekey(k: KemPrekey): SerializedKemPrekey {
  return {
    version: 1,
    keyId: k.keyId,
    lastResort: k.lastResort,
    publicKey: b64(k.publicKey),
    secretKey: b64(k.secretKey),
    signature: b64(k.signature),
  };
}

/** Parses a serialized KEM prekey. */
export function deserializeKemPrekey(value: unknown): KemPrekey {
  const o = objectArg(value, 'kemPrekey', ['version', 'keyId', 'lastResort', 'publicKey', 'secretKey', 'signature']);
  versionArg(o['version'], 'kemPrekey');
  return {
    keyId: u32Arg(o['keyId'], 'kemPrekey.keyId'),
    lastResort: booleanArg(o['lastResort'], 'kemPrekey.lastResort'),
    publicKey: key(o['publicKey'], 'kemPrekey.publicKey', KEM_PUBLIC_KEY_BYTES),
    secretKey: key(o['secretKey'], 'kemPrekey.secretKey', KEM_SECRET_KEY_BYTES),
    signature: key(o['signature'], 'kemPrekey.signature', SIGNATURE_BYTES),
  };
}

function serializeChain(chain: ChainState | null): SerializedChain | null {
  return chain ? { key: b64(chain.key), counter: chain.counter } : null;
}

function deserializeChain(value: unknown, name: string): ChainState | null {
  if (value === null) return null;
  const o = objectArg(value, name, ['key', 'counter']);
  return { key: key(o['key'], `${name}.key`), counter: u32Arg(o['counter'], `${name}.counter`) };
}

/** Serializes a session (secret: root, chain and skipped message keys). */
export function serializeSession(s: Session): SerializedSession {
  if (typeof s !== 'object' || s === null || s.version !== 1) fail('session must be a Session');
  const skipped: SerializedSession['skipped'] = [];
  for (const [k, messageKey] of s.skipped) {
    const [ratchetKey, counter] = k.split(':');
    skipped.push({ ratchetKey: ratchetKey!, counter: Number(counter), messageKey: b64(messageKey) });
  }
  return {
    version: 1,
    localUserId: s.localUserId,
    localDeviceId: s.localDeviceId,
    peerUserId: s.peerUserId,
    peerDeviceId: s.peerDeviceId,
    localIdentityKey: b64(s.localIdentityKey),
    peerIdentityKey: b64(s.peerIdentityKey),
    associatedData: b64(s.associatedData),
    baseKey: b64(s.baseKey),
    rootKey: b64(s.rootKey),
    dhSelf: { publicKey: b64(s.dhSelf.publicKey), privateKey: b64(s.dhSelf.privateKey) },
    dhRemote: s.dhRemote ? b64(s.dhRemote) : null,
    sendChain: serializeChain(s.sendChain),
    recvChain: serializeChain(s.recvChain),
    previousCounter: s.previousCounter,
    skipped,
    previousRemoteKeys: [...s.previousRemoteKeys],
    pendingPrekey: s.pendingPrekey
      ? {
          signedPrekeyId: s.pendingPrekey.signedPrekeyId,
          oneTimePrekeyId: s.pendingPrekey.oneTimePrekeyId,
          ...(s.pendingPrekey.kem
            ? { kem: { keyId: s.pendingPrekey.kem.keyId, ciphertext: b64(s.pendingPrekey.kem.ciphertext) } }
            : {}),
        }
      : null,
    ...(s.postQuantum ? { postQuantum: true } : {}),
    ...(s.pqRatchet ? { pqRatchet: serializePqRatchet(s.pqRatchet) } : {}),
  };
}

function serializePqRatchet(p: PqRatchetState): NonNullable<SerializedSession['pqRatchet']> {
  return {
    steps: p.steps,
    offer: p.offer ? { id: p.offer.id, publicKey: b64(p.offer.publicKey), secretKey: b64(p.offer.secretKey) } : null,
    nextOfferId: p.nextOfferId,
    reply: p.reply ? { id: p.reply.id, ciphertext: b64(p.reply.ciphertext) } : null,
    answered: p.answered,
    epochs: p.epochs,
  };
}

function deserializePqRatchet(value: unknown): PqRatchetState {
  const name = 'session.pqRatchet';
  const o = objectArg(value, name, ['steps', 'offer', 'nextOfferId', 'reply', 'answered', 'epochs']);
  let offer: PqRatchetState['offer'] = null;
  if (o['offer'] !== null) {
    const f = objectArg(o['offer'], `${name}.offer`, ['id', 'publicKey', 'secretKey']);
    offer = {
      id: u32Arg(f['id'], `${name}.offer.id`),
      publicKey: fromBase64Url(f['publicKey'], `${name}.offer.publicKey`, KEM_PUBLIC_KEY_BYTES),
      secretKey: fromBase64Url(f['secretKey'], `${name}.offer.secretKey`, KEM_SECRET_KEY_BYTES),
    };
  }
  let reply: PqRatchetState['reply'] = null;
  if (o['reply'] !== null) {
    const r = objectArg(o['reply'], `${name}.reply`, ['id', 'ciphertext']);
    reply = {
      id: u32Arg(r['id'], `${name}.reply.id`),
      ciphertext: fromBase64Url(r['ciphertext'], `${name}.reply.ciphertext`, KEM_CIPHERTEXT_BYTES),
    };
  }
  return {
    steps: u32Arg(o['steps'], `${name}.steps`),
    offer,
    nextOfferId: u32Arg(o['nextOfferId'], `${name}.nextOfferId`),
    reply,
    answered: u32Arg(o['answered'], `${name}.answered`),
    epochs: u32Arg(o['epochs'], `${name}.epochs`),
  };
}

const SESSION_KEYS = [
  'version',
  'localUserId',
  'localDeviceId',
  'peerUserId',
  'peerDeviceId',
  'localIdentityKey',
  'peerIdentityKey',
  'associatedData',
  'baseKey',
  'rootKey',
  'dhSelf',
  'dhRemote',
  'sendChain',
  'recvChain',
  'previousCounter',
  'skipped',
  'previousRemoteKeys',
  'pendingPrekey',
] as const;

/** Parses a serialized session, validating every field's shape and length. */
export function deserializeSession(value: unknown): Session {
  // `postQuantum` is written only for PQXDH sessions; older records have none.
  const pq = typeof value === 'object' && value !== null && 'postQuantum' in value;
  const hasPqRatchet = typeof value === 'object' && value !== null && 'pqRatchet' in value;
  const o = objectArg(value, 'session', [
    ...SESSION_KEYS,
    ...(pq ? ['postQuantum'] : []),
    ...(hasPqRatchet ? ['pqRatchet'] : []),
  ]);
  const postQuantum = pq ? booleanArg(o['postQuantum'], 'session.postQuantum') : false;
  if (hasPqRatchet && !postQuantum) fail('session.pqRatchet is set on a classic session');
  versionArg(o['version'], 'session');
  const associatedData = fromBase64Url(o['associatedData'], 'session.associatedData');
  if (associatedData.length < 2 * KEY_BYTES || associatedData.length > MAX_AD_BYTES) {
    fail('session.associatedData has an impossible length');
  }
  const dhSelf = objectArg(o['dhSelf'], 'session.dhSelf', ['publicKey', 'privateKey']);
  const skipped = new Map<string, Uint8Array>();
  for (const [i, entry] of arrayArg(o['skipped'], 'session.skipped', MAX_SKIPPED_KEYS).entries()) {
    const e = objectArg(entry, `session.skipped[${i}]`, ['ratchetKey', 'counter', 'messageKey']);
    const ratchetKey = key(e['ratchetKey'], `session.skipped[${i}].ratchetKey`);
    const counter = u32Arg(e['counter'], `session.skipped[${i}].counter`);
    skipped.set(`${b64(ratchetKey)}:${counter}`, key(e['messageKey'], `session.skipped[${i}].messageKey`));
  }
  const previousRemoteKeys = arrayArg(
    o['previousRemoteKeys'],
    'session.previousRemoteKeys',
    MAX_PREVIOUS_REMOTE_KEYS,
  ).map((k, i) => b64(key(k, `session.previousRemoteKeys[${i}]`)));
  let pendingPrekey: Session['pendingPrekey'] = null;
  if (o['pendingPrekey'] !== null) {
    const raw = o['pendingPrekey'];
    const hasKem = typeof raw === 'object' && raw !== null && 'kem' in raw;
    const fields = ['signedPrekeyId', 'oneTimePrekeyId', ...(hasKem ? ['kem'] : [])];
    const pp = objectArg(raw, 'session.pendingPrekey', fields);
    let kem: { keyId: number; ciphertext: Uint8Array } | undefined;
    if (hasKem) {
      const k = objectArg(pp['kem'], 'session.pendingPrekey.kem', ['keyId', 'ciphertext']);
      kem = {
        keyId: u32Arg(k['keyId'], 'session.pendingPrekey.kem.keyId'),
        ciphertext: fromBase64Url(k['ciphertext'], 'session.pendingPrekey.kem.ciphertext', KEM_CIPHERTEXT_BYTES),
      };
    }
    pendingPrekey = {
      signedPrekeyId: u32Arg(pp['signedPrekeyId'], 'session.pendingPrekey.signedPrekeyId'),
      oneTimePrekeyId:
        pp['oneTimePrekeyId'] === null ? null : u32Arg(pp['oneTimePrekeyId'], 'session.pendingPrekey.oneTimePrekeyId'),
      ...(kem ? { kem } : {}),
    };
    if (kem && !postQuantum) fail('session.pendingPrekey.kem is set on a classic session');
  }
  const peerIdentityKey = key(o['peerIdentityKey'], 'session.peerIdentityKey');
  const localIdentityKey = key(o['localIdentityKey'], 'session.localIdentityKey');
  ed25519ToX25519PublicKey(localIdentityKey, 'session.localIdentityKey');
  return {
    version: 1,
    localUserId: idArg(o['localUserId'], 'session.localUserId'),
    localDeviceId: idArg(o['localDeviceId'], 'session.localDeviceId'),
    peerUserId: idArg(o['peerUserId'], 'session.peerUserId'),
    peerDeviceId: idArg(o['peerDeviceId'], 'session.peerDeviceId'),
    localIdentityKey,
    peerIdentityKey,
    peerIdentityDhKey: ed25519ToX25519PublicKey(peerIdentityKey, 'session.peerIdentityKey'),
    associatedData,
    baseKey: x25519(o['baseKey'], 'session.baseKey'),
    rootKey: key(o['rootKey'], 'session.rootKey'),
    dhSelf: {
      publicKey: x25519(dhSelf['publicKey'], 'session.dhSelf.publicKey'),
      privateKey: key(dhSelf['privateKey'], 'session.dhSelf.privateKey'),
    },
    dhRemote: o['dhRemote'] === null ? null : x25519(o['dhRemote'], 'session.dhRemote'),
    sendChain: deserializeChain(o['sendChain'], 'session.sendChain'),
    recvChain: deserializeChain(o['recvChain'], 'session.recvChain'),
    previousCounter: u32Arg(o['previousCounter'], 'session.previousCounter'),
    skipped,
    previousRemoteKeys,
    pendingPrekey,
    postQuantum,
    // A PQ session stored before rekeying existed starts it now (both sides then send version-2 headers).
    ...(postQuantum ? { pqRatchet: hasPqRatchet ? deserializePqRatchet(o['pqRatchet']) : initialPqRatchet() } : {}),
  };
}

/** Serializes our own sender key for a group (secret: chain and signing keys). */
export function serializeOwnSenderKey(k: OwnSenderKey): SerializedOwnSenderKey {
  return {
    version: 2,
    groupId: k.groupId,
    senderUserId: k.senderUserId,
    senderDeviceId: k.senderDeviceId,
    distributionId: b64(k.distributionId),
    chainKey: b64(k.chainKey),
    iteration: k.iteration,
    signingPublicKey: b64(k.signingPublicKey),
    signingKey: b64(k.signingKey),
  };
}

function signingPublicKey(value: unknown, name: string): Uint8Array {
  const pk = key(value, name);
  if (!sodium().crypto_core_ed25519_is_valid_point(pk)) {
    throw new CryptoError('invalid_key', `${name} is not a valid Ed25519 public key`);
  }
  return pk;
}

/**
 * Parses a serialized own sender key; the signing key must match its public key. A version 1 key (it named no
 * sender) throws `unsupported_version`: drop it and create a new one.
 */
export function deserializeOwnSenderKey(value: unknown): OwnSenderKey {
  if (typeof value === 'object' && value !== null) versionArg((value as { version?: unknown }).version, 'senderKey', 2);
  const o = objectArg(value, 'senderKey', [
    'version',
    'groupId',
    'senderUserId',
    'senderDeviceId',
    'distributionId',
    'chainKey',
    'iteration',
    'signingPublicKey',
    'signingKey',
  ]);
  versionArg(o['version'], 'senderKey', 2);
  const pk = signingPublicKey(o['signingPublicKey'], 'senderKey.signingPublicKey');
  const sk = key(o['signingKey'], 'senderKey.signingKey', SIGNING_KEY_BYTES);
  if (!constantTimeEqual(sk.subarray(KEY_BYTES), pk)) fail('senderKey.signingKey does not match signingPublicKey');
  return {
    version: 2,
    groupId: idArg(o['groupId'], 'senderKey.groupId'),
    senderUserId: idArg(o['senderUserId'], 'senderKey.senderUserId'),
    senderDeviceId: idArg(o['senderDeviceId'], 'senderKey.senderDeviceId'),
    distributionId: key(o['distributionId'], 'senderKey.distributionId', DISTRIBUTION_ID_BYTES),
    chainKey: key(o['chainKey'], 'senderKey.chainKey'),
    iteration: u32Arg(o['iteration'], 'senderKey.iteration'),
    signingPublicKey: pk,
    signingKey: sk,
  };
}

/** Serializes another member's sender-key record (secret: chain and skipped message keys). */
export function serializeSenderKeyRecord(r: SenderKeyRecord): SerializedSenderKeyRecord {
  return {
    version: 2,
    groupId: r.groupId,
    senderUserId: r.senderUserId,
    senderDeviceId: r.senderDeviceId,
    distributionId: b64(r.distributionId),
    chainKey: b64(r.chainKey),
    iteration: r.iteration,
    signingPublicKey: b64(r.signingPublicKey),
    skipped: [...r.skipped].map(([iteration, messageKey]) => ({ iteration, messageKey: b64(messageKey) })),
  };
}

/**
 * Parses a serialized sender-key record. A version 1 record (accepted without checking the sender it names)
 * throws `unsupported_version`: drop it; the sender's next distribution replaces it.
 */
export function deserializeSenderKeyRecord(value: unknown): SenderKeyRecord {
  if (typeof value === 'object' && value !== null) versionArg((value as { version?: unknown }).version, 'record', 2);
  const o = objectArg(value, 'record', [
    'version',
    'groupId',
    'senderUserId',
    'senderDeviceId',
    'distributionId',
    'chainKey',
    'iteration',
    'signingPublicKey',
    'skipped',
  ]);
  versionArg(o['version'], 'record', 2);
  const skipped = new Map<number, Uint8Array>();
  for (const [i, entry] of arrayArg(o['skipped'], 'record.skipped', MAX_SKIPPED_KEYS).entries()) {
    const e = objectArg(entry, `record.skipped[${i}]`, ['iteration', 'messageKey']);
    skipped.set(
      u32Arg(e['iteration'], `record.skipped[${i}].iteration`),
      key(e['messageKey'], `record.skipped[${i}].messageKey`),
    );
  }
  return {
    version: 2,
    groupId: idArg(o['groupId'], 'record.groupId'),
    senderUserId: idArg(o['senderUserId'], 'record.senderUserId'),
    senderDeviceId: idArg(o['senderDeviceId'], 'record.senderDeviceId'),
    distributionId: key(o['distributionId'], 'record.distributionId', DISTRIBUTION_ID_BYTES),
    chainKey: key(o['chainKey'], 'record.chainKey'),
    iteration: u32Arg(o['iteration'], 'record.iteration'),
    signingPublicKey: signingPublicKey(o['signingPublicKey'], 'record.signingPublicKey'),
    skipped,
  };
}
