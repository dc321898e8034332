// ML-KEM-768 (FIPS 203) as the library uses it through libsodium: published known answers for encapsulation and
// decapsulation (C2SP/CCTV), and a cross-check of key generation, encapsulation and decapsulation, implicit
// rejection included, against an independent implementation (@noble/post-quantum) on the same seeds.

import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { describe, expect, it } from 'vitest';
import { CryptoError } from '../src/index.js';
import { kemDecapsulate, kemEncapsulate } from '../src/kem.js';
import { sodium } from '../src/sodium.js';
import vectors from './vectors/mlkem768-cctv.json' with { type: 'json' };

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('ML-KEM-768', () => {
  it('encapsulates and decapsulates the published C2SP/CCTV vector byte for byte', () => {
    const out = sodium().crypto_kem_mlkem768_enc_deterministic(hex(vectors.ek), hex(vectors.m));
    expect(toHex(out.ciphertext)).toBe(vectors.c);
    expect(toHex(out.sharedSecret)).toBe(vectors.K);
    expect(toHex(kemDecapsulate(hex(vectors.c), hex(vectors.dk)))).toBe(vectors.K);
  });

  it('rejects a changed ciphertext implicitly: another secret, no error', () => {
    const c = hex(vectors.c);
    c[17]! ^= 0x40;
    const k = kemDecapsulate(c, hex(vectors.dk));
    expect(k.length).toBe(32);
    expect(toHex(k)).not.toBe(vectors.K);
  });

  it('refuses an encapsulation key whose coefficient is not below q (the FIPS 203 input check)', () => {
    const ek = hex(vectors.ek);
    ek[0] = 0xff;
    ek[1] = ek[1]! | 0x0f; // the first 12-bit coefficient becomes 4095 ≥ 3329
    expect(() => kemEncapsulate(ek)).toThrow(CryptoError);
    expect(() => kemEncapsulate(ek)).toThrow(/not a valid ML-KEM-768 key/);
  });

  it('agrees with @noble/post-quantum on 64 random seeds: keys, ciphertexts, secrets and implicit rejections', () => {
    for (let i = 0; i < 64; i++) {
      const seed = globalThis.crypto.getRandomValues(new Uint8Array(64)); // d ‖ z
      const m = globalThis.crypto.getRandomValues(new Uint8Array(32));
      const ours = sodium().crypto_kem_mlkem768_seed_keypair(seed);
      const theirs = ml_kem768.keygen(seed);
      expect(toHex(ours.publicKey)).toBe(toHex(theirs.publicKey));
      expect(toHex(ours.privateKey)).toBe(toHex(theirs.secretKey));
      const enc = sodium().crypto_kem_mlkem768_enc_deterministic(ours.publicKey, m);
      const enc2 = ml_kem768.encapsulate(theirs.publicKey, m);
      expect(toHex(enc.ciphertext)).toBe(toHex(enc2.cipherText));
      expect(toHex(enc.sharedSecret)).toBe(toHex(enc2.sharedSecret));
      const bogus = globalThis.crypto.getRandomValues(new Uint8Array(1088));
      expect(toHex(kemDecapsulate(bogus, ours.privateKey))).toBe(toHex(ml_kem768.decapsulate(bogus, theirs.secretKey)));
    }
  });
});
