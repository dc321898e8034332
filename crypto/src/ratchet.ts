// The Double Ratchet: (session, input) → {session, output}. The input session is never mutated, so a failed
// decrypt leaves the caller's state exactly as it was and a successful one is committed by storing the result.

import { concat, constantTimeEqual, Reader, toBase64Url, u32be, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { kdfChain, kdfRoot, kdfRootPq } from './kdf.js';
import { KEM_CIPHERTEXT_BYTES, KEM_PUBLIC_KEY_BYTES, kemDecapsulate, kemEncapsulate } from './kem.js';
import { checkX25519PublicKey, dh, generateKeyPair, KEY_BYTES } from './keys.js';
import { assertTestHooksEnabled, randomBytes } from './random.js';
import { sodium } from './sodium.js';
import type { ChainState, KeyPair, PqRatchetState, Session } from './types.js';

export const MAX_SKIP_PER_STEP = 1000;
export const MAX_SKIPPED_KEYS = 2000;
/** How many earlier remote ratchet keys a session remembers to classify replays. */
export const MAX_PREVIOUS_REMOTE_KEYS = 8;

export const MESSAGE_VERSION = 1;
export const HEADER_BYTES = 1 + KEY_BYTES + 4 + 4;
/**
 * Ratchet messages of post-quantum sessions: the version-1 header, a flags byte, then an ML-KEM offer
 * (u32 id ‖ public key) and/or an answer (u32 id ‖ ciphertext) as the flags say.
 */
export const PQ_MESSAGE_VERSION = 2;
/** A new ML-KEM offer once this many DH ratchet steps passed since a KEM secret last entered the root key. */
export const KEM_REKEY_STEPS = 20;
let rekeySteps = KEM_REKEY_STEPS;

/** Tests only: rekey after `steps` DH ratchet steps (property tests use 1 to exercise every interleaving). */
export function dangerousTestOnlySetKemRekeySteps(steps: number | null): void {
  assertTestHooksEnabled('dangerousTestOnlySetKemRekeySteps');
  rekeySteps = steps ?? KEM_REKEY_STEPS;
}
const FLAG_OFFER = 1;
const FLAG_REPLY = 2;
const OFFER_BYTES = 4 + KEM_PUBLIC_KEY_BYTES;
const REPLY_BYTES = 4 + KEM_CIPHERTEXT_BYTES;

/** The rekeying state a PQXDH session starts with: the PQXDH secret counts as the latest KEM secret. */
export function initialPqRatchet(): PqRatchetState {
  return { steps: 0, offer: null, nextOfferId: 1, reply: null, answered: 0, epochs: 0 };
}
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
const MAX_COUNTER = 0xffffffff;

interface Header {
  readonly bytes: Uint8Array;
  readonly ratchetKey: Uint8Array;
  readonly previousCounter: number;
  readonly counter: number;
  /** Version 2 only. */
  readonly offer: { readonly id: number; readonly publicKey: Uint8Array } | null;
  readonly reply: { readonly id: number; readonly ciphertext: Uint8Array } | null;
  readonly version: number;
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
  if (version !== MESSAGE_VERSION && version !== PQ_MESSAGE_VERSION) {
    throw new CryptoError('unsupported_version', `ratchet message version ${version} is not supported`);
  }
  const ratchetKey = r.bytes(KEY_BYTES);
  const previousCounter = r.u32();
  const counter = r.u32();
  let offer: Header['offer'] = null;
  let reply: Header['reply'] = null;
  let headerBytes = HEADER_BYTES;
  if (version === PQ_MESSAGE_VERSION) {
    const flags = r.u8();
    if ((flags & ~(FLAG_OFFER | FLAG_REPLY)) !== 0) throw new CryptoError('decrypt_failed', 'unknown header flags');
    const need = 1 + (flags & FLAG_OFFER ? OFFER_BYTES : 0) + (flags & FLAG_REPLY ? REPLY_BYTES : 0);
    if (message.length < HEADER_BYTES + need + NONCE_BYTES + TAG_BYTES) {
      throw new CryptoError('decrypt_failed', 'ratchet message is truncated');
    }
    if (flags & FLAG_OFFER) offer = { id: r.u32(), publicKey: r.bytes(KEM_PUBLIC_KEY_BYTES) };
    if (flags & FLAG_REPLY) reply = { id: r.u32(), ciphertext: r.bytes(KEM_CIPHERTEXT_BYTES) };
    headerBytes += need;
  }
  const nonce = r.bytes(NONCE_BYTES);
  return {
    header: { bytes: message.subarray(0, headerBytes), ratchetKey, previousCounter, counter, offer, reply, version },
    nonce,
    ciphertext: r.rest(),
  };
}

/** The header of a message on the current sending chain: version 2, with the KEM parts, for PQ sessions. */
function encodeHeader(session: Session, counter: number): Uint8Array {
  const base = [session.dhSelf.publicKey, u32be(session.previousCounter), u32be(counter)];
  const pq = session.pqRatchet;
  if (!pq) return concat(Uint8Array.of(MESSAGE_VERSION), ...base);
  const flags = (pq.offer ? FLAG_OFFER : 0) | (pq.reply ? FLAG_REPLY : 0);
  return concat(
    Uint8Array.of(PQ_MESSAGE_VERSION),
    ...base,
    Uint8Array.of(flags),
    ...(pq.offer ? [u32be(pq.offer.id), pq.offer.publicKey] : []),
    ...(pq.reply ? [u32be(pq.reply.id), pq.reply.ciphertext] : []),
  );
}

/**
 * The KEM half of a DH ratchet step on a PQ session. `recvSecret`: our offer's secret, when this header answers it
 * (mixed into the receiving chain's step, as the peer mixed it into its sending chain's). `sendSecret`: a fresh
 * encapsulation to the peer's offer, when it is one we have not answered (mixed into our new sending chain's step,
 * and its ciphertext sent with that chain). Then the next offer, when one is due.
 */
function pqStep(
  pq: PqRatchetState | undefined,
  header: Header,
): { recvSecret: Uint8Array | null; sendSecret: Uint8Array | null; next: PqRatchetState | undefined } {
  if (!pq) {
    if (header.version !== MESSAGE_VERSION) {
      throw new CryptoError('decrypt_failed', 'a post-quantum ratchet message on a classic session');
    }
    return { recvSecret: null, sendSecret: null, next: undefined };
  }
  let recvSecret: Uint8Array | null = null;
  if (header.reply) {
    if (!pq.offer || header.reply.id !== pq.offer.id) {
      throw new CryptoError('decrypt_failed', 'the message answers a KEM offer this session does not hold');
    }
    recvSecret = kemDecapsulate(header.reply.ciphertext, pq.offer.secretKey);
  }
  let sendSecret: Uint8Array | null = null;
  let reply: PqRatchetState['reply'] = null;
  if (header.offer && header.offer.id > pq.answered) {
    let kem;
    try {
      kem = kemEncapsulate(header.offer.publicKey);
    } catch (e) {
      wipe(recvSecret);
      // The header is authenticated only by the message's AEAD, checked later: a bad key is a failed message.
      throw new CryptoError('decrypt_failed', `the message's KEM offer is unusable (${(e as Error).message})`);
    }
    sendSecret = kem.sharedSecret;
    reply = { id: header.offer.id, ciphertext: kem.ciphertext };
  }
  const mixed = (recvSecret ? 1 : 0) + (sendSecret ? 1 : 0);
  const steps = mixed > 0 ? 0 : pq.steps + 1;
  let offer = recvSecret ? null : pq.offer;
  let nextOfferId = pq.nextOfferId;
  // At most one KEM item per chain when a new offer is made: headers stay small.
  if (!offer && !reply && steps >= rekeySteps) {
    const kp = sodium().crypto_kem_mlkem768_keypair();
    offer = { id: nextOfferId++, publicKey: kp.publicKey, secretKey: kp.privateKey };
  }
  return {
    recvSecret,
    sendSecret,
    next: {
      steps,
      offer,
      nextOfferId,
      reply,
      answered: reply ? reply.id : pq.answered,
      epochs: pq.epochs + mixed,
    },
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
  const header = encodeHeader(session, chain.counter);
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
    // DH ratchet step: new receiving chain from their key, then a fresh key pair and a new sending chain. On a PQ
    // session an ML-KEM secret joins either half when the header answers our offer or makes one.
    const pq = pqStep(session.pqRatchet, parsed.header);
    const dhRecv = dh(session.dhSelf.privateKey, ratchetKey, 'ratchet message key');
    const step1 = pq.recvSecret ? kdfRootPq(session.rootKey, dhRecv, pq.recvSecret) : kdfRoot(session.rootKey, dhRecv);
    wipe(dhRecv, pq.recvSecret);
    const dhSelf = generateKeyPair();
    const dhSend = dh(dhSelf.privateKey, ratchetKey, 'ratchet message key');
    const step2 = pq.sendSecret ? kdfRootPq(step1.rootKey, dhSend, pq.sendSecret) : kdfRoot(step1.rootKey, dhSend);
    wipe(dhSend, step1.rootKey, pq.sendSecret);
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
      ...(pq.next ? { pqRatchet: pq.next } : {}),
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
