// Pairwise sessions: X3DH start on both sides, prekey messages, and the pad → ratchet → seal pipeline.

import { concat, constantTimeEqual, Reader, u32be, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  decodeContent,
  encodeContent,
  envelopeBinding,
  padPlaintext,
  sealEnvelopeTo,
  unpadPlaintext,
} from './envelope.js';
import { checkIdentity } from './identity.js';
import { checkKemPrekey, KEM_CIPHERTEXT_BYTES, kemDecapsulate, kemEncapsulate } from './kem.js';
import { checkX25519PublicKey, ed25519ToX25519PublicKey, generateKeyPair, KEY_BYTES } from './keys.js';
import { checkOneTimePrekey, checkSignedPrekey } from './prekeys.js';
import {
  initialPqRatchet,
  initInitiatorRatchet,
  initResponderRatchet,
  MESSAGE_VERSION,
  ratchetDecrypt,
  ratchetEncrypt,
} from './ratchet.js';
import type {
  Content,
  Envelope,
  EnvelopeType,
  Identity,
  KemPrekey,
  OneTimePrekey,
  PrekeyBundle,
  PrekeyMessageInfo,
  Session,
  SignedPrekey,
} from './types.js';
import { bytesArg, fail, idArg, keyArg, u32Arg } from './validate.js';
import { x3dhAssociatedData, x3dhInitiator, x3dhResponder } from './x3dh.js';

/** version ‖ identity key ‖ base key ‖ signed prekey id ‖ has one-time prekey ‖ one-time prekey id. */
const PREKEY_PREFIX_BYTES = 1 + KEY_BYTES + KEY_BYTES + 4 + 1 + 4;
/** The version byte of a PQXDH prekey message: the X3DH prefix, then KEM prekey id ‖ ML-KEM ciphertext. */
export const PQ_PREKEY_VERSION = 2;
const PQ_PREKEY_PREFIX_BYTES = PREKEY_PREFIX_BYTES + 4 + KEM_CIPHERTEXT_BYTES;

function checkSession(value: unknown): Session {
  if (typeof value !== 'object' || value === null || (value as Session).version !== 1) {
    fail('session must be a Session');
  }
  return value as Session;
}

export function initiateSession(p: {
  identity: Identity;
  localUserId: string;
  localDeviceId: string;
  peerUserId: string;
  peerDeviceId: string;
  bundle: PrekeyBundle;
  /** Refuse a bundle without a KEM prekey (`post_quantum_required`): no classic session can be started. */
  requirePostQuantum?: boolean;
}): Session {
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  const identity = checkIdentity(p.identity);
  const bundle = p.bundle;
  if (typeof bundle !== 'object' || bundle === null) fail('bundle must be a PrekeyBundle (see verifyPrekeyBundle)');
  const peerIdentityKey = bytesArg(bundle.identityKey, 'bundle.identityKey', KEY_BYTES);
  const peerIdentityDhKey = ed25519ToX25519PublicKey(peerIdentityKey, 'bundle.identityKey');
  const spk = checkX25519PublicKey(bundle.signedPrekey?.publicKey, 'bundle.signedPrekey.publicKey');
  const spkId = u32Arg(bundle.signedPrekey.keyId, 'bundle.signedPrekey.keyId');
  const opk = bundle.oneTimePrekey
    ? checkX25519PublicKey(bundle.oneTimePrekey.publicKey, 'bundle.oneTimePrekey.publicKey')
    : null;
  const opkId = bundle.oneTimePrekey ? u32Arg(bundle.oneTimePrekey.keyId, 'bundle.oneTimePrekey.keyId') : null;
  const localUserId = idArg(p.localUserId, 'localUserId');
  const peerUserId = idArg(p.peerUserId, 'peerUserId');
  const kemPrekey = bundle.kemPrekey ?? null;
  if (!kemPrekey && p.requirePostQuantum === true) {
    throw new CryptoError('post_quantum_required', 'the bundle has no KEM prekey: a post-quantum session is required');
  }
  const kemKeyId = kemPrekey ? u32Arg(kemPrekey.keyId, 'bundle.kemPrekey.keyId') : null;
  const kem = kemPrekey ? kemEncapsulate(kemPrekey.publicKey) : null;

  const ephemeral = generateKeyPair();
  const sharedSecret = x3dhInitiator({
    identityDhPrivateKey: identity.dhPrivateKey,
    ephemeral,
    peerIdentityDhKey,
    peerSignedPrekey: spk,
    peerOneTimePrekey: opk,
    kemSecret: kem?.sharedSecret ?? null,
  });
  wipe(ephemeral.privateKey, kem?.sharedSecret);
  const ratchet = initInitiatorRatchet(sharedSecret, spk.slice());
  wipe(sharedSecret);
  return {
    version: 1,
    localUserId,
    localDeviceId: idArg(p.localDeviceId, 'localDeviceId'),
    peerUserId,
    peerDeviceId: idArg(p.peerDeviceId, 'peerDeviceId'),
    localIdentityKey: identity.publicKey.slice(),
    peerIdentityKey: peerIdentityKey.slice(),
    peerIdentityDhKey,
    associatedData: x3dhAssociatedData(identity.publicKey, peerIdentityKey, localUserId, peerUserId, kem !== null),
    baseKey: ephemeral.publicKey,
    ...ratchet,
    previousCounter: 0,
    skipped: new Map(),
    previousRemoteKeys: [],
    pendingPrekey: {
      signedPrekeyId: spkId,
      oneTimePrekeyId: opkId,
      ...(kem && kemKeyId !== null ? { kem: { keyId: kemKeyId, ciphertext: kem.ciphertext } } : {}),
    },
    postQuantum: kem !== null,
    ...(kem !== null ? { pqRatchet: initialPqRatchet() } : {}),
  };
}

function parsePrekeyMessage(
  payload: Uint8Array,
): PrekeyMessageInfo & { message: Uint8Array; kemCiphertext: Uint8Array | null } {
  bytesArg(payload, 'payload');
  if (payload.length < PREKEY_PREFIX_BYTES) throw new CryptoError('decrypt_failed', 'prekey message is truncated');
  const r = new Reader(payload, 'prekey message');
  const version = r.u8();
  if (version !== MESSAGE_VERSION && version !== PQ_PREKEY_VERSION) {
    throw new CryptoError('unsupported_version', `prekey message version ${version} is not supported`);
  }
  if (version === PQ_PREKEY_VERSION && payload.length < PQ_PREKEY_PREFIX_BYTES) {
    throw new CryptoError('decrypt_failed', 'prekey message is truncated');
  }
  const identityKey = r.bytes(KEY_BYTES).slice();
  const baseKey = r.bytes(KEY_BYTES).slice();
  const signedPrekeyId = r.u32();
  const hasOneTime = r.u8();
  const oneTimeId = r.u32();
  if (hasOneTime > 1 || (hasOneTime === 0 && oneTimeId !== 0)) {
    throw new CryptoError('decrypt_failed', 'prekey message has a malformed one-time prekey field');
  }
  const kemPrekeyId = version === PQ_PREKEY_VERSION ? r.u32() : null;
  const kemCiphertext = version === PQ_PREKEY_VERSION ? r.bytes(KEM_CIPHERTEXT_BYTES).slice() : null;
  return {
    identityKey,
    baseKey,
    signedPrekeyId,
    oneTimePrekeyId: hasOneTime ? oneTimeId : null,
    kemPrekeyId,
    kemCiphertext,
    message: r.rest(),
  };
}

export function readPrekeyMessage(payload: Uint8Array): PrekeyMessageInfo {
  const { identityKey, baseKey, signedPrekeyId, oneTimePrekeyId, kemPrekeyId } = parsePrekeyMessage(payload);
  return { identityKey, baseKey, signedPrekeyId, oneTimePrekeyId, kemPrekeyId };
}

export function isNewSession(existing: Session | null, env: Envelope): boolean {
  if (env?.type !== 'prekey') return false;
  if (existing === null) return true;
  return !constantTimeEqual(parsePrekeyMessage(env.payload).baseKey, checkSession(existing).baseKey);
}

export function ratchetEncryptPayload(
  session: Session,
  plaintext: Uint8Array,
  extra: Uint8Array,
): { session: Session; type: EnvelopeType; payload: Uint8Array } {
  checkSession(session);
  bytesArg(plaintext, 'plaintext');
  bytesArg(extra, 'associatedData');
  const { session: next, message } = ratchetEncrypt(session, plaintext, extra);
  const pending = session.pendingPrekey;
  if (!pending) return { session: next, type: 'message', payload: message };
  const prefix = concat(
    Uint8Array.of(pending.kem ? PQ_PREKEY_VERSION : MESSAGE_VERSION),
    session.localIdentityKey,
    session.baseKey,
    u32be(pending.signedPrekeyId),
    Uint8Array.of(pending.oneTimePrekeyId === null ? 0 : 1),
    u32be(pending.oneTimePrekeyId ?? 0),
    ...(pending.kem ? [u32be(pending.kem.keyId), pending.kem.ciphertext] : []),
  );
  return { session: next, type: 'prekey', payload: concat(prefix, message) };
}

export function ratchetDecryptPayload(
  session: Session,
  type: EnvelopeType,
  payload: Uint8Array,
  extra: Uint8Array,
): { session: Session; plaintext: Uint8Array } {
  checkSession(session);
  bytesArg(extra, 'associatedData');
  if (type === 'message') return ratchetDecrypt(session, bytesArg(payload, 'payload'), extra);
  if (type !== 'prekey') fail('type must be "prekey" or "message"');
  const info = parsePrekeyMessage(payload);
  if (!constantTimeEqual(info.identityKey, session.peerIdentityKey)) {
    throw new CryptoError('sender_mismatch', "prekey message identity key is not the session's peer identity");
  }
  if (!constantTimeEqual(info.baseKey, session.baseKey)) {
    fail('prekey message starts a different session: use acceptSession (see isNewSession)');
  }
  return ratchetDecrypt(session, info.message, extra);
}

function finishDecrypt(result: { session: Session; plaintext: Uint8Array }): { session: Session; content: Content } {
  try {
    const content = decodeContent(unpadPlaintext(result.plaintext));
    return { session: result.session, content };
  } finally {
    wipe(result.plaintext);
  }
}

export function acceptSession(p: {
  identity: Identity;
  localUserId: string;
  localDeviceId: string;
  envelope: Envelope;
  signedPrekey: SignedPrekey;
  oneTimePrekey: OneTimePrekey | null;
  expectedPeerIdentityKey: Uint8Array | string;
  /** The KEM prekey the message names (see readPrekeyMessage's kemPrekeyId); null for a classic session start. */
  kemPrekey?: KemPrekey | null;
  /** Refuse a session start without the ML-KEM part (`post_quantum_required`): set once KEM prekeys are published. */
  requirePostQuantum?: boolean;
}): { session: Session; content: Content } {
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  const identity = checkIdentity(p.identity);
  const env = p.envelope;
  if (env?.type !== 'prekey') fail('envelope must be a "prekey" envelope');
  const info = parsePrekeyMessage(env.payload);
  if (info.kemCiphertext === null && p.requirePostQuantum === true) {
    throw new CryptoError('post_quantum_required', 'the session start has no ML-KEM part: refused as a downgrade');
  }
  let kemPrekey: KemPrekey | null = null;
  if (info.kemPrekeyId !== null) {
    if (p.kemPrekey === null || p.kemPrekey === undefined) {
      throw new CryptoError('unknown_prekey', `KEM prekey ${info.kemPrekeyId} is not available`);
    }
    kemPrekey = checkKemPrekey(p.kemPrekey, 'kemPrekey');
    if (kemPrekey.keyId !== info.kemPrekeyId) {
      throw new CryptoError('unknown_prekey', `message uses KEM prekey ${info.kemPrekeyId}, not ${kemPrekey.keyId}`);
    }
  } else if (p.kemPrekey) {
    fail('kemPrekey must be null: the message names no KEM prekey');
  }
  const expected = keyArg(p.expectedPeerIdentityKey, 'expectedPeerIdentityKey', KEY_BYTES);
  if (!constantTimeEqual(info.identityKey, expected)) {
    throw new CryptoError('sender_mismatch', 'prekey message identity key differs from the expected peer identity');
  }
  const spk = checkSignedPrekey(p.signedPrekey, 'signedPrekey');
  if (spk.keyId !== info.signedPrekeyId) {
    throw new CryptoError('unknown_prekey', `message uses signed prekey ${info.signedPrekeyId}, not ${spk.keyId}`);
  }
  let opk: OneTimePrekey | null = null;
  if (info.oneTimePrekeyId !== null) {
    if (p.oneTimePrekey === null || p.oneTimePrekey === undefined) {
      throw new CryptoError('unknown_prekey', `one-time prekey ${info.oneTimePrekeyId} is not available`);
    }
    opk = checkOneTimePrekey(p.oneTimePrekey, 'oneTimePrekey');
    if (opk.keyId !== info.oneTimePrekeyId) {
      throw new CryptoError('unknown_prekey', `message uses one-time prekey ${info.oneTimePrekeyId}, not ${opk.keyId}`);
    }
  } else if (p.oneTimePrekey) {
    fail('oneTimePrekey must be null: the message names no one-time prekey');
  }
  const peerUserId = idArg(env.senderUserId, 'envelope.senderUserId');
  const localUserId = idArg(p.localUserId, 'localUserId');
  const peerIdentityDhKey = ed25519ToX25519PublicKey(info.identityKey, 'prekey message identity key');
  const baseKey = checkX25519PublicKey(info.baseKey, 'prekey message base key');
  const kemSecret = kemPrekey && info.kemCiphertext ? kemDecapsulate(info.kemCiphertext, kemPrekey.secretKey) : null;
  const sharedSecret = x3dhResponder({
    identityDhPrivateKey: identity.dhPrivateKey,
    signedPrekey: spk.keyPair,
    oneTimePrekey: opk ? opk.keyPair : null,
    peerIdentityDhKey,
    peerBaseKey: baseKey,
    kemSecret,
  });
  wipe(kemSecret);
  const postQuantum = kemSecret !== null;
  const initial: Session = {
    version: 1,
    localUserId,
    localDeviceId: idArg(p.localDeviceId, 'localDeviceId'),
    peerUserId,
    peerDeviceId: idArg(env.senderDeviceId, 'envelope.senderDeviceId'),
    localIdentityKey: identity.publicKey.slice(),
    peerIdentityKey: info.identityKey,
    peerIdentityDhKey,
    associatedData: x3dhAssociatedData(info.identityKey, identity.publicKey, peerUserId, localUserId, postQuantum),
    baseKey,
    ...initResponderRatchet(sharedSecret, spk.keyPair),
    previousCounter: 0,
    skipped: new Map(),
    previousRemoteKeys: [],
    pendingPrekey: null,
    postQuantum,
    ...(postQuantum ? { pqRatchet: initialPqRatchet() } : {}),
  };
  const extra = envelopeBinding(env.senderUserId, env.senderDeviceId, env.messageId);
  return finishDecrypt(ratchetDecrypt(initial, info.message, extra));
}

export async function encryptToDevice(
  session: Session,
  p: { messageId: string; content: Content },
): Promise<{ session: Session; body: Uint8Array }> {
  checkSession(session);
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  const extra = envelopeBinding(session.localUserId, session.localDeviceId, p.messageId);
  const padded = padPlaintext(encodeContent(p.content));
  try {
    const { session: next, type, payload } = ratchetEncryptPayload(session, padded, extra);
    const body = await sealEnvelopeTo(session.peerIdentityDhKey, {
      senderUserId: session.localUserId,
      senderDeviceId: session.localDeviceId,
      messageId: p.messageId,
      type,
      payload,
    });
    return { session: next, body };
  } finally {
    wipe(padded);
  }
}

export function decryptFromDevice(session: Session, env: Envelope): { session: Session; content: Content } {
  checkSession(session);
  if (typeof env !== 'object' || env === null) fail('envelope must be an Envelope (see openEnvelope)');
  if (env.senderUserId !== session.peerUserId || env.senderDeviceId !== session.peerDeviceId) {
    throw new CryptoError('sender_mismatch', "envelope's claimed sender is not this session's peer");
  }
  const extra = envelopeBinding(env.senderUserId, env.senderDeviceId, env.messageId);
  return finishDecrypt(ratchetDecryptPayload(session, env.type, env.payload, extra));
}
