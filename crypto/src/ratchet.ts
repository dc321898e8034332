// The Double Ratchet: (session, input) → {session, output}. The input session is never mutated, so a failed
// decrypt leaves the caller's state exactly as it was and a successful one is committed by storing the result.

import { concat, constantTimeEqual, Reader, toBase64Url, u32be, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { kdfChain, kdfRoot } from './kdf.js';
import { checkX25519PublicKey, dh, generateKeyPair, KEY_BYTES } from './keys.js';
import { randomBytes } from './random.js';
import { sodium } from './sodium.js';
import type { ChainState, KeyPair, Session } from './types.js';

export const MAX_SKIP_PER_STEP = 1000;
export const MAX_SKIPPED_KEYS = 2000;
/** How many earlier remote ratchet keys a session remembers to classify replays. */
export const MAX_PREVIOUS_REMOTE_KEYS = 8;

export const MESSAGE_VERSION = 1;
export const HEADER_BYTES = 1 + KEY_BYTES + 4 + 4;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
const MAX_COUNTER = 0xffffffff;

interface Header {
  readonly bytes: Uint8Array;
  readonly ratchetKey: Uint8Array;
  readonly previousCounter: number;
  readonly counter: number;
}

function skippedKey(ratchetKey: Uint8Array, counter: number): string {
  return `${toBase64Url(ratchetKey)}:${counter}`;
}

/** Parses `version ‖ ratchet key ‖ PN ‖ N ‖ nonce ‖ ciphertext`; a malformed message is `decrypt_failed`. */
function parseMessage(message: Uint8Array): { header: Header; nonce: Uint8Array; ciphertext: Uint8Array } {
  if (!(message instanceof Uint8Array)) throw new CryptoError('bad_input', 'message must be a Uint8Array');
  if (message.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES) {
    throw new CryptoError('decrypt_failed', 'ratchet message is truncated');
  }
  const r = new Reader(message, 'ratchet message');
  const version = r.u8();
  if (version !== MESSAGE_VERSION) {
    throw new CryptoError('unsupported_version', `ratchet message version ${version} is not supported`);
  }
  const ratchetKey = r.bytes(KEY_BYTES);
  const previousCounter = r.u32();
  const counter = r.u32();
  const nonce = r.bytes(NONCE_BYTES);
  return {
    header: { bytes: message.subarray(0, HEADER_BYTES), ratchetKey, previousCounter, counter },
    nonce,
    ciphertext: r.rest(),
  };
}

function aeadAd(session: Session, extra: Uint8Array, header: Uint8Array): Uint8Array {
  return concat(session.associatedData, u32be(extra.length), extra, header);
}

/** Creates the initiator's ratchet: a fresh ratchet key against the responder's signed prekey. */
export function initInitiatorRatchet(sharedSecret: Uint8Array, peerRatchetKey: Uint8Array) {
  const dhSelf = generateKeyPair();
  const out = dh(dhSelf.privateKey, peerRatchetKey, 'signed prekey');
  const { rootKey, chainKey } = kdfRoot(sharedSecret, out);
  wipe(out);
  return {
    rootKey,
    dhSelf,
    dhRemote: peerRatchetKey,
    sendChain: { key: chainKey, counter: 0 } as ChainState,
    recvChain: null,
  };
}

/** Creates the responder's ratchet: the signed prekey is the first ratchet key; nothing to send until a message. */
export function initResponderRatchet(sharedSecret: Uint8Array, signedPrekey: KeyPair) {
  return {
    rootKey: sharedSecret,
    dhSelf: { publicKey: signedPrekey.publicKey.slice(), privateKey: signedPrekey.privateKey.slice() },
    dhRemote: null,
    sendChain: null,
    recvChain: null,
  };
}

/** Encrypts one message on the sending chain. `extra` is caller-bound associated data. */
export function ratchetEncrypt(
  session: Session,
  plaintext: Uint8Array,
  extra: Uint8Array,
): { session: Session; message: Uint8Array } {
  const chain = session.sendChain;
  if (!chain) throw new CryptoError('bad_input', 'session cannot send before it has received a message');
  if (chain.counter >= MAX_COUNTER) throw new CryptoError('bad_input', 'sending chain is exhausted');
  const { messageKey, nextChainKey } = kdfChain(chain.key, false);
  const header = concat(
    Uint8Array.of(MESSAGE_VERSION),
    session.dhSelf.publicKey,
    u32be(session.previousCounter),
    u32be(chain.counter),
  );
  const nonce = randomBytes(NONCE_BYTES);
  const ciphertext = sodium().crypto_aead_xchacha20poly1305_ietf_encrypt(
    plaintext,
    aeadAd(session, extra, header),
    null,
    nonce,
    messageKey,
  );
  wipe(messageKey);
  return {
    session: { ...session, sendChain: { key: nextChainKey, counter: chain.counter + 1 } },
    message: concat(header, nonce, ciphertext),
  };
}

function open(messageKey: Uint8Array, session: Session, extra: Uint8Array, parsed: ReturnType<typeof parseMessage>) {
  try {
    return sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      parsed.ciphertext,
      aeadAd(session, extra, parsed.header.bytes),
      parsed.nonce,
      messageKey,
    );
  } catch {
    throw new CryptoError('decrypt_failed', 'ratchet message failed authentication');
  } finally {
    wipe(messageKey);
  }
}

/**
 * Advances `chain` to `until`, storing each skipped message key in `skipped` (mutated: it is a fresh copy).
 * Intermediate chain keys that belong to no state are wiped.
 */
function skipTo(
  chain: ChainState,
  until: number,
  ratchetKey: Uint8Array,
  skipped: Map<string, Uint8Array>,
): ChainState {
  let key = chain.key;
  let counter = chain.counter;
  while (counter < until) {
    const { messageKey, nextChainKey } = kdfChain(key, false);
    skipped.set(skippedKey(ratchetKey, counter), messageKey);
    if (key !== chain.key) wipe(key);
    key = nextChainKey;
    counter++;
  }
  return { key, counter };
}

function evictOldest(skipped: Map<string, Uint8Array>): void {
  for (const k of skipped.keys()) {
    if (skipped.size <= MAX_SKIPPED_KEYS) break;
    skipped.delete(k);
  }
}

/**
 * Decrypts one ratchet message. Returns a new session; `session` is untouched whether this succeeds or throws.
 * Codes: `decrypt_failed` (tampered, truncated, wrong key), `duplicate_message` (counter already used),
 * `too_many_skipped` (more than 1000 skipped keys in one step), `invalid_key`, `unsupported_version`.
 */
export function ratchetDecrypt(
  session: Session,
  message: Uint8Array,
  extra: Uint8Array,
): { session: Session; plaintext: Uint8Array } {
  const parsed = parseMessage(message);
  const { ratchetKey, counter, previousCounter } = parsed.header;
  checkX25519PublicKey(ratchetKey, 'ratchet message key');

  const stored = session.skipped.get(skippedKey(ratchetKey, counter));
  if (stored) {
    const plaintext = open(stored.slice(), session, extra, parsed);
    const skipped = new Map(session.skipped);
    skipped.delete(skippedKey(ratchetKey, counter));
    return { session: { ...session, skipped, pendingPrekey: null }, plaintext };
  }

  const sameChain = session.dhRemote !== null && constantTimeEqual(ratchetKey, session.dhRemote);
  const skipped = new Map(session.skipped);
  let next: Session = session;

  if (!sameChain) {
    if (session.previousRemoteKeys.includes(toBase64Url(ratchetKey))) {
      throw new CryptoError('duplicate_message', 'message belongs to a finished chain and its key is gone');
    }
    const recv = session.recvChain;
    if (recv && previousCounter > recv.counter && previousCounter - recv.counter > MAX_SKIP_PER_STEP) {
      throw new CryptoError('too_many_skipped', `message skips more than ${MAX_SKIP_PER_STEP} messages`);
    }
    if (counter > MAX_SKIP_PER_STEP) {
      throw new CryptoError('too_many_skipped', `message skips more than ${MAX_SKIP_PER_STEP} messages`);
    }
    if (recv && session.dhRemote) skipTo(recv, previousCounter, session.dhRemote, skipped);
    // DH ratchet step: new receiving chain from their key, then a fresh key pair and a new sending chain.
    const dhRecv = dh(session.dhSelf.privateKey, ratchetKey, 'ratchet message key');
    const step1 = kdfRoot(session.rootKey, dhRecv);
    wipe(dhRecv);
    const dhSelf = generateKeyPair();
    const dhSend = dh(dhSelf.privateKey, ratchetKey, 'ratchet message key');
    const step2 = kdfRoot(step1.rootKey, dhSend);
    wipe(dhSend, step1.rootKey);
    const previousRemoteKeys = session.dhRemote
      ? [toBase64Url(session.dhRemote), ...session.previousRemoteKeys].slice(0, MAX_PREVIOUS_REMOTE_KEYS)
      : session.previousRemoteKeys;
    next = {
      ...session,
      rootKey: step2.rootKey,
      dhSelf,
      dhRemote: ratchetKey.slice(),
      recvChain: { key: step1.chainKey, counter: 0 },
      sendChain: { key: step2.chainKey, counter: 0 },
      previousCounter: session.sendChain?.counter ?? 0,
      previousRemoteKeys,
    };
  }

  const recv = next.recvChain;
  if (!recv) throw new CryptoError('decrypt_failed', 'session has no receiving chain');
  if (counter < recv.counter) throw new CryptoError('duplicate_message', 'message key was already used');
  if (counter - recv.counter > MAX_SKIP_PER_STEP) {
    throw new CryptoError('too_many_skipped', `message skips more than ${MAX_SKIP_PER_STEP} messages`);
  }
  const advanced = skipTo(recv, counter, ratchetKey, skipped);
  const { messageKey, nextChainKey } = kdfChain(advanced.key, false);
  if (advanced.key !== recv.key) wipe(advanced.key);
  const plaintext = open(messageKey, next, extra, parsed);
  evictOldest(skipped);
  return {
    session: {
      ...next,
      recvChain: { key: nextChainKey, counter: counter + 1 },
      skipped,
      pendingPrekey: null,
    },
    plaintext,
  };
}
