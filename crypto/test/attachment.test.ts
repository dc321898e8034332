// Attachment sealing: a chunked secretstream under a fresh key, padded to a size bucket; every tampering fails.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import libsodium from 'libsodium-wrappers-sumo';
import { describe, expect, it } from 'vitest';
import {
  ATTACHMENT_CHUNK_BYTES as CHUNK,
  ATTACHMENT_CHUNK_OVERHEAD,
  ATTACHMENT_HEADER_BYTES,
  AttachmentOpener,
  AttachmentSealer,
  attachmentPaddedSize,
  attachmentSealedSize,
  fromBase64Url,
  generateAttachmentKey,
  isCryptoError,
  Sha256,
  toBase64Url,
} from '../src/index.js';
import { patternFile } from './vectors/build.js';
import { randomBytes } from 'node:crypto';

const SEALED_CHUNK = CHUNK + ATTACHMENT_CHUNK_OVERHEAD;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function seal(key: Uint8Array, file: Uint8Array, header?: Uint8Array, slice = 10_000): Uint8Array {
  const sealer = new AttachmentSealer(key, file.length, header);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < file.length; at += slice) parts.push(...sealer.write(file.subarray(at, at + slice)));
  parts.push(...sealer.finish());
  return concat(parts);
}

function open(key: Uint8Array, size: number, sealed: Uint8Array, slice = 7_777): Uint8Array {
  const opener = new AttachmentOpener(key, size);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < sealed.length; at += slice) parts.push(...opener.write(sealed.subarray(at, at + slice)));
  opener.finish();
  return concat(parts);
}

function expectDecryptFailed(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(isCryptoError(thrown, 'decrypt_failed'), String(thrown)).toBe(true);
}

const hexBytes = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));

describe('attachment padding', () => {
  it('pads every size to a 5 % bucket of at least 541 bytes, never below the size', () => {
    expect(attachmentPaddedSize(0)).toBe(541);
    expect(attachmentPaddedSize(541)).toBe(541);
    expect(attachmentPaddedSize(1000)).toBe(1020);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 * 1024 * 1024 }), (n) => {
        const padded = attachmentPaddedSize(n);
        expect(padded).toBeGreaterThanOrEqual(n);
        expect(padded).toBeLessThanOrEqual(Math.min(Math.max(541, Math.ceil(n * 1.05)), 101 * 1024 * 1024));
      }),
    );
  });

  it('gives files of nearby sizes blobs of one length', () => {
    expect(attachmentSealedSize(1_000_000)).toBe(attachmentSealedSize(1_000_001));
    expect(new Set([10, 100, 300, 541].map(attachmentSealedSize)).size).toBe(1);
  });

  it('keeps the sealed blob of the largest file within the relay blob limit (102 MiB)', () => {
    expect(attachmentSealedSize(100 * 1024 * 1024)).toBeLessThanOrEqual(102 * 1024 * 1024);
  });
});

describe('attachment sealing', () => {
  const vector = JSON.parse(readFileSync(new URL('./vectors/attachment.json', import.meta.url), 'utf8')) as {
    small: { key: string; header: string; size: number; sealed: string; digest: string };
    large: { key: string; header: string; size: number; sealedBytes: number; digest: string };
  };

  it('seals a fixed key, header and file to the committed bytes (known-answer vector)', () => {
    const { small, large } = vector;
    const sealed = seal(fromBase64Url(small.key, 32), patternFile(small.size), hexBytes(small.header));
    expect(Buffer.from(sealed).toString('hex')).toBe(small.sealed);
    const big = seal(fromBase64Url(large.key, 32), patternFile(large.size), hexBytes(large.header));
    expect(big.length).toBe(large.sealedBytes);
    const sha = new Sha256();
    sha.update(big);
    expect(toBase64Url(sha.digest())).toBe(large.digest);
  });

  it('opens the committed vector with plain libsodium secretstream (header first, TAG_FINAL last)', () => {
    const sealed = hexBytes(vector.small.sealed);
    const state = libsodium.crypto_secretstream_xchacha20poly1305_init_pull(
      sealed.subarray(0, ATTACHMENT_HEADER_BYTES),
      fromBase64Url(vector.small.key, 32),
    );
    const result = libsodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed.subarray(24), null);
    expect(result).not.toBe(false);
    if (!result) return;
    expect(result.tag).toBe(libsodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL);
    expect(result.message.subarray(0, 1000)).toEqual(patternFile(1000));
    expect(result.message.subarray(1000).every((b) => b === 0)).toBe(true);
  });

  it('opens a stream sealed by plain libsodium init_push', () => {
    const key = generateAttachmentKey();
    const { state, header } = libsodium.crypto_secretstream_xchacha20poly1305_init_push(key);
    const file = patternFile(600);
    const padded = new Uint8Array(attachmentPaddedSize(600));
    padded.set(file);
    const chunk = libsodium.crypto_secretstream_xchacha20poly1305_push(
      state,
      padded,
      null,
      libsodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    );
    expect(open(key, 600, concat([header, chunk]))).toEqual(file);
  });

  it('round-trips random files of every size class, cut into random slices', () => {
    const sizes = fc.oneof(
      fc.constantFrom(0, 1, 540, 541, 542, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1),
      fc.integer({ min: 0, max: 3 * CHUNK + 5 }),
    );
    fc.assert(
      fc.property(
        sizes,
        fc.integer({ min: 61, max: CHUNK + 3 }),
        fc.integer({ min: 13, max: 2 * SEALED_CHUNK }),
        (n, a, b) => {
          const key = generateAttachmentKey();
          const file = new Uint8Array(randomBytes(n));
          const sealed = seal(key, file, undefined, a);
          expect(sealed.length).toBe(attachmentSealedSize(n));
          expect(Buffer.from(open(key, n, sealed, b)).equals(file)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('uses a fresh header each time: one file sealed twice under one key differs', () => {
    const key = generateAttachmentKey();
    const file = patternFile(2000);
    expect(Buffer.from(seal(key, file)).equals(seal(key, file))).toBe(false);
  });

  it('rejects any single flipped byte anywhere in the blob', () => {
    const key = generateAttachmentKey();
    const size = 2 * CHUNK + 100;
    const file = patternFile(size);
    const sealed = seal(key, file);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: sealed.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, flip) => {
        const bad = sealed.slice();
        bad[at] = bad[at]! ^ flip;
        expectDecryptFailed(() => open(key, size, bad));
      }),
      { numRuns: 80 },
    );
  });

  it('throws at the tampered chunk itself, before handing out any of its plaintext', () => {
    const key = generateAttachmentKey();
    const size = 2 * CHUNK + 100;
    const sealed = seal(key, patternFile(size));
    const bad = sealed.slice();
    bad[ATTACHMENT_HEADER_BYTES + SEALED_CHUNK + 5]! ^= 1;
    const opener = new AttachmentOpener(key, size);
    expect(opener.write(bad.subarray(0, ATTACHMENT_HEADER_BYTES + SEALED_CHUNK))).toHaveLength(1);
    expectDecryptFailed(() => opener.write(bad.subarray(ATTACHMENT_HEADER_BYTES + SEALED_CHUNK)));
    expectDecryptFailed(() => opener.write(new Uint8Array(1)));
  });

  it('rejects a truncated blob: a missing final chunk, or a cut anywhere', () => {
    const key = generateAttachmentKey();
    const size = 3 * CHUNK;
    const sealed = seal(key, patternFile(size));
    // Cut exactly at a chunk boundary: every chunk before authenticates, but none is final.
    expectDecryptFailed(() => open(key, size, sealed.subarray(0, ATTACHMENT_HEADER_BYTES + 2 * SEALED_CHUNK)));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: sealed.length - 1 }), (cut) => {
        expectDecryptFailed(() => open(key, size, sealed.subarray(0, cut)));
      }),
      { numRuns: 40 },
    );
  });

  it('rejects reordered and duplicated chunks, and bytes after the final chunk', () => {
    const key = generateAttachmentKey();
    const size = 3 * CHUNK;
    const sealed = seal(key, patternFile(size));
    const header = sealed.subarray(0, ATTACHMENT_HEADER_BYTES);
    const chunk = (i: number) => sealed.subarray(24 + i * SEALED_CHUNK, 24 + (i + 1) * SEALED_CHUNK);
    const padded = attachmentPaddedSize(size);
    const last = sealed.subarray(24 + 3 * SEALED_CHUNK);
    expect(last.length).toBe(padded - 3 * CHUNK + ATTACHMENT_CHUNK_OVERHEAD);
    expectDecryptFailed(() => open(key, size, concat([header, chunk(1), chunk(0), chunk(2), last])));
    expectDecryptFailed(() => open(key, size, concat([header, chunk(0), chunk(0), chunk(1), chunk(2), last])));
    expectDecryptFailed(() => open(key, size, concat([sealed, last])));
  });

  it('rejects a wrong key, and a size that does not match the blob', () => {
    const key = generateAttachmentKey();
    const sealed = seal(key, patternFile(5000));
    expectDecryptFailed(() => open(generateAttachmentKey(), 5000, sealed));
    // A size from another bucket expects another final chunk length.
    expectDecryptFailed(() => open(key, 9000, sealed));
  });

  it('never hands out padding: a size inside the same bucket gives a shorter file but the same checks', () => {
    const key = generateAttachmentKey();
    const sealed = seal(key, patternFile(1000));
    const opened = open(key, 1000, sealed);
    expect(opened.length).toBe(1000);
  });

  it('refuses misuse: a file longer or shorter than declared, a bad key length', () => {
    const key = generateAttachmentKey();
    const sealer = new AttachmentSealer(key, 10);
    expect(() => sealer.write(new Uint8Array(11))).toThrow(/longer/);
    sealer.write(new Uint8Array(5));
    expect(() => sealer.finish()).toThrow(/shorter/);
    expect(() => new AttachmentSealer(new Uint8Array(31), 10)).toThrow(/key must be 32 bytes/);
    expect(() => new AttachmentOpener(key, -1)).toThrow(/size/);
  });
});

describe('attachment memory', () => {
  it('seals and opens 100 MiB from a generator while holding at most one chunk', () => {
    const size = 100 * 1024 * 1024;
    const key = generateAttachmentKey();
    const sealer = new AttachmentSealer(key, size);
    const opener = new AttachmentOpener(key, size);
    const slice = new Uint8Array(1024 * 1024).fill(7);
    const sealedSha = new Sha256();
    let plainOut = 0;
    let maxOutputsPerWrite = 0;
    const baseline = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const consume = (sealed: Uint8Array[]) => {
      maxOutputsPerWrite = Math.max(maxOutputsPerWrite, sealed.length);
      for (const s of sealed) {
        sealedSha.update(s);
        for (const p of opener.write(s)) plainOut += p.length;
      }
      expect(sealer.bufferedBytes).toBeLessThanOrEqual(CHUNK);
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
    };
    function* file() {
      for (let at = 0; at < size; at += slice.length) yield slice;
    }
    for (const s of file()) consume(sealer.write(s));
    consume(sealer.finish());
    opener.finish();
    expect(plainOut).toBe(size);
    // One 1 MiB slice makes 16 or 17 sealed pieces: nothing accumulates across writes.
    expect(maxOutputsPerWrite).toBeLessThanOrEqual((1024 * 1024) / CHUNK + 2);
    // Far below the 100 MiB that went through (garbage awaiting collection included).
    expect(peak).toBeLessThan(48 * 1024 * 1024);
    expect(sealedSha.digest().length).toBe(32);
  });
});
