// RFC 9162 Merkle tree verification (section 2.1): leaf and node hashes, inclusion and consistency proofs.
// Pure: hashes in, a yes/no out. SHA-256 comes from libsodium, so call `ready()` first.
import { concat, constantTimeEqual } from '../bytes.js';
import { CryptoError } from '../errors.js';
import { sodium } from '../sodium.js';

export const HASH_BYTES = 32;

function sha256(data: Uint8Array): Uint8Array {
  return sodium().crypto_hash_sha256(data);
}

/** SHA-256(0x00 ‖ leaf): the hash of one entry as the tree holds it. */
export function leafHash(leaf: Uint8Array): Uint8Array {
  return sha256(concat(Uint8Array.of(0), leaf));
}

/** SHA-256(0x01 ‖ left ‖ right): an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** MTH of an empty tree: SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

function checkSize(n: number, name: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new CryptoError('bad_input', `${name} must be a non-negative integer`);
}

function checkPath(path: readonly Uint8Array[], name: string): void {
  path.forEach((p, i) => {
    if (!(p instanceof Uint8Array) || p.length !== HASH_BYTES) {
      throw new CryptoError('bad_input', `${name}[${i}] must be ${HASH_BYTES} bytes`);
    }
  });
}

/** Halves like a right shift, for sizes past 2^31 (JavaScript's `>>` is 32-bit). */
function half(n: number): number {
  return Math.floor(n / 2);
}

function odd(n: number): boolean {
  return n % 2 === 1;
}

/**
 * The root an inclusion proof leads to (RFC 9162 2.1.3.2), or null when the proof has the wrong shape for
 * (index, size). Compare the result with a checkpoint's root hash.
 */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leafHashValue: Uint8Array,
  path: readonly Uint8Array[],
): Uint8Array | null {
  checkSize(index, 'index');
  checkSize(size, 'size');
  checkPath(path, 'path');
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = leafHashValue;
  for (const p of path) {
    if (sn === 0) return null;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : null;
}

/** True when `path` proves that the leaf with hash `leafHashValue` is entry `index` of the tree (size, root). */
export function verifyInclusion(
  index: number,
  size: number,
  leafHashValue: Uint8Array,
  path: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  const r = rootFromInclusionProof(index, size, leafHashValue, path);
  return r !== null && constantTimeEqual(r, root);
}

/**
 * True when `path` proves that the tree (size1, root1) is a prefix of the tree (size2, root2) (RFC 9162 2.1.4.2).
 * Equal sizes need an empty path and equal roots; the empty tree is a prefix of every tree.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  path: readonly Uint8Array[],
): boolean {
  checkSize(size1, 'size1');
  checkSize(size2, 'size2');
  checkPath(path, 'path');
  if (size1 > size2) return false;
  if (size1 === size2) return path.length === 0 && constantTimeEqual(root1, root2);
  if (size1 === 0) return path.length === 0;
  if (path.length === 0) return false;
  const proof = isPowerOfTwo(size1) ? [root1, ...path] : [...path];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = proof[0]!;
  let sr = proof[0]!;
  for (const c of proof.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && constantTimeEqual(fr, root1) && constantTimeEqual(sr, root2);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
