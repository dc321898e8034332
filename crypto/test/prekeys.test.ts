// Identity keys, signed and one-time prekeys, wire shapes and bundle verification.

import { describe, expect, it } from 'vitest';
import {
  createAccountKeys,
  createDeviceKeys,
  fromBase64Url,
  generateIdentity,
  generateOneTimePrekeys,
  generateSignedPrekey,
  identityKeyToWire,
  toBase64Url,
  verifyPrekeyBundle,
  verifySignedPrekey,
} from '../src/index.js';
import { LOW_ORDER_U } from '../src/keys.js';
import { sodium } from '../src/sodium.js';
import { expectCode } from './helpers.js';

const lowOrderKeys = LOW_ORDER_U.map((u) => {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++) b[i] = Number((u >> BigInt(8 * i)) & 0xffn);
  return toBase64Url(b);
});

describe('identity keys', () => {
  it('derives the X25519 form with the libsodium conversion', () => {
    const id = generateIdentity();
    expect(id.dhPublicKey).toEqual(sodium().crypto_sign_ed25519_pk_to_curve25519(id.publicKey));
    expect(sodium().crypto_scalarmult_base(id.dhPrivateKey)).toEqual(id.dhPublicKey);
    expect(identityKeyToWire(id)).toBe(toBase64Url(id.publicKey));
  });
});

describe('prekeys', () => {
  it('creates account keys in the PROTOCOL.md wire shapes', () => {
    const keys = createAccountKeys();
    expect(keys.oneTimePrekeys).toHaveLength(100);
    expect(fromBase64Url(keys.upload.identityKey, 32)).toEqual(keys.identity.publicKey);
    expect(Object.keys(keys.upload.signedPrekey).sort()).toEqual(['keyId', 'publicKey', 'signature']);
    expect(fromBase64Url(keys.upload.signedPrekey.signature, 64)).toHaveLength(64);
    expect(keys.upload.oneTimePrekeys[0]).toEqual({
      keyId: 1,
      publicKey: toBase64Url(keys.oneTimePrekeys[0]!.keyPair.publicKey),
    });
    expect(new Set(keys.upload.oneTimePrekeys.map((k) => k.keyId)).size).toBe(100);
  });

  it('signs exactly the 32 public-key bytes with the identity key, as the relay verifies', () => {
    const id = generateIdentity();
    const spk = generateSignedPrekey(id, 7);
    expect(sodium().crypto_sign_verify_detached(spk.signature, spk.keyPair.publicKey, id.publicKey)).toBe(true);
    verifySignedPrekey(id.publicKey, {
      keyId: 7,
      publicKey: toBase64Url(spk.keyPair.publicKey),
      signature: toBase64Url(spk.signature),
    });
  });

  it('makes batches of one-time prekeys with consecutive ids and distinct keys', () => {
    const batch = generateOneTimePrekeys(101, 20);
    expect(batch.map((k) => k.keyId)).toEqual(Array.from({ length: 20 }, (_, i) => 101 + i));
    expect(new Set(batch.map((k) => toBase64Url(k.keyPair.publicKey))).size).toBe(20);
    expectCode(() => generateOneTimePrekeys(0xffffffff, 2), 'bad_input');
  });

  it('creates keys for another device of an existing identity', () => {
    const first = createAccountKeys({ oneTimePrekeyCount: 1 });
    const second = createDeviceKeys(first.identity, { oneTimePrekeyCount: 1 });
    expect(second.upload.identityKey).toBe(first.upload.identityKey);
    expect(second.upload.signedPrekey.publicKey).not.toBe(first.upload.signedPrekey.publicKey);
  });
});

describe('prekey bundles', () => {
  const keys = createAccountKeysLazy();

  it('verifies a good bundle, with or without a one-time prekey', () => {
    const k = keys();
    const b = verifyPrekeyBundle({
      identityKey: k.upload.identityKey,
      signedPrekey: k.upload.signedPrekey,
      oneTimePrekey: k.upload.oneTimePrekeys[0],
    });
    expect(b.identityKey).toEqual(k.identity.publicKey);
    expect(b.oneTimePrekey?.keyId).toBe(1);
    expect(verifyPrekeyBundle({ ...k.upload, oneTimePrekey: null }).oneTimePrekey).toBeNull();
  });

  it('rejects a bundle with a bad signature', () => {
    const k = keys();
    const sig = fromBase64Url(k.upload.signedPrekey.signature, 64);
    sig[5]! ^= 4;
    const bad = { ...k.upload.signedPrekey, signature: toBase64Url(sig) };
    expectCode(
      () => verifyPrekeyBundle({ identityKey: k.upload.identityKey, signedPrekey: bad, oneTimePrekey: null }),
      'invalid_signature',
    );
    const other = createAccountKeys({ oneTimePrekeyCount: 0 });
    expectCode(
      () =>
        verifyPrekeyBundle({
          identityKey: other.upload.identityKey,
          signedPrekey: k.upload.signedPrekey,
          oneTimePrekey: null,
        }),
      'invalid_signature',
    );
  });

  it('rejects all-zero and low-order prekeys even when validly signed', () => {
    const k = keys();
    for (const publicKey of lowOrderKeys) {
      const signature = toBase64Url(sodium().crypto_sign_detached(fromBase64Url(publicKey, 32), k.identity.signingKey));
      expectCode(
        () =>
          verifyPrekeyBundle({
            identityKey: k.upload.identityKey,
            signedPrekey: { keyId: 1, publicKey, signature },
            oneTimePrekey: null,
          }),
        'invalid_key',
      );
      expectCode(
        () =>
          verifyPrekeyBundle({
            identityKey: k.upload.identityKey,
            signedPrekey: k.upload.signedPrekey,
            oneTimePrekey: { keyId: 3, publicKey },
          }),
        'invalid_key',
      );
    }
  });

  it('rejects all-zero and low-order identity keys', () => {
    const k = keys();
    for (const identityKey of [toBase64Url(new Uint8Array(32)), ...lowOrderKeys.slice(1, 2)]) {
      expectCode(
        () => verifyPrekeyBundle({ identityKey, signedPrekey: k.upload.signedPrekey, oneTimePrekey: null }),
        'invalid_key',
      );
    }
    // The Ed25519 identity element (small order) encoded as 01 00…00.
    const identityElement = new Uint8Array(32);
    identityElement[0] = 1;
    expectCode(
      () =>
        verifyPrekeyBundle({
          identityKey: toBase64Url(identityElement),
          signedPrekey: k.upload.signedPrekey,
          oneTimePrekey: null,
        }),
      'invalid_key',
    );
  });

  it('rejects malformed bundles with an error naming the field', () => {
    const k = keys();
    const cases: [unknown, RegExp][] = [
      [{ ...k.upload.signedPrekey, keyId: -1 }, /signedPrekey\.keyId/],
      [{ ...k.upload.signedPrekey, publicKey: 'AAAA' }, /signedPrekey\.publicKey/],
      [{ ...k.upload.signedPrekey, extra: 1 }, /unexpected field/],
      [{ keyId: 1, publicKey: k.upload.signedPrekey.publicKey }, /signature/],
      ['nope', /signedPrekey/],
    ];
    for (const [signedPrekey, pattern] of cases) {
      const err = expectCode(
        () => verifyPrekeyBundle({ identityKey: k.upload.identityKey, signedPrekey, oneTimePrekey: null }),
        'bad_input',
      );
      expect(err.message).toMatch(pattern);
    }
    expectCode(
      () =>
        verifyPrekeyBundle({
          identityKey: `${k.upload.identityKey}=`,
          signedPrekey: k.upload.signedPrekey,
          oneTimePrekey: null,
        }),
      'bad_input',
    );
  });
});

function createAccountKeysLazy() {
  let k: ReturnType<typeof createAccountKeys> | undefined;
  return () => (k ??= createAccountKeys({ oneTimePrekeyCount: 2 }));
}
