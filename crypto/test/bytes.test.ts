// Byte helpers: strict base64url, constant-time comparison, wiping.

import { describe, expect, it } from 'vitest';
import { constantTimeEqual, fromBase64Url, randomBytes, toBase64Url, wipe } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('base64url', () => {
  it('matches Node’s base64url for every length up to 66', () => {
    for (let n = 0; n <= 66; n++) {
      const data = randomBytes(n);
      const encoded = toBase64Url(data);
      expect(encoded).toBe(Buffer.from(data).toString('base64url'));
      expect(fromBase64Url(encoded)).toEqual(data);
    }
  });

  it('rejects padding, other alphabets, bad lengths and non-canonical trailing bits', () => {
    for (const bad of ['AA==', 'A+8', 'A/8', 'A', 'AB C', 'AB\n', 'ÄÄÄÄ'])
      expectCode(() => fromBase64Url(bad), 'bad_input');
    expectCode(() => fromBase64Url('AB'), 'bad_input'); // 'AB' leaves non-zero trailing bits
    expect(fromBase64Url('AA')).toEqual(new Uint8Array(1));
    expect(expectCode(() => fromBase64Url('AAAA', 2, 'salt'), 'bad_input').message).toMatch(/salt must encode 2 bytes/);
    expectCode(() => fromBase64Url(42 as unknown as string), 'bad_input');
  });
});

describe('byte utilities', () => {
  it('compares in constant time and handles different lengths', () => {
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1), Uint8Array.of(1, 2))).toBe(false);
  });

  it('wipes secrets in place', () => {
    const a = Uint8Array.of(1, 2, 3);
    wipe(a, null, undefined);
    expect(a).toEqual(new Uint8Array(3));
  });

  it('draws random bytes of the requested length', () => {
    expect(randomBytes(100_000)).toHaveLength(100_000);
    expect(toBase64Url(randomBytes(32))).not.toBe(toBase64Url(randomBytes(32)));
  });
});
