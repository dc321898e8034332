// Safety numbers: Signal's numeric fingerprint format over BLAKE2b-512, and the QR payload.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateIdentity, safetyNumber, toBase64Url, verifySafetyNumberQr } from '../src/index.js';
import { expectCode } from './helpers.js';

/** Independent re-implementation with Node's BLAKE2b-512, straight from the description in the README. */
function referenceDigits(userId: string, key: Uint8Array): string {
  let hash = Buffer.concat([Buffer.from([0, 0]), key, Buffer.from(userId, 'utf8')]);
  for (let i = 0; i < 5200; i++) hash = createHash('blake2b512').update(hash).update(key).digest();
  let out = '';
  for (let i = 0; i < 30; i += 5) out += String(hash.readUIntBE(i, 5) % 100000).padStart(5, '0');
  return out;
}

describe('safety numbers', () => {
  const alice = { userId: 'u-alice', key: generateIdentityKey() };
  const bob = { userId: 'u-bob', key: generateIdentityKey() };

  it('is 60 digits and equal on both sides', () => {
    const a = safetyNumber({
      localUserId: alice.userId,
      localIdentityKey: alice.key(),
      peerUserId: bob.userId,
      peerIdentityKey: toBase64Url(bob.key()),
    });
    const b = safetyNumber({
      localUserId: bob.userId,
      localIdentityKey: bob.key(),
      peerUserId: alice.userId,
      peerIdentityKey: alice.key(),
    });
    expect(a.digits).toMatch(/^\d{60}$/);
    expect(a.digits).toBe(b.digits);
    expect(a.groups).toHaveLength(12);
    expect(a.groups.join('')).toBe(a.digits);
  });

  it('matches an independent computation (5200 iterations of BLAKE2b-512, halves sorted)', () => {
    const a = referenceDigits(alice.userId, alice.key());
    const b = referenceDigits(bob.userId, bob.key());
    const expected = a < b ? a + b : b + a;
    const got = safetyNumber({
      localUserId: alice.userId,
      localIdentityKey: alice.key(),
      peerUserId: bob.userId,
      peerIdentityKey: bob.key(),
    });
    expect(got.digits).toBe(expected);
  });

  it('changes when an identity key or a user id changes', () => {
    const base = { localUserId: 'a', localIdentityKey: alice.key(), peerUserId: 'b', peerIdentityKey: bob.key() };
    const digits = safetyNumber(base).digits;
    expect(safetyNumber({ ...base, peerIdentityKey: generateIdentity().publicKey }).digits).not.toBe(digits);
    expect(safetyNumber({ ...base, peerUserId: 'c' }).digits).not.toBe(digits);
  });

  it('verifies the QR code scanned from the other side, and nothing else', () => {
    const mine = safetyNumber({
      localUserId: 'a',
      localIdentityKey: alice.key(),
      peerUserId: 'b',
      peerIdentityKey: bob.key(),
    });
    const theirs = safetyNumber({
      localUserId: 'b',
      localIdentityKey: bob.key(),
      peerUserId: 'a',
      peerIdentityKey: alice.key(),
    });
    expect(mine.qr).toHaveLength(65);
    expect(verifySafetyNumberQr(mine, theirs.qr)).toBe(true);
    expect(verifySafetyNumberQr(theirs, mine.qr)).toBe(true);
    expect(verifySafetyNumberQr(mine, mine.qr)).toBe(false);
    const mitm = safetyNumber({
      localUserId: 'b',
      localIdentityKey: generateIdentity().publicKey,
      peerUserId: 'a',
      peerIdentityKey: alice.key(),
    });
    expect(verifySafetyNumberQr(mine, mitm.qr)).toBe(false);
    expectCode(() => verifySafetyNumberQr(mine, theirs.qr.subarray(1)), 'bad_input');
    const v2 = theirs.qr.slice();
    v2[0] = 2;
    expectCode(() => verifySafetyNumberQr(mine, v2), 'unsupported_version');
  });
});

function generateIdentityKey() {
  let key: Uint8Array | undefined;
  return () => (key ??= generateIdentity().publicKey);
}
