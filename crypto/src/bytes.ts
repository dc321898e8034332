// Byte helpers: strict base64url, UTF-8, concatenation, constant-time comparison, wiping, big-endian integers.

import { CryptoError } from './errors.js';
import { isReady, sodium } from './sodium.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

/** base64url without padding. */
export function toBase64Url(data: Uint8Array): string {
  if (!(data instanceof Uint8Array)) throw new CryptoError('bad_input', 'toBase64Url: data must be a Uint8Array');
  let out = '';
  let i = 0;
  for (; i + 2 < data.length; i += 3) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = data.length - i;
  if (rest === 1) {
    const n = data[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/**
 * Strict base64url decoding: no padding, no whitespace, canonical trailing bits, and (if given) an exact length.
 * Errors name the argument.
 */
export function fromBase64Url(text: unknown, name: string, expectedLength?: number): Uint8Array {
  if (typeof text !== 'string') throw new CryptoError('bad_input', `${name} must be a base64url string`);
  const len = text.length;
  if (len % 4 === 1) throw new CryptoError('bad_input', `${name} is not valid base64url`);
  const out = new Uint8Array(Math.floor((len * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? DECODE[c]! : -1;
    if (v < 0) throw new CryptoError('bad_input', `${name} is not valid base64url`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) throw new CryptoError('bad_input', `${name} is not canonical base64url`);
  if (expectedLength !== undefined && o !== expectedLength) {
    throw new CryptoError('bad_input', `${name} must encode ${expectedLength} bytes (got ${o})`);
  }
  return out;
}

/** Concatenates byte arrays into a new one. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Constant-time (in the contents) equality; false if lengths differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) {
    throw new CryptoError('bad_input', 'constantTimeEqual: arguments must be Uint8Arrays');
  }
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** True if every byte is zero (constant time). */
export function isAllZero(a: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]!;
  return acc === 0;
}

/** Zeroes secrets in place with `sodium.memzero` (a plain fill before libsodium has loaded). */
export function wipe(...secrets: (Uint8Array | null | undefined)[]): void {
  const lib = isReady() ? sodium() : null;
  for (const s of secrets) {
    if (!(s instanceof Uint8Array)) continue;
    if (lib) lib.memzero(s);
    else s.fill(0);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Strict UTF-8 decoding (invalid sequences throw `bad_input`). */
export function fromUtf8(data: Uint8Array, name: string): string {
  try {
    return decoder.decode(data);
  } catch {
    throw new CryptoError('bad_input', `${name} is not valid UTF-8`);
  }
}

export function u32be(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

export function readU32be(data: Uint8Array, at: number): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(at, false);
}

/** A byte-length-prefixed (1 byte) string, for ids inside binary formats. */
export function lp8(text: string, name: string): Uint8Array {
  const b = utf8(text);
  if (b.length === 0 || b.length > 255) throw new CryptoError('bad_input', `${name} must be 1–255 UTF-8 bytes`);
  return concat(Uint8Array.of(b.length), b);
}

/** Reads binary formats front to back; running past the end throws `bad_input` naming the format. */
export class Reader {
  private at = 0;

  constructor(
    private readonly data: Uint8Array,
    private readonly what: string,
  ) {}

  bytes(n: number): Uint8Array {
    if (this.at + n > this.data.length) throw new CryptoError('bad_input', `${this.what} is truncated`);
    const out = this.data.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  u8(): number {
    return this.bytes(1)[0]!;
  }

  u32(): number {
    const b = this.bytes(4);
    return readU32be(b, 0);
  }

  lp8String(name: string): string {
    const n = this.u8();
    if (n === 0) throw new CryptoError('bad_input', `${this.what}: ${name} is empty`);
    return fromUtf8(this.bytes(n), `${this.what}: ${name}`);
  }

  rest(): Uint8Array {
    const out = this.data.subarray(this.at);
    this.at = this.data.length;
    return out;
  }

  remaining(): number {
    return this.data.length - this.at;
  }
}
