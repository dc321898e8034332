// Known-answer tests for the libsodium primitives the protocol stands on: a broken build must fail loudly here.

import { describe, expect, it } from 'vitest';
import { isLowOrderX25519, LOW_ORDER_U } from '../src/keys.js';
import { sodium } from '../src/sodium.js';
import { hex, text, toHex } from './helpers.js';

describe('X25519 (RFC 7748 §6.1)', () => {
  const alicePrivate = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicePublic = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
  const bobPrivate = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobPublic = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

  it('derives both public keys from the private keys', () => {
    expect(toHex(sodium().crypto_scalarmult_base(alicePrivate))).toBe(alicePublic);
    expect(toHex(sodium().crypto_scalarmult_base(bobPrivate))).toBe(bobPublic);
  });

  it('computes the same shared secret on both sides', () => {
    expect(toHex(sodium().crypto_scalarmult(alicePrivate, hex(bobPublic)))).toBe(shared);
    expect(toHex(sodium().crypto_scalarmult(bobPrivate, hex(alicePublic)))).toBe(shared);
  });
});

describe('Ed25519 (RFC 8032 §7.1 tests 1–3)', () => {
  const vectors = [
    {
      name: 'TEST 1 (empty message)',
      seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      message: '',
      signature:
        'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155' +
        '5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    },
    {
      name: 'TEST 2 (one byte)',
      seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
      publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
      message: '72',
      signature:
        '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da' +
        '085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    },
    {
      name: 'TEST 3 (two bytes)',
      seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
      publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
      message: 'af82',
      signature:
        '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac' +
        '18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
    },
  ];

  for (const v of vectors) {
    it(`signs and verifies ${v.name}`, () => {
      const kp = sodium().crypto_sign_seed_keypair(hex(v.seed));
      expect(toHex(kp.publicKey)).toBe(v.publicKey);
      const sig = sodium().crypto_sign_detached(hex(v.message), kp.privateKey);
      expect(toHex(sig)).toBe(v.signature);
      expect(sodium().crypto_sign_verify_detached(hex(v.signature), hex(v.message), hex(v.publicKey))).toBe(true);
      const flipped = hex(v.signature);
      flipped[0]! ^= 1;
      expect(sodium().crypto_sign_verify_detached(flipped, hex(v.message), hex(v.publicKey))).toBe(false);
    });
  }
});

describe('BLAKE2b (RFC 7693 Appendix A)', () => {
  it('hashes "abc" to the published BLAKE2b-512 digest', () => {
    expect(toHex(sodium().crypto_generichash(64, text('abc'), null))).toBe(
      'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1' +
        '7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923',
    );
  });
});

describe('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §A.3.1)', () => {
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const plaintext = text(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const expected =
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb' +
    '731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
    '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9' +
    '21f9664c97637da9768812f615c68b13b52e' +
    'c0875924c1c7987947deafd8780acf49';

  it('encrypts to the published ciphertext and tag', () => {
    const out = sodium().crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key);
    expect(toHex(out)).toBe(expected);
  });

  it('decrypts it back and rejects a flipped tag bit', () => {
    const ct = hex(expected);
    expect(sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(null, ct, aad, nonce, key)).toEqual(plaintext);
    ct[ct.length - 1]! ^= 0x80;
    expect(() => sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(null, ct, aad, nonce, key)).toThrow();
  });
});

describe('the low-order X25519 list', () => {
  const p = (1n << 255n) - 19n;
  const A = 486662n;
  const mod = (n: bigint) => ((n % p) + p) % p;

  /** x-only doubling on the Montgomery curve (and its twist): (X:Z) → (X²−Z²)² : 4XZ(X²+AXZ+Z²). */
  function double([x, z]: [bigint, bigint]): [bigint, bigint] {
    const x2 = mod(x * x);
    const z2 = mod(z * z);
    return [mod((x2 - z2) * (x2 - z2)), mod(4n * x * z * (x2 + A * x * z + z2))];
  }

  function orderDividesEight(u: bigint): boolean {
    let point: [bigint, bigint] = [mod(u), 1n];
    for (let i = 0; i < 3; i++) point = double(point);
    return point[1] === 0n;
  }

  it('contains only u-coordinates whose order divides 8', () => {
    expect(new Set(LOW_ORDER_U).size).toBe(LOW_ORDER_U.length);
    for (const u of LOW_ORDER_U) expect(orderDividesEight(u), `u = ${u}`).toBe(true);
  });

  it('does not flag the base point or a random public key', () => {
    expect(orderDividesEight(9n)).toBe(false);
    const base = new Uint8Array(32);
    base[0] = 9;
    expect(isLowOrderX25519(base)).toBe(false);
    expect(isLowOrderX25519(sodium().crypto_scalarmult_base(sodium().randombytes_buf(32)))).toBe(false);
  });

  it('flags every listed point, also with the ignored top bit set', () => {
    for (const u of LOW_ORDER_U) {
      const bytes = new Uint8Array(32);
      for (let i = 0; i < 32; i++) bytes[i] = Number((u >> BigInt(8 * i)) & 0xffn);
      expect(isLowOrderX25519(bytes)).toBe(true);
      bytes[31]! |= 0x80;
      expect(isLowOrderX25519(bytes)).toBe(true);
    }
  });
});
