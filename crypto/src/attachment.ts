// Attachments: a file sealed as a chunked libsodium secretstream (XChaCha20-Poly1305) under a fresh 32-byte key.
//
// Blob layout: header (24 bytes) ‖ chunk₀ ‖ chunk₁ ‖ … where every chunk seals CHUNK_BYTES of plaintext (the last
// one fewer, never zero) plus a 17-byte tag; only the last chunk carries TAG_FINAL, so a truncated blob fails.
// The plaintext is the file zero-padded to a size bucket (Signal's 1.05ⁿ steps, at least 541 bytes) so the relay
// learns the size only to about 5 %; the true size travels inside the end-to-end encrypted message.
//
// Sans-I/O and incremental: a sealer takes plaintext slices of any length and hands back whole sealed chunks; an
// opener does the reverse. Neither ever holds more than one chunk, so a 100 MiB file never sits in memory.

import { CryptoError } from './errors.js';
import { randomBytes } from './random.js';
import { sodium } from './sodium.js';
import { bytesArg, fail } from './validate.js';

/** Plaintext bytes per sealed chunk. */
export const ATTACHMENT_CHUNK_BYTES = 64 * 1024;
/** The largest file an attachment may hold. */
export const ATTACHMENT_MAX_BYTES = 100 * 1024 * 1024;
export const ATTACHMENT_KEY_BYTES = 32;
export const ATTACHMENT_HEADER_BYTES = 24;
/** secretstream's per-chunk overhead: a 1-byte encrypted tag and a 16-byte Poly1305 MAC. */
export const ATTACHMENT_CHUNK_OVERHEAD = 17;
/** Padding never goes past this (so every sealed blob fits the relay's 102 MiB blob limit). */
const PAD_LIMIT = 101 * 1024 * 1024;
const MIN_PADDED = 541;

function sizeArg(size: unknown): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > ATTACHMENT_MAX_BYTES) {
    fail(`size must be a whole number of bytes from 0 to ${ATTACHMENT_MAX_BYTES}`);
  }
  return size;
}

/**
 * The padded plaintext size of a `size`-byte file: max(541, ⌊1.05^⌈log₁.₀₅ size⌉⌋), never below `size`, capped at
 * 101 MiB. Sizes that share a bucket give blobs of one length.
 */
export function attachmentPaddedSize(size: number): number {
  sizeArg(size);
  if (size <= MIN_PADDED) return MIN_PADDED;
  const bucket = Math.floor(1.05 ** Math.ceil(Math.log(size) / Math.log(1.05)));
  return Math.min(PAD_LIMIT, Math.max(size, bucket));
}

/** Bytes of the sealed blob of a `size`-byte file: header, padded plaintext, and one tag per chunk. */
export function attachmentSealedSize(size: number): number {
  const padded = attachmentPaddedSize(size);
  return ATTACHMENT_HEADER_BYTES + padded + Math.ceil(padded / ATTACHMENT_CHUNK_BYTES) * ATTACHMENT_CHUNK_OVERHEAD;
}

/** A fresh random attachment key (one per attachment, never reused). */
export function generateAttachmentKey(): Uint8Array {
  return randomBytes(ATTACHMENT_KEY_BYTES);
}

/** A fresh random secretstream header (drawn with one getRandomValues call: libsodium.js draws byte by byte). */
export function generateAttachmentHeader(): Uint8Array {
  return randomBytes(ATTACHMENT_HEADER_BYTES);
}

/**
 * Seals one attachment incrementally. Feed the file with {@link AttachmentSealer.write} (any slice lengths, `size`
 * bytes in all), then call {@link AttachmentSealer.finish}; the concatenation of everything both return is the
 * blob. Given the same key and header it returns the same bytes, so a caller can seal once to hash and again to
 * upload without keeping the blob. The header is initialised through `init_pull`, which derives exactly the state
 * `init_push` does (libsodium's two functions differ only in who chose the header).
 */
export class AttachmentSealer {
  readonly size: number;
  readonly paddedSize: number;
  readonly #state: unknown;
  readonly #header: Uint8Array;
  #buffer = new Uint8Array(ATTACHMENT_CHUNK_BYTES);
  #buffered = 0;
  /** Plaintext bytes (file and padding) sealed or buffered so far. */
  #consumed = 0;
  #headerSent = false;
  #done = false;

  constructor(key: Uint8Array, size: number, header: Uint8Array = generateAttachmentHeader()) {
    bytesArg(key, 'key', ATTACHMENT_KEY_BYTES);
    bytesArg(header, 'header', ATTACHMENT_HEADER_BYTES);
    this.size = sizeArg(size);
    this.paddedSize = attachmentPaddedSize(size);
    this.#header = header.slice();
    this.#state = sodium().crypto_secretstream_xchacha20poly1305_init_pull(this.#header, key);
  }

  /** Plaintext bytes held back until a chunk is full (never more than one chunk). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Seals the next slice of the file; returns the blob bytes now complete (the header first, then whole chunks). */
  write(plain: Uint8Array): Uint8Array[] {
    bytesArg(plain, 'plain');
    if (this.#done) fail('write after finish');
    if (this.#consumed + plain.length > this.size) fail(`the file is longer than its declared size ${this.size}`);
    return this.#take(plain);
  }

  /** Adds the padding and seals the last chunk with TAG_FINAL. Throws `bad_input` if fewer than `size` bytes came. */
  finish(): Uint8Array[] {
    if (this.#done) fail('finish called twice');
    if (this.#consumed !== this.size)
      fail(`the file is shorter (${this.#consumed}) than its declared size ${this.size}`);
    const out: Uint8Array[] = [];
    // Padding: zeros, one chunk's worth at a time.
    const zeros = new Uint8Array(ATTACHMENT_CHUNK_BYTES);
    while (this.#consumed < this.paddedSize) {
      out.push(...this.#take(zeros.subarray(0, Math.min(zeros.length, this.paddedSize - this.#consumed))));
    }
    // The last (possibly full) chunk is still buffered: #take keeps a full chunk until it knows more follows.
    out.push(this.#seal(this.#buffer.subarray(0, this.#buffered), true));
    this.#buffered = 0;
    this.#done = true;
    this.#buffer = new Uint8Array(0);
    return out;
  }

  #take(plain: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (!this.#headerSent) {
      out.push(this.#header.slice());
      this.#headerSent = true;
    }
    let at = 0;
    while (at < plain.length) {
      // A full buffer is sealed only once more bytes arrive: the final chunk must carry TAG_FINAL.
      if (this.#buffered === ATTACHMENT_CHUNK_BYTES) {
        out.push(this.#seal(this.#buffer, false));
        this.#buffered = 0;
      }
      const n = Math.min(plain.length - at, ATTACHMENT_CHUNK_BYTES - this.#buffered);
      this.#buffer.set(plain.subarray(at, at + n), this.#buffered);
      this.#buffered += n;
      this.#consumed += n;
      at += n;
    }
    return out;
  }

  #seal(chunk: Uint8Array, final: boolean): Uint8Array {
    const lib = sodium();
    const tag = final
      ? lib.crypto_secretstream_xchacha20poly1305_TAG_FINAL
      : lib.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    return lib.crypto_secretstream_xchacha20poly1305_push(this.#state as never, chunk, null, tag);
  }
}

/**
 * Opens one attachment incrementally: feed the blob with {@link AttachmentOpener.write} (any slice lengths) and
 * get the file's plaintext back (padding removed), then call {@link AttachmentOpener.finish}. A wrong key, a
 * flipped byte, reordered, duplicated or missing chunks, a missing final chunk or bytes after it all throw
 * `decrypt_failed`. Check the blob's digest first: plaintext handed out before `finish` is authentic chunk by
 * chunk, but only `finish` proves the file is whole.
 */
export class AttachmentOpener {
  readonly size: number;
  readonly paddedSize: number;
  readonly #key: Uint8Array;
  #state: unknown = null;
  #buffer = new Uint8Array(ATTACHMENT_HEADER_BYTES);
  #buffered = 0;
  /** Padded plaintext bytes opened so far. */
  #opened = 0;
  #final = false;
  #failed = false;

  constructor(key: Uint8Array, size: number) {
    bytesArg(key, 'key', ATTACHMENT_KEY_BYTES);
    this.size = sizeArg(size);
    this.paddedSize = attachmentPaddedSize(size);
    this.#key = key.slice();
  }

  /** Opens the next slice of the blob; returns the file bytes now authenticated (never padding). */
  write(sealed: Uint8Array): Uint8Array[] {
    bytesArg(sealed, 'sealed');
    if (this.#failed) throw this.#error('the attachment already failed to open');
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < sealed.length) {
      if (this.#final) throw this.#error('bytes after the final chunk');
      const want = this.#state === null ? ATTACHMENT_HEADER_BYTES : this.#nextChunkBytes();
      if (this.#buffer.length !== want) {
        const grown = new Uint8Array(want);
        grown.set(this.#buffer.subarray(0, this.#buffered));
        this.#buffer = grown;
      }
      const n = Math.min(sealed.length - at, want - this.#buffered);
      this.#buffer.set(sealed.subarray(at, at + n), this.#buffered);
      this.#buffered += n;
      at += n;
      if (this.#buffered < want) break;
      this.#buffered = 0;
      if (this.#state === null) {
        this.#state = sodium().crypto_secretstream_xchacha20poly1305_init_pull(this.#buffer, this.#key);
        sodium().memzero(this.#key);
        continue;
      }
      const plain = this.#open(this.#buffer);
      const keep = Math.max(0, Math.min(plain.length, this.size - this.#opened));
      if (keep > 0) out.push(plain.subarray(0, keep));
      this.#opened += plain.length;
    }
    return out;
  }

  /** Throws `decrypt_failed` unless the final chunk arrived and nothing is left over. */
  finish(): void {
    if (this.#failed) throw this.#error('the attachment already failed to open');
    if (!this.#final || this.#buffered !== 0) throw this.#error('the attachment is truncated');
  }

  /** Sealed bytes of the next chunk: a full one, or what is left of the padded plaintext plus its tag. */
  #nextChunkBytes(): number {
    return Math.min(ATTACHMENT_CHUNK_BYTES, this.paddedSize - this.#opened) + ATTACHMENT_CHUNK_OVERHEAD;
  }

  #open(chunk: Uint8Array): Uint8Array {
    const lib = sodium();
    const result = lib.crypto_secretstream_xchacha20poly1305_pull(this.#state as never, chunk, null);
    if (!result) throw this.#error('a chunk failed authentication');
    const last = this.#opened + result.message.length === this.paddedSize;
    const isFinal = result.tag === lib.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if (isFinal !== last || (!isFinal && result.tag !== lib.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)) {
      throw this.#error('the final chunk is not where the size says');
    }
    this.#final = isFinal;
    return result.message;
  }

  #error(message: string): CryptoError {
    this.#failed = true;
    return new CryptoError('decrypt_failed', `attachment: ${message}`);
  }
}

/** Incremental SHA-256 (libsodium's `crypto_hash_sha256_*`: WebCrypto has no incremental digest). */
export class Sha256 {
  readonly #state: unknown;
  #done = false;

  constructor() {
    this.#state = sodium().crypto_hash_sha256_init();
  }

  update(data: Uint8Array): void {
    bytesArg(data, 'data');
    if (this.#done) fail('update after digest');
    sodium().crypto_hash_sha256_update(this.#state as never, data);
  }

  digest(): Uint8Array {
    if (this.#done) fail('digest called twice');
    this.#done = true;
    return sodium().crypto_hash_sha256_final(this.#state as never);
  }
}
