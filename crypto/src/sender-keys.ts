// Group sender keys: one chain + Ed25519 signing key per member device and group; each message encrypted once.

import { concat, constantTimeEqual, lp8, Reader, toBase64Url, u32be, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  decodeContent,
  encodeContent,
  messageIdBytes,
  MESSAGE_ID_BYTES,
  padPlaintext,
  unpadPlaintext,
} from './envelope.js';
import { kdfChain, labelPrefix, LABELS } from './kdf.js';
import { generateSigningKeyPair, KEY_BYTES, SIGNATURE_BYTES, verifySignature } from './keys.js';
import { MAX_SKIP_PER_STEP, MAX_SKIPPED_KEYS, NONCE_BYTES, TAG_BYTES } from './ratchet.js';
import { randomBytes } from './random.js';
import { sodium } from './sodium.js';
import type { Content, GroupMessage, GroupMessageHeader, OwnSenderKey, SenderKeyRecord } from './types.js';
import { bytesArg, fail, idArg } from './validate.js';

/**
 * Version 2 of the sender-key formats (distribution and group body). Version 1 named neither the sender user nor
 * the sender device, so a member could pass another member's key off as his own; it is no longer accepted.
 */
export const SENDER_KEY_VERSION = 2;
/** The second byte of a group body: tells it apart from future body kinds. */
export const GROUP_MESSAGE_TYPE = 3;
export const DISTRIBUTION_ID_BYTES = 16;
/** version, type, the two shortest ids (1 length byte + 1 byte each), distribution id, iteration, message id. */
const MIN_GROUP_HEADER_BYTES = 2 + 2 + 2 + DISTRIBUTION_ID_BYTES + 4 + MESSAGE_ID_BYTES;
const MAX_ITERATION = 0xffffffff;

function checkOwn(key: unknown): OwnSenderKey {
  if (typeof key !== 'object' || key === null || (key as OwnSenderKey).version !== SENDER_KEY_VERSION) {
    fail('senderKey must be an OwnSenderKey');
  }
  return key as OwnSenderKey;
}

function checkRecord(record: unknown): SenderKeyRecord {
  if (typeof record !== 'object' || record === null || (record as SenderKeyRecord).version !== SENDER_KEY_VERSION) {
    fail('record must be a SenderKeyRecord');
  }
  return record as SenderKeyRecord;
}

/** A sender key of device `senderDeviceId` of user `senderUserId`: both are named in everything it produces. */
export function createSenderKey(p: { groupId: string; senderUserId: string; senderDeviceId: string }): OwnSenderKey {
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  const groupId = idArg(p.groupId, 'groupId');
  const senderUserId = idArg(p.senderUserId, 'senderUserId');
  const senderDeviceId = idArg(p.senderDeviceId, 'senderDeviceId');
  const signing = generateSigningKeyPair();
  return {
    version: SENDER_KEY_VERSION,
    groupId,
    senderUserId,
    senderDeviceId,
    distributionId: randomBytes(DISTRIBUTION_ID_BYTES),
    chainKey: randomBytes(KEY_BYTES),
    iteration: 0,
    signingPublicKey: signing.publicKey,
    signingKey: signing.privateKey,
  };
}

/**
 * version(2) ‖ len‖groupId ‖ len‖senderUserId ‖ len‖senderDeviceId ‖ distribution id ‖ iteration ‖ chain key ‖
 * signing public key.
 */
export function senderKeyDistribution(key: OwnSenderKey): Uint8Array {
  checkOwn(key);
  return concat(
    Uint8Array.of(SENDER_KEY_VERSION),
    lp8(key.groupId, 'groupId'),
    lp8(key.senderUserId, 'senderUserId'),
    lp8(key.senderDeviceId, 'senderDeviceId'),
    key.distributionId,
    u32be(key.iteration),
    key.chainKey,
    key.signingPublicKey,
  );
}

/**
 * Parses a distribution that arrived from device `senderDeviceId` of `senderUserId` (the authenticated peer of the
 * pairwise session it came on). A distribution naming any other sender is refused with `sender_mismatch`: a member
 * who forwards someone else's distribution cannot make that sender's messages appear as his.
 */
export function acceptSenderKeyDistribution(
  senderUserId: string,
  senderDeviceId: string,
  distribution: Uint8Array,
): SenderKeyRecord {
  idArg(senderUserId, 'senderUserId');
  idArg(senderDeviceId, 'senderDeviceId');
  const r = new Reader(bytesArg(distribution, 'distribution'), 'sender key distribution');
  const version = r.u8();
  if (version !== SENDER_KEY_VERSION) {
    throw new CryptoError('unsupported_version', `sender key distribution version ${version} is not supported`);
  }
  const groupId = r.lp8String('groupId');
  const namedUserId = r.lp8String('senderUserId');
  const namedDeviceId = r.lp8String('senderDeviceId');
  const distributionId = r.bytes(DISTRIBUTION_ID_BYTES).slice();
  const iteration = r.u32();
  const chainKey = r.bytes(KEY_BYTES).slice();
  const signingPublicKey = r.bytes(KEY_BYTES).slice();
  if (r.remaining() !== 0) fail('sender key distribution has trailing bytes');
  if (namedUserId !== senderUserId || namedDeviceId !== senderDeviceId) {
    wipe(chainKey);
    throw new CryptoError(
      'sender_mismatch',
      'sender key distribution names a different sender than the one it came from',
    );
  }
  if (!sodium().crypto_core_ed25519_is_valid_point(signingPublicKey)) {
    wipe(chainKey);
    throw new CryptoError('invalid_key', 'sender key signing key is not a valid Ed25519 public key');
  }
  return {
    version: SENDER_KEY_VERSION,
    groupId,
    senderUserId,
    senderDeviceId,
    distributionId,
    chainKey,
    iteration,
    signingPublicKey,
    skipped: new Map(),
  };
}

function groupAd(groupId: string, header: Uint8Array): Uint8Array {
  return concat(labelPrefix(LABELS.groupAd), lp8(groupId, 'groupId'), header);
}

function signedPart(groupId: string, bodyWithoutSignature: Uint8Array): Uint8Array {
  return concat(labelPrefix(LABELS.groupSignature), lp8(groupId, 'groupId'), bodyWithoutSignature);
}

/**
 * Body: header ‖ nonce ‖ XChaCha20-Poly1305(pad(kind ‖ body)) ‖ Ed25519 signature, where header is
 * version(2) ‖ type(3) ‖ len‖senderUserId ‖ len‖senderDeviceId ‖ distribution id ‖ iteration ‖ message id.
 * The AD is label ‖ len‖groupId ‖ header; the signature covers label ‖ len‖groupId ‖ everything before it. The group
 * id is not carried: the receiver supplies the one the relay delivered the body for.
 */
export function encryptGroupMessage(
  key: OwnSenderKey,
  p: { messageId: string; content: Content },
): { senderKey: OwnSenderKey; body: Uint8Array } {
  checkOwn(key);
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  if (key.iteration >= MAX_ITERATION) fail('sender key is exhausted: rotate it');
  const messageId = messageIdBytes(p.messageId);
  const framed = encodeContent(p.content, ['chat', 'control']);
  const padded = padPlaintext(framed);
  wipe(framed);
  const { messageKey, nextChainKey } = kdfChain(key.chainKey, true);
  const header = concat(
    Uint8Array.of(SENDER_KEY_VERSION, GROUP_MESSAGE_TYPE),
    lp8(key.senderUserId, 'senderUserId'),
    lp8(key.senderDeviceId, 'senderDeviceId'),
    key.distributionId,
    u32be(key.iteration),
    messageId,
  );
  const nonce = randomBytes(NONCE_BYTES);
  const lib = sodium();
  const ciphertext = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
    padded,
    groupAd(key.groupId, header),
    null,
    nonce,
    messageKey,
  );
  wipe(messageKey, padded);
  const unsigned = concat(header, nonce, ciphertext);
  const signature = lib.crypto_sign_detached(signedPart(key.groupId, unsigned), key.signingKey);
  return {
    senderKey: { ...key, chainKey: nextChainKey, iteration: key.iteration + 1 },
    body: concat(unsigned, signature),
  };
}

function parseGroupMessage(body: Uint8Array) {
  bytesArg(body, 'body');
  if (body.length < MIN_GROUP_HEADER_BYTES + NONCE_BYTES + TAG_BYTES + SIGNATURE_BYTES) {
    throw new CryptoError('decrypt_failed', 'group message is truncated');
  }
  const r = new Reader(body, 'group message');
  const version = r.u8();
  if (version !== SENDER_KEY_VERSION) {
    throw new CryptoError('unsupported_version', `group message version ${version} is not supported`);
  }
  if (r.u8() !== GROUP_MESSAGE_TYPE) throw new CryptoError('decrypt_failed', 'body is not a group message');
  try {
    const senderUserId = r.lp8String('senderUserId');
    const senderDeviceId = r.lp8String('senderDeviceId');
    const distributionId = r.bytes(DISTRIBUTION_ID_BYTES);
    const iteration = r.u32();
    const messageId = r.bytes(MESSAGE_ID_BYTES);
    const headerBytes = body.length - r.remaining();
    const nonce = r.bytes(NONCE_BYTES);
    if (r.remaining() < TAG_BYTES + SIGNATURE_BYTES) throw new CryptoError('bad_input', 'group message is truncated');
    const ciphertext = r.bytes(r.remaining() - SIGNATURE_BYTES);
    const signature = r.rest();
    return {
      header: body.subarray(0, headerBytes),
      unsigned: body.subarray(0, body.length - SIGNATURE_BYTES),
      senderUserId,
      senderDeviceId,
      distributionId,
      iteration,
      messageId,
      nonce,
      ciphertext,
      signature,
    };
  } catch (e) {
    // Whatever the network sends that does not parse is an undecryptable message, not a caller's mistake.
    if (e instanceof CryptoError && e.code === 'bad_input') throw new CryptoError('decrypt_failed', e.message);
    throw e;
  }
}

/**
 * Who a group message says it is from (signed, checked again by {@link decryptGroupMessage}) and its message id:
 * the receiver finds the record by (sender user, sender device, distribution id), never by distribution id alone.
 */
export function readGroupMessageHeader(body: Uint8Array): GroupMessageHeader {
  const m = parseGroupMessage(body);
  return {
    senderUserId: m.senderUserId,
    senderDeviceId: m.senderDeviceId,
    distributionId: toBase64Url(m.distributionId),
    iteration: m.iteration,
    messageId: toBase64Url(m.messageId),
  };
}

export function decryptGroupMessage(
  record: SenderKeyRecord,
  p: { groupId: string; messageId: string; body: Uint8Array },
): { record: SenderKeyRecord; message: GroupMessage } {
  checkRecord(record);
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  const groupId = idArg(p.groupId, 'groupId');
  const expectedMessageId = messageIdBytes(p.messageId);
  const m = parseGroupMessage(p.body);
  if (record.groupId !== groupId) {
    throw new CryptoError('sender_mismatch', 'sender key belongs to a different group');
  }
  if (m.senderUserId !== record.senderUserId || m.senderDeviceId !== record.senderDeviceId) {
    throw new CryptoError('sender_mismatch', 'group message names a different sender than the sender key');
  }
  if (!constantTimeEqual(m.distributionId, record.distributionId)) {
    throw new CryptoError('unknown_sender_key', 'group message is for a different sender key');
  }
  if (!constantTimeEqual(m.messageId, expectedMessageId)) {
    throw new CryptoError(
      'message_id_mismatch',
      'group message carries a different message id than it was delivered under',
    );
  }
  verifySignature(m.signature, signedPart(groupId, m.unsigned), record.signingPublicKey, 'group message');

  const skipped = new Map(record.skipped);
  let messageKey: Uint8Array;
  let chainKey = record.chainKey;
  let iteration = record.iteration;
  const stored = skipped.get(m.iteration);
  if (stored) {
    messageKey = stored.slice();
    skipped.delete(m.iteration);
  } else {
    if (m.iteration < record.iteration) throw new CryptoError('duplicate_message', 'message key was already used');
    if (m.iteration - record.iteration > MAX_SKIP_PER_STEP) {
      throw new CryptoError('too_many_skipped', `message skips more than ${MAX_SKIP_PER_STEP} messages`);
    }
    while (iteration < m.iteration) {
      const step = kdfChain(chainKey, true);
      skipped.set(iteration, step.messageKey);
      if (chainKey !== record.chainKey) wipe(chainKey);
      chainKey = step.nextChainKey;
      iteration++;
    }
    const step = kdfChain(chainKey, true);
    if (chainKey !== record.chainKey) wipe(chainKey);
    messageKey = step.messageKey;
    chainKey = step.nextChainKey;
    iteration++;
  }

  let padded: Uint8Array;
  try {
    padded = sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      m.ciphertext,
      groupAd(groupId, m.header),
      m.nonce,
      messageKey,
    );
  } catch {
    throw new CryptoError('decrypt_failed', 'group message failed authentication');
  } finally {
    wipe(messageKey);
  }
  const framed = unpadPlaintext(padded);
  wipe(padded);
  const content = decodeContent(framed, ['chat', 'control']);
  wipe(framed);
  for (const k of skipped.keys()) {
    if (skipped.size <= MAX_SKIPPED_KEYS) break;
    skipped.delete(k);
  }
  return {
    record: { ...record, chainKey, iteration, skipped },
    message: {
      senderUserId: record.senderUserId,
      senderDeviceId: record.senderDeviceId,
      messageId: toBase64Url(m.messageId),
      content,
    },
  };
}
