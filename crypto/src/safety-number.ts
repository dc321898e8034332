// Safety numbers: Signal's numeric fingerprint (5200 iterations, 30 digits per party, sorted) with BLAKE2b-512.

import { concat, constantTimeEqual, utf8 } from './bytes.js';
import { CryptoError } from './errors.js';
import { KEY_BYTES } from './keys.js';
import { sodium } from './sodium.js';
import type { SafetyNumber } from './types.js';
import { bytesArg, idArg, keyArg } from './validate.js';

export const SAFETY_NUMBER_ITERATIONS = 5200;
/** Signal's fingerprint version (two bytes, big-endian) prefixed to the first hash input. */
const FINGERPRINT_VERSION = Uint8Array.of(0, 0);
export const QR_VERSION = 1;
const QR_FINGERPRINT_BYTES = 32;
export const QR_BYTES = 1 + 2 * QR_FINGERPRINT_BYTES;

/** hash₀ = version ‖ key ‖ userId; hashᵢ₊₁ = BLAKE2b-512(hashᵢ ‖ key), 5200 times. */
export function fingerprint(userId: string, identityKey: Uint8Array): Uint8Array {
  const lib = sodium();
  let hash = concat(FINGERPRINT_VERSION, identityKey, utf8(userId));
  for (let i = 0; i < SAFETY_NUMBER_ITERATIONS; i++) hash = lib.crypto_generichash(64, concat(hash, identityKey), null);
  return hash;
}

/** 30 digits: six 5-byte big-endian chunks, each mod 100000, zero-padded to 5 digits. */
export function fingerprintDigits(hash: Uint8Array): string {
  let out = '';
  for (let i = 0; i < 30; i += 5) {
    let chunk = 0;
    for (let j = 0; j < 5; j++) chunk = chunk * 256 + hash[i + j]!;
    out += String(chunk % 100000).padStart(5, '0');
  }
  return out;
}

export function safetyNumber(p: {
  localUserId: string;
  localIdentityKey: Uint8Array | string;
  peerUserId: string;
  peerIdentityKey: Uint8Array | string;
}): SafetyNumber {
  if (typeof p !== 'object' || p === null) throw new CryptoError('bad_input', 'params must be an object');
  const local = fingerprint(
    idArg(p.localUserId, 'localUserId'),
    keyArg(p.localIdentityKey, 'localIdentityKey', KEY_BYTES),
  );
  const peer = fingerprint(idArg(p.peerUserId, 'peerUserId'), keyArg(p.peerIdentityKey, 'peerIdentityKey', KEY_BYTES));
  const a = fingerprintDigits(local);
  const b = fingerprintDigits(peer);
  const digits = a < b ? a + b : b + a;
  const groups: string[] = [];
  for (let i = 0; i < 60; i += 5) groups.push(digits.slice(i, i + 5));
  const qr = concat(
    Uint8Array.of(QR_VERSION),
    local.subarray(0, QR_FINGERPRINT_BYTES),
    peer.subarray(0, QR_FINGERPRINT_BYTES),
  );
  return { digits, groups, qr };
}

export function verifySafetyNumberQr(ours: SafetyNumber, scanned: Uint8Array): boolean {
  const mine = bytesArg(ours?.qr, 'ours.qr', QR_BYTES);
  bytesArg(scanned, 'scanned');
  if (scanned.length !== QR_BYTES) throw new CryptoError('bad_input', `scanned must be ${QR_BYTES} bytes`);
  if (scanned[0] !== QR_VERSION)
    throw new CryptoError('unsupported_version', `QR version ${scanned[0]} is not supported`);
  const theirLocal = scanned.subarray(1, 1 + QR_FINGERPRINT_BYTES);
  const theirPeer = scanned.subarray(1 + QR_FINGERPRINT_BYTES);
  const myLocal = mine.subarray(1, 1 + QR_FINGERPRINT_BYTES);
  const myPeer = mine.subarray(1 + QR_FINGERPRINT_BYTES);
  const a = constantTimeEqual(theirLocal, myPeer);
  const b = constantTimeEqual(theirPeer, myLocal);
  return a && b;
}
