// Sealed envelopes (to the recipient's identity X25519 key; format 2 sealed, formats 1 and 2 opened), content
// framing and padding.

import { concat, fromBase64Url, isAllZero, lp8, Reader, toBase64Url, utf8, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { checkIdentity } from './identity.js';
import { ed25519ToX25519PublicKey, KEY_BYTES } from './keys.js';
import { assertTestHooksEnabled, randomBytes, randomSourceGeneration, randomSourceReplaced } from './random.js';
import { sodium } from './sodium.js';
import type { Content, ContentKind, Envelope, EnvelopeType, Identity } from './types.js';
import { bytesArg, fail, idArg, keyArg } from './validate.js';
import { ephemeralDh, staticDh } from './x25519.js';

export const ENVELOPE_VERSION = 1;
export const MESSAGE_ID_BYTES = 16;
/** Padding uses 256-byte blocks up to this size, then powers of two. */
export const PAD_BLOCK = 256;
export const PAD_BLOCK_LIMIT = 4096;
/** Largest padded plaintext (32 KiB): keeps every body well inside the relay's 64 KiB limit. */
export const MAX_PADDED_BYTES = 32 * 1024;
/**
 * Largest content body, pairwise or group: kind byte + (group) message id + body + one padding byte fit in
 * MAX_PADDED_BYTES.
 */
export const MAX_CONTENT_BYTES = MAX_PADDED_BYTES - 2 - MESSAGE_ID_BYTES;
/** crypto_box_seal overhead: ephemeral public key + Poly1305 tag. */
const SEAL_OVERHEAD = KEY_BYTES + 16;

const ENVELOPE_TYPES: Record<EnvelopeType, number> = { prekey: 1, message: 2 };
const CONTENT_KINDS: Record<ContentKind, number> = { chat: 1, sender_key: 2, control: 3 };

function codeOf<T extends string>(table: Record<T, number>, value: unknown, name: string): number {
  if (typeof value !== 'string' || !Object.prototype.hasOwnProperty.call(table, value)) {
    fail(`${name} must be one of ${Object.keys(table).join(', ')}`);
  }
  return table[value as T];
}

function nameOf<T extends string>(table: Record<T, number>, code: number): T | null {
  for (const [k, v] of Object.entries(table)) if (v === code) return k as T;
  return null;
}

/** A message id must be base64url of exactly 16 bytes (22 characters). */
export function messageIdBytes(messageId: unknown): Uint8Array {
  return fromBase64Url(messageId, 'messageId', MESSAGE_ID_BYTES);
}

/** The padded length for `n` bytes of plaintext (at least one padding byte, ISO/IEC 7816-4). */
export function paddedLength(n: number): number {
  if (n + 1 <= PAD_BLOCK_LIMIT) return Math.ceil((n + 1) / PAD_BLOCK) * PAD_BLOCK;
  let size = PAD_BLOCK_LIMIT;
  while (size < n + 1) size *= 2;
  return size;
}

/**
 * ISO/IEC 7816-4 padding, byte-for-byte what `sodium.pad(data, paddedLength(n))` returns (a test checks it).
 * Written out because libsodium.js copies the input into wasm one byte at a time: 3 ms for 4 KiB.
 */
export function padPlaintext(data: Uint8Array): Uint8Array {
  bytesArg(data, 'data');
  if (data.length >= 1 << 30) fail('data is too large to pad');
  const out = new Uint8Array(paddedLength(data.length));
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

export function unpadPlaintext(padded: Uint8Array): Uint8Array {
  bytesArg(padded, 'padded');
  const n = padded.length;
  const canonicalSize =
    n > 0 && ((n <= PAD_BLOCK_LIMIT && n % PAD_BLOCK === 0) || (n > PAD_BLOCK_LIMIT && (n & (n - 1)) === 0));
  if (!canonicalSize) throw new CryptoError('decrypt_failed', 'padded plaintext has an invalid length');
  let out: Uint8Array;
  try {
    out = sodium().unpad(padded, n <= PAD_BLOCK_LIMIT ? PAD_BLOCK : n);
  } catch {
    throw new CryptoError('decrypt_failed', 'plaintext padding is malformed');
  }
  if (paddedLength(out.length) !== n) throw new CryptoError('decrypt_failed', 'plaintext padding is not canonical');
  return out;
}

/** Frames content as `kind ‖ body` (before padding). */
export function encodeContent(content: Content, allowed: readonly ContentKind[] = ['chat', 'sender_key', 'control']) {
  if (typeof content !== 'object' || content === null) fail('content must be an object');
  const kind = codeOf(CONTENT_KINDS, content.kind, 'content.kind');
  if (!allowed.includes(content.kind)) fail(`content.kind "${content.kind}" is not allowed here`);
  bytesArg(content.body, 'content.body');
  if (content.body.length > MAX_CONTENT_BYTES) fail(`content.body must be at most ${MAX_CONTENT_BYTES} bytes`);
  return concat(Uint8Array.of(kind), content.body);
}

/** Parses authenticated `kind ‖ body`; anything malformed is `decrypt_failed` (no partial plaintext). */
export function decodeContent(framed: Uint8Array, allowed: readonly ContentKind[] = ['chat', 'sender_key', 'control']) {
  const kind = framed.length > 0 ? nameOf(CONTENT_KINDS, framed[0]!) : null;
  if (kind === null || !allowed.includes(kind)) throw new CryptoError('decrypt_failed', 'content has an unknown kind');
  return { kind, body: framed.slice(1) } satisfies Content;
}

/** HSalsa20's input for crypto_box_beforenm: 16 zero bytes. */
const HSALSA20_ZERO = new Uint8Array(16);

/** Format 1's key (crypto_box_beforenm) from an X25519 output: HSalsa20(shared, 0). Does not wipe `shared`. */
function boxKeyV1(shared: Uint8Array): Uint8Array {
  return sodium().crypto_core_hsalsa20(HSALSA20_ZERO, shared, null);
}

/** Format 1's nonce (crypto_box_seal): BLAKE2b-192(ephemeral public key ‖ recipient public key). */
function sealNonceV1(ephemeralPublic: Uint8Array, recipient: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(24, concat(ephemeralPublic, recipient), null);
}

const SEAL_V2_LABEL = utf8('WeConnect sealed envelope v2');
/** Format 2's first byte (format 1 has none: it starts with its random ephemeral key). */
const SEAL_V2_PREFIX = Uint8Array.of(2);
const NONCE_BYTES = 24;
/** Format 2's overhead: version byte + ephemeral public key + random nonce + Poly1305 tag. */
const SEAL_V2_OVERHEAD = 1 + KEY_BYTES + NONCE_BYTES + 16;

/** Format 2's key: BLAKE2b-256 keyed with X25519(esk, rpk) over label ‖ epk ‖ rpk. Does not wipe `shared`. */
function boxKeyV2(shared: Uint8Array, ephemeralPublic: Uint8Array, recipient: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(32, concat(SEAL_V2_LABEL, ephemeralPublic, recipient), shared);
}

/**
 * How many envelopes, and for how long, one ephemeral key seals to one recipient key (a seal epoch). Within an epoch
 * the envelopes share their ephemeral key (bytes 1–32), so whoever holds them can tell they come from one sender device (the
 * relay knows that anyway from the sender's authenticated socket); the X25519 operations are paid once per epoch.
 */
export const SEAL_EPOCH_ENVELOPES = 64;
export const SEAL_EPOCH_MS = 60_000;
/** Recipient keys with an open epoch, and opened epochs remembered by a recipient (least recently used go first). */
export const SEAL_CACHE_SIZE = 256;

interface SealEpoch {
  readonly publicKey: Uint8Array;
  /** Format 2's key; wiped when the epoch ends (a seal that finds it wiped starts a new epoch). */
  readonly key: Uint8Array;
}

interface EpochEntry {
  readonly epoch: Promise<SealEpoch>;
  readonly expiresAt: number;
  uses: number;
}

/** Open epochs by sending device and recipient X25519 key, oldest use first. */
const sealEpochs = new Map<string, EpochEntry>();
/** Keys of epochs that opened here, by recipient key ‖ ephemeral key (base64url), oldest use first. */
const openedEpochs = new Map<string, Uint8Array>();
let cachesGeneration = -1;

/** How many epochs are open for sealing and remembered for opening here. Tests only. */
export function dangerousTestOnlySealCacheSizes(): { sealing: number; opened: number } {
  assertTestHooksEnabled('dangerousTestOnlySealCacheSizes');
  return { sealing: sealEpochs.size, opened: openedEpochs.size };
}

/**
 * Ends every seal epoch and forgets (wipes) every remembered epoch key: the next seal to anyone starts a new epoch.
 * For sign-out and closing an account in a page that stays open.
 */
export function forgetSealEpochs(): void {
  for (const entry of sealEpochs.values()) endEpoch(entry);
  sealEpochs.clear();
  for (const key of openedEpochs.values()) wipe(key);
  openedEpochs.clear();
}

/** Golden vectors replace the random source: they start from empty caches, so the same seed gives the same bytes. */
function checkCachesGeneration(): void {
  if (cachesGeneration === randomSourceGeneration()) return;
  cachesGeneration = randomSourceGeneration();
  forgetSealEpochs();
}

function endEpoch(entry: EpochEntry): void {
  entry.epoch.then(
    (e) => wipe(e.key),
    () => undefined,
  );
}

async function startEpoch(recipient: Uint8Array): Promise<SealEpoch> {
  const secret = randomSourceReplaced() ? randomBytes(KEY_BYTES) : null;
  let eph: { publicKey: Uint8Array; shared: Uint8Array };
  try {
    eph = await ephemeralDh(recipient, secret);
  } finally {
    wipe(secret);
  }
  try {
    return { publicKey: eph.publicKey, key: boxKeyV2(eph.shared, eph.publicKey, recipient) };
  } finally {
    wipe(eph.shared);
  }
}

/**
 * The epoch this seal belongs to: the open one of this sending device for `recipient`, or a new one when it is used
 * up or expired. Keyed by the sender too, so that two accounts open in one process never share an ephemeral key
 * (which would tell the relay that they are used on one machine).
 */
function epochFor(sender: string, recipient: Uint8Array): Promise<SealEpoch> {
  checkCachesGeneration();
  const id = `${sender} ${toBase64Url(recipient)}`;
  const now = performance.now(); // monotonic: a clock set back does not stretch an epoch
  let entry = sealEpochs.get(id);
  if (entry) {
    sealEpochs.delete(id);
    if (entry.uses >= SEAL_EPOCH_ENVELOPES || now >= entry.expiresAt) {
      endEpoch(entry);
      entry = undefined;
    }
  }
  if (!entry) {
    const made: EpochEntry = { epoch: startEpoch(recipient), expiresAt: now + SEAL_EPOCH_MS, uses: 0 };
    made.epoch.catch(() => {
      if (sealEpochs.get(id) === made) sealEpochs.delete(id);
    });
    if (sealEpochs.size >= SEAL_CACHE_SIZE) {
      const oldest = sealEpochs.keys().next().value!;
      endEpoch(sealEpochs.get(oldest)!);
      sealEpochs.delete(oldest);
    }
    entry = made;
  }
  sealEpochs.set(id, entry);
  entry.uses++;
  return entry.epoch;
}

/**
 * Seals `message` to `recipient` (format 2): 0x02 ‖ ephemeral public key ‖ nonce ‖ XSalsa20-Poly1305 box, with a
 * random 24-byte nonce per envelope and the key of the current seal epoch (boxKeyV2). The X25519 operations run on
 * the platform when it is faster (x25519.ts). A test-replaced random source fixes the ephemeral key and nonces
 * (vectors).
 */
async function boxSeal(message: Uint8Array, sender: string, recipient: Uint8Array): Promise<Uint8Array> {
  for (;;) {
    const epoch = await epochFor(sender, recipient);
    // An epoch that ended (and was wiped) while this seal waited for it is never used: take the next one.
    if (isAllZero(epoch.key)) continue;
    const nonce = randomBytes(NONCE_BYTES);
    return concat(SEAL_V2_PREFIX, epoch.publicKey, nonce, sodium().crypto_secretbox_easy(message, nonce, epoch.key));
  }
}

/** Format 2's box opened with `key`, or null. */
function secretboxOpenV2(body: Uint8Array, key: Uint8Array): Uint8Array | null {
  try {
    return sodium().crypto_secretbox_open_easy(
      body.subarray(SEAL_V2_OVERHEAD - 16),
      body.subarray(1 + KEY_BYTES, 1 + KEY_BYTES + NONCE_BYTES),
      key,
    );
  } catch {
    return null;
  }
}

function rememberOpened(id: string, key: Uint8Array): void {
  const old = openedEpochs.get(id);
  if (old && old !== key) wipe(old);
  openedEpochs.delete(id);
  if (openedEpochs.size >= SEAL_CACHE_SIZE) {
    const oldest = openedEpochs.keys().next().value!;
    wipe(openedEpochs.get(oldest));
    openedEpochs.delete(oldest);
  }
  openedEpochs.set(id, key);
}

/** Opens format 2 (the caller checked the version byte and the length); null if it does not open. */
async function openV2(body: Uint8Array, identity: Identity): Promise<Uint8Array | null> {
  const ephemeralPublic = body.subarray(1, 1 + KEY_BYTES);
  const id = `${toBase64Url(identity.dhPublicKey)}.${toBase64Url(ephemeralPublic)}`;
  const known = openedEpochs.get(id);
  if (known) {
    const inner = secretboxOpenV2(body, known);
    if (inner) {
      rememberOpened(id, known);
      return inner;
    }
  }
  let key: Uint8Array;
  try {
    const shared = await staticDh(identity.dhPrivateKey, ephemeralPublic);
    key = boxKeyV2(shared, ephemeralPublic, identity.dhPublicKey);
    wipe(shared);
  } catch {
    return null;
  }
  const inner = secretboxOpenV2(body, key);
  if (inner) rememberOpened(id, key);
  else wipe(key);
  return inner;
}

/** Opens format 1: crypto_box_seal_open, byte for byte. Any failure is `decrypt_failed`. */
async function openV1(body: Uint8Array, identity: Identity): Promise<Uint8Array> {
  const ephemeralPublic = body.subarray(0, KEY_BYTES);
  let key: Uint8Array;
  try {
    const shared = await staticDh(identity.dhPrivateKey, ephemeralPublic);
    key = boxKeyV1(shared);
    wipe(shared);
  } catch {
    throw new CryptoError('decrypt_failed', 'envelope failed to open');
  }
  try {
    const nonce = sealNonceV1(ephemeralPublic, identity.dhPublicKey);
    return sodium().crypto_box_open_easy_afternm(body.subarray(KEY_BYTES), nonce, key);
  } catch {
    throw new CryptoError('decrypt_failed', 'envelope failed to open');
  } finally {
    wipe(key);
  }
}

/**
 * Opens a sealed envelope of either format: format 2 (what this library seals, first byte 0x02), or format 1,
 * crypto_box_seal byte for byte (what it sealed before; still in mailboxes and outboxes). Format 1 has no version
 * byte (it starts with a random ephemeral key), so a body that starts with 0x02 and does not open as format 2 is
 * tried as format 1 too. The X25519 operation is paid once per seal epoch: the key of an epoch that opened is
 * remembered. Any failure is `decrypt_failed`.
 */
async function boxSealOpen(body: Uint8Array, identity: Identity): Promise<Uint8Array> {
  checkCachesGeneration();
  if (body[0] === SEAL_V2_PREFIX[0] && body.length >= SEAL_V2_OVERHEAD) {
    const inner = await openV2(body, identity);
    if (inner) return inner;
  }
  return openV1(body, identity);
}

/** Seals to an X25519 key already validated (the session caches the peer's). */
export async function sealEnvelopeTo(
  recipientDhKey: Uint8Array,
  p: { senderUserId: string; senderDeviceId: string; messageId: string; type: EnvelopeType; payload: Uint8Array },
): Promise<Uint8Array> {
  const type = codeOf(ENVELOPE_TYPES, p.type, 'type');
  bytesArg(p.payload, 'payload');
  const inner = concat(
    Uint8Array.of(ENVELOPE_VERSION, type),
    lp8(idArg(p.senderUserId, 'senderUserId'), 'senderUserId'),
    lp8(idArg(p.senderDeviceId, 'senderDeviceId'), 'senderDeviceId'),
    messageIdBytes(p.messageId),
    p.payload,
  );
  // User and device ids are base64url (validated by idArg): the space cannot occur in them.
  return boxSeal(inner, `${p.senderUserId} ${p.senderDeviceId}`, recipientDhKey);
}

export async function sealEnvelope(p: {
  recipientIdentityKey: Uint8Array | string;
  senderUserId: string;
  senderDeviceId: string;
  messageId: string;
  type: EnvelopeType;
  payload: Uint8Array;
}): Promise<Uint8Array> {
  if (typeof p !== 'object' || p === null) fail('params must be an object');
  const recipient = ed25519ToX25519PublicKey(
    keyArg(p.recipientIdentityKey, 'recipientIdentityKey', KEY_BYTES),
    'recipientIdentityKey',
  );
  return sealEnvelopeTo(recipient, p);
}

export async function openEnvelope(identity: Identity, body: Uint8Array): Promise<Envelope> {
  checkIdentity(identity);
  bytesArg(body, 'body');
  if (body.length < SEAL_OVERHEAD + 2) throw new CryptoError('decrypt_failed', 'envelope is truncated');
  const inner = await boxSealOpen(body, identity);
  const r = new Reader(inner, 'envelope');
  try {
    const version = r.u8();
    if (version !== ENVELOPE_VERSION) {
      throw new CryptoError('unsupported_version', `envelope version ${version} is not supported`);
    }
    const type = nameOf(ENVELOPE_TYPES, r.u8());
    if (type === null) throw new CryptoError('bad_input', 'envelope has an unknown type');
    const senderUserId = r.lp8String('senderUserId');
    const senderDeviceId = r.lp8String('senderDeviceId');
    const messageId = toBase64Url(r.bytes(MESSAGE_ID_BYTES));
    return { version: 1, type, senderUserId, senderDeviceId, messageId, payload: r.rest().slice() };
  } finally {
    wipe(inner);
  }
}

/** Envelope fields the ratchet binds as associated data: a payload cannot be re-wrapped under other claims. */
export function envelopeBinding(senderUserId: string, senderDeviceId: string, messageId: string): Uint8Array {
  return concat(lp8(senderUserId, 'senderUserId'), lp8(senderDeviceId, 'senderDeviceId'), messageIdBytes(messageId));
}
