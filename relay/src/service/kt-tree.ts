// The relay's side of the key transparency log (issue #16), pure: directory entries as canonical bytes, RFC 9162
// hashes, the perfect-subtree nodes an append completes, and proofs computed from stored nodes. The verifier in
// crypto/src/kt is a separate implementation; tests check the two against each other.
import { createHash } from 'node:crypto';
import type { Bytes } from '../store/store.js';

/** Must equal ENTRY_DOMAIN of crypto/src/kt/entry.ts. */
const ENTRY_DOMAIN = Buffer.from('WeConnect key transparency entry v1\n', 'utf8');

export type KtEntry =
  | { kind: 'account'; seq: number; userId: string; username: string; identityKey: Bytes; deviceIds: string[] }
  | { kind: 'deleted'; seq: number; userId: string };

function lp8(text: string): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (b.length === 0 || b.length > 255) throw new Error('an id in a transparency entry must be 1–255 bytes');
  return Buffer.concat([Buffer.of(b.length), b]);
}

/** The canonical bytes of an entry: domain ‖ kind ‖ u32 seq ‖ userId [‖ username ‖ 32 ‖ key ‖ u16 n ‖ ids]. */
export function encodeKtEntry(e: KtEntry): Buffer {
  const seq = Buffer.alloc(4);
  seq.writeUInt32BE(e.seq);
  const common = Buffer.concat([ENTRY_DOMAIN, Buffer.of(e.kind === 'account' ? 1 : 2), seq, lp8(e.userId)]);
  if (e.kind === 'deleted') return common;
  const ids = [...e.deviceIds].sort();
  const count = Buffer.alloc(2);
  count.writeUInt16BE(ids.length);
  return Buffer.concat([common, lp8(e.username), Buffer.of(32), e.identityKey, count, ...ids.map(lp8)]);
}

/**
 * A release manifest entry (crypto/src/kt/release.ts): domain ‖ 3 ‖ u32 0 ‖ keyId ‖ 32 ‖ SHA-256 of the manifest
 * bytes as served.
 */
export function encodeReleaseKtEntry(keyId: string, manifestHash: Bytes): Buffer {
  if (manifestHash.length !== 32) throw new Error('a release entry names a 32-byte hash');
  return Buffer.concat([ENTRY_DOMAIN, Buffer.of(3), Buffer.alloc(4), lp8(keyId), Buffer.of(32), manifestHash]);
}

function sha256(...parts: Bytes[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export const leafHash = (entry: Bytes): Buffer => sha256(Buffer.of(0), entry);
export const nodeHash = (left: Bytes, right: Bytes): Buffer => sha256(Buffer.of(1), left, right);
export const EMPTY_ROOT = sha256();

export interface NodeKey {
  level: number;
  index: number;
}

/** The nodes appending leaf `index` completes need these stored siblings (oldest level first). */
export function appendSiblings(index: number): NodeKey[] {
  const keys: NodeKey[] = [];
  for (let j = index, level = 0; j % 2 === 1; j = Math.floor(j / 2), level += 1) {
    keys.push({ level, index: j - 1 });
  }
  return keys;
}

/** The nodes leaf `index` (hash `hash`) completes, itself first, given its siblings from `appendSiblings`. */
export function appendNodes(
  index: number,
  hash: Bytes,
  siblings: Bytes[],
): { level: number; index: number; hash: Bytes }[] {
  const out = [{ level: 0, index, hash }];
  let h = hash;
  let j = index;
  siblings.forEach((s, level) => {
    h = nodeHash(s, h);
    j = Math.floor(j / 2);
    out.push({ level: level + 1, index: j, hash: h });
  });
  return out;
}

/** Reads one stored perfect-subtree node. */
export type NodeReader = (level: number, index: number) => Bytes;

const largestPowerBelow = (n: number): number => 2 ** Math.floor(Math.log2(n - 1));

/** MTH(D[start:end]) from perfect subtrees (start is always aligned in the RFC's recursion). */
function subtree(node: NodeReader, start: number, end: number): Bytes {
  const n = end - start;
  if (n === 0) return EMPTY_ROOT;
  const level = Math.log2(n);
  if (Number.isInteger(level)) return node(level, start / n);
  const k = largestPowerBelow(n);
  return nodeHash(subtree(node, start, start + k), subtree(node, start + k, end));
}

/** The root of the tree of the first `size` leaves. */
export function rootOf(node: NodeReader, size: number): Bytes {
  return subtree(node, 0, size);
}

/** PATH(m, D[start:end]) of RFC 9162 2.1.3.1. */
function path(node: NodeReader, m: number, start: number, end: number): Bytes[] {
  const n = end - start;
  if (n <= 1) return [];
  const k = largestPowerBelow(n);
  return m < k
    ? [...path(node, m, start, start + k), subtree(node, start + k, end)]
    : [...path(node, m - k, start + k, end), subtree(node, start, start + k)];
}

/** SUBPROOF(m, D[start:end], b) of RFC 9162 2.1.4.1. */
function subproof(node: NodeReader, m: number, start: number, end: number, b: boolean): Bytes[] {
  const n = end - start;
  if (m === n) return b ? [] : [subtree(node, start, end)];
  const k = largestPowerBelow(n);
  return m <= k
    ? [...subproof(node, m, start, start + k, b), subtree(node, start + k, end)]
    : [...subproof(node, m - k, start + k, end, false), subtree(node, start, start + k)];
}

export function inclusionProof(node: NodeReader, index: number, size: number): Bytes[] {
  return path(node, index, 0, size);
}

/** The consistency proof from `size1` to `size2` (empty when size1 is 0 or equal to size2). */
export function consistencyProof(node: NodeReader, size1: number, size2: number): Bytes[] {
  if (size1 === 0 || size1 === size2) return [];
  return subproof(node, size1, 0, size2, true);
}

/**
 * Runs a computation over stored nodes in two passes: the first records which nodes it reads (answering zeros),
 * then `fetch` loads them all in one go, and the second computes with them. O(log² n) nodes at most.
 */
export async function withNodes<T>(
  fetch: (keys: NodeKey[]) => Promise<{ level: number; index: number; hash: Bytes }[]>,
  compute: (node: NodeReader) => T,
): Promise<T> {
  const wanted = new Map<string, NodeKey>();
  const zero = Buffer.alloc(32);
  compute((level, index) => {
    wanted.set(`${level}:${index}`, { level, index });
    return zero;
  });
  const found = new Map((await fetch([...wanted.values()])).map((n) => [`${n.level}:${n.index}`, n.hash]));
  return compute((level, index) => {
    const hash = found.get(`${level}:${index}`);
    if (!hash) throw new Error(`key transparency node ${level}:${index} is missing from the store`);
    return hash;
  });
}
