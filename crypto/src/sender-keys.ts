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
import type { Content, GroupMessage, OwnSenderKey, SenderKeyRecord } from './types.js';
import { bytesArg, fail, idArg } from './validate.js';

export const SENDER_KEY_VERSION = 1;
/** The second byte of a group body: tells it apart from future body kinds. */
export const GROUP_MESSAGE_TYPE = 3;
export const DISTRIBUTION_ID_BYTES = 16;
const GROUP_HEADER_BYTES = 2 + DISTRIBUTION_ID_BYTES + 4;
const MAX_ITERATION = 0xffffffff;

function checkOwn(key: unknown): OwnSenderKey {
  if (typeof key !== 'object' || key === null || (key as OwnSenderKey).version !== 1) {
    fail('senderKey must be an OwnSenderKey');
  }
  return key as OwnSenderKey;
}

function checkRecord(record: unknown): SenderKeyRecord {
  if (typeof record !== 'object' || record === null || (record as SenderKeyRecord).version !== 1) {
    fail('record must be a SenderKeyRecord');
  }
  return record as SenderKeyRecord;
}

export function createSenderKey(groupId: string): OwnSenderKey {
  idArg(groupId, 'groupId');
  const signing = generateSigningKeyPair();
  return {
    version: 1,
    groupId,
    distributionId: randomBytes(DISTRIBUTION_ID_BYTES),
    chainKey: randomBytes(KEY_BYTES),
    iteration: 0,
    signingPublicKey: signing.publicKey,
    signingKey: signing.privateKey,
  };
}

/** version ‖ len‖groupId ‖ distribution id ‖ iteration ‖ chain key ‖ signing public key. */
export function senderKeyDistribution(key: OwnSenderKey): Uint8Array {
  checkOwn(key);
  return concat(
    Uint8Array.of(SENDER_KEY_VERSION),
    lp8(key.groupId, 'groupId'),
    key.distributionId,
    u32be(key.iteration),
    key.chainKey,
    key.signingPublicKey,
  );
}

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
  const distributionId = r.bytes(DISTRIBUTION_ID_BYTES).slice();
  const iteration = r.u32();
  const chainKey = r.bytes(KEY_BYTES).slice();
  const signingPublicKey = r.bytes(KEY_BYTES).slice();
  if (r.remaining() !== 0) fail('sender key distribution has trailing bytes');
  if (!sodium().crypto_core_ed25519_is_valid_point(signingPublicKey)) {
    throw new CryptoError('invalid_key', 'sender key signing key is not a valid Ed25519 public key');
  }
  return {
    version: 1,
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
 * Body: version ‖ type(3) ‖ distribution id ‖ iteration ‖ nonce ‖ XChaCha20-Poly1305(pad(kind ‖ message id ‖ body))
 * ‖ Ed25519 signature over label ‖ group id ‖ everything before it.
 */
export function encryptGroupMessage(
  key: OwnSenderKey,
  p: { messageId: string; content: Content },
): { senderKey: OwnSenderKey; body: Uint8Array } {
  checkOwn(key);
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  if (key.iteration >= MAX_ITERATION) fail('sender key is exhausted: rotate it');
  const framed = encodeContent(p.content, ['chat', 'control']);
  const inner = concat(framed.subarray(0, 1), messageIdBytes(p.messageId), framed.subarray(1));
  const padded = padPlaintext(inner);
  wipe(framed, inner);
  const { messageKey, nextChainKey } = kdfChain(key.chainKey, true);
  const header = concat(
    Uint8Array.of(SENDER_KEY_VERSION, GROUP_MESSAGE_TYPE),
    key.distributionId,
    u32be(key.iteration),
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
  if (body.length < GROUP_HEADER_BYTES + NONCE_BYTES + TAG_BYTES + SIGNATURE_BYTES) {
    throw new CryptoError('decrypt_failed', 'group message is truncated');
  }
  const r = new Reader(body, 'group message');
  const version = r.u8();
  if (version !== SENDER_KEY_VERSION) {
    throw new CryptoError('unsupported_version', `group message version ${version} is not supported`);
  }
  if (r.u8() !== GROUP_MESSAGE_TYPE) throw new CryptoError('decrypt_failed', 'body is not a group message');
  const distributionId = r.bytes(DISTRIBUTION_ID_BYTES);
  const iteration = r.u32();
  const nonce = r.bytes(NONCE_BYTES);
  const ciphertext = r.bytes(r.remaining() - SIGNATURE_BYTES);
  const signature = r.rest();
  return {
    header: body.subarray(0, GROUP_HEADER_BYTES),
    unsigned: body.subarray(0, body.length - SIGNATURE_BYTES),
    distributionId,
    iteration,
    nonce,
    ciphertext,
    signature,
  };
}

export function readGroupMessageDistributionId(body: Uint8Array): string {
  return toBase64Url(parseGroupMessage(body).distributionId);
}

export function decryptGroupMessage(
  record: SenderKeyRecord,
  p: { groupId: string; body: Uint8Array },
): { record: SenderKeyRecord; message: GroupMessage } {
  checkRecord(record);
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  const groupId = idArg(p.groupId, 'groupId');
  const m = parseGroupMessage(p.body);
  if (!constantTimeEqual(m.distributionId, record.distributionId)) {
    throw new CryptoError('unknown_sender_key', 'group message is for a different sender key');
  }
  if (record.groupId !== groupId) {
    throw new CryptoError('sender_mismatch', 'sender key belongs to a different group');
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
  const inner = unpadPlaintext(padded);
  wipe(padded);
  if (inner.length < 1 + MESSAGE_ID_BYTES)
    throw new CryptoError('decrypt_failed', 'group message content is truncated');
  const framed = concat(inner.subarray(0, 1), inner.subarray(1 + MESSAGE_ID_BYTES));
  const content = decodeContent(framed, ['chat', 'control']);
  const messageId = toBase64Url(inner.subarray(1, 1 + MESSAGE_ID_BYTES));
  wipe(inner, framed);
  for (const k of skipped.keys()) {
    if (skipped.size <= MAX_SKIPPED_KEYS) break;
    skipped.delete(k);
  }
  return {
    record: { ...record, chainKey, iteration, skipped },
    message: { senderUserId: record.senderUserId, senderDeviceId: record.senderDeviceId, messageId, content },
  };
}
