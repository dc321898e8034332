// Device names sealed for the account's own devices (issue #14): what the relay stores says nothing, and opens only
// with the account's backup key, for the same user and device.

import { beforeAll, describe, expect, it } from 'vitest';
import { generateBackupKey, isCryptoError, openDeviceName, ready, sealDeviceName } from '../src/index.js';

const USER = 'uuuuuuuuuuuuuuuuuuuuuA';
const DEVICE = 'dddddddddddddddddddddA';
const OTHER_DEVICE = 'eeeeeeeeeeeeeeeeeeeeeA';

beforeAll(async () => {
  await ready();
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isCryptoError(e) ? e.code : 'not a CryptoError';
  }
  return undefined;
}

describe('device names', () => {
  it('round-trips a name, and every sealed name has the same size whatever its length', () => {
    const key = generateBackupKey();
    const short = sealDeviceName(key, USER, DEVICE, 'PC');
    const long = sealDeviceName(key, USER, DEVICE, 'Chromium on Linux at the office, second floor');
    expect(openDeviceName(key, USER, DEVICE, short)).toBe('PC');
    expect(short.length).toBe(long.length);
    expect(short.length).toBeLessThanOrEqual(256);
  });

  it('never carries the name in clear', () => {
    const sealed = sealDeviceName(generateBackupKey(), USER, DEVICE, 'Chromium on Linux');
    expect(Buffer.from(sealed).includes(Buffer.from('Chromium'))).toBe(false);
  });

  it('does not open with another key, for another device, or after tampering', () => {
    const key = generateBackupKey();
    const sealed = sealDeviceName(key, USER, DEVICE, 'Laptop');
    expect(codeOf(() => openDeviceName(generateBackupKey(), USER, DEVICE, sealed))).toBe('decrypt_failed');
    expect(codeOf(() => openDeviceName(key, USER, OTHER_DEVICE, sealed))).toBe('decrypt_failed');
    const flipped = sealed.slice();
    flipped[40] = (flipped[40] ?? 0) ^ 1;
    expect(codeOf(() => openDeviceName(key, USER, DEVICE, flipped))).toBe('decrypt_failed');
    expect(codeOf(() => openDeviceName(key, USER, DEVICE, sealed.subarray(0, 50)))).toBe('decrypt_failed');
  });

  it('refuses an empty name and one over 64 bytes', () => {
    const key = generateBackupKey();
    expect(codeOf(() => sealDeviceName(key, USER, DEVICE, '   '))).toBe('bad_input');
    expect(codeOf(() => sealDeviceName(key, USER, DEVICE, 'x'.repeat(65)))).toBe('bad_input');
    expect(codeOf(() => sealDeviceName(key.subarray(0, 16), USER, DEVICE, 'x'))).toBe('bad_input');
  });
});
