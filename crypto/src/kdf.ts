// BLAKE2b key derivation: every derivation is domain-separated by its own versioned label.

import { concat, utf8 } from './bytes.js';
import { sodium } from './sodium.js';

/** The labels of protocol version 1. Changing one changes the protocol. */
export const LABELS = {
  x3dh: 'WeConnect/X3DH/v1',
  associatedData: 'WeConnect/X3DH-AD/v1',
  root: 'WeConnect/ratchet/root/v1',
  messageKey: 'WeConnect/ratchet/message-key/v1',
  chainKey: 'WeConnect/ratchet/chain-key/v1',
  groupMessageKey: 'WeConnect/group/message-key/v1',
  groupChainKey: 'WeConnect/group/chain-key/v1',
  groupSignature: 'WeConnect/group/signature/v1',
  groupAd: 'WeConnect/group/ad/v1',
  backup: 'WeConnect/backup/v1',
  /** Format 2 of the key backup: the body under the random backup key, and that key under the wrap key. */
  accountBackup: 'WeConnect/backup/v2',
  backupKey: 'WeConnect/backup-key/v1',
  wrap: 'WeConnect/wrap/v1',
  /** PQXDH: the X3DH outputs and the ML-KEM shared secret; its own AD label binds the protocol version. */
  pqxdh: 'WeConnect/PQXDH/v1',
  pqxdhAd: 'WeConnect/PQXDH-AD/v1',
  kemPrekey: 'WeConnect/KEM-prekey/v1',
  /** Post-quantum rekeying: a ratchet step whose root KDF also takes an ML-KEM shared secret. */
  rootPq: 'WeConnect/ratchet/root-PQ/v1',
} as const;

const labelBytes = new Map<string, Uint8Array>();

/** `len(label) ‖ label` (cached). */
export function labelPrefix(label: string): Uint8Array {
  let b = labelBytes.get(label);
  if (!b) {
    const raw = utf8(label);
    b = concat(Uint8Array.of(raw.length), raw);
    labelBytes.set(label, b);
  }
  return b;
}

/** BLAKE2b(outLen, key)(len(label) ‖ label ‖ parts…). `key` is null or 16–64 bytes. */
export function labeledHash(outLen: number, key: Uint8Array | null, label: string, ...parts: Uint8Array[]): Uint8Array {
  const message = parts.length === 0 ? labelPrefix(label) : concat(labelPrefix(label), ...parts);
  return sodium().crypto_generichash(outLen, message, key);
}

/** Root KDF: (root key, DH output) → (new root key, chain key). */
export function kdfRoot(rootKey: Uint8Array, dhOutput: Uint8Array): { rootKey: Uint8Array; chainKey: Uint8Array } {
  const out = labeledHash(64, rootKey, LABELS.root, dhOutput);
  const result = { rootKey: out.slice(0, 32), chainKey: out.slice(32, 64) };
  out.fill(0);
  return result;
}

/**
 * Root KDF of a post-quantum rekeying step: (root key, DH output, ML-KEM shared secret) → (new root key, chain key),
 * under its own label, so it never equals a classic step's output.
 */
export function kdfRootPq(
  rootKey: Uint8Array,
  dhOutput: Uint8Array,
  kemSecret: Uint8Array,
): { rootKey: Uint8Array; chainKey: Uint8Array } {
  const out = labeledHash(64, rootKey, LABELS.rootPq, dhOutput, kemSecret);
  const result = { rootKey: out.slice(0, 32), chainKey: out.slice(32, 64) };
  out.fill(0);
  return result;
}

/** Chain KDF: chain key → (message key, next chain key), with distinct labels for the two outputs. */
export function kdfChain(chainKey: Uint8Array, group: boolean): { messageKey: Uint8Array; nextChainKey: Uint8Array } {
  return {
    messageKey: labeledHash(32, chainKey, group ? LABELS.groupMessageKey : LABELS.messageKey),
    nextChainKey: labeledHash(32, chainKey, group ? LABELS.groupChainKey : LABELS.chainKey),
  };
}
