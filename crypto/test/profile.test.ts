import { beforeAll, describe, expect, it } from 'vitest';
import {
  CryptoError,
  createMessageId,
  deriveProfileKey,
  generateBackupKey,
  openProfile,
  randomBytes,
  ready,
  sealProfile,
  SEALED_PROFILE_MAX_BYTES,
} from '../src/index.js';

beforeAll(ready);

const userId = createMessageId();

describe('profiles', () => {
  it('derives the same profile key from the same backup key, and a different one from another', () => {
    const backup = generateBackupKey();
    expect(deriveProfileKey(backup)).toEqual(deriveProfileKey(backup));
    expect(deriveProfileKey(backup)).not.toEqual(deriveProfileKey(generateBackupKey()));
    expect(deriveProfileKey(backup)).not.toEqual(backup);
  });

  it('opens what it sealed: name and picture', () => {
    const key = randomBytes(32);
    const picture = randomBytes(5000);
    const sealed = sealProfile(key, userId, { name: 'Zoë 🦊', picture });
    expect(openProfile(key, userId, sealed)).toEqual({ name: 'Zoë 🦊', picture });
    expect(openProfile(key, userId, sealProfile(key, userId, { name: '', picture: null }))).toEqual({
      name: '',
      picture: null,
    });
  });

  it('gives the same sealed length whatever the name length', () => {
    const key = randomBytes(32);
    const lengths = ['', 'a', 'x'.repeat(64), '🦊'.repeat(64)].map(
      (name) => sealProfile(key, userId, { name, picture: null }).length,
    );
    expect(new Set(lengths).size).toBe(1);
  });

  it('never holds the name or picture in clear', () => {
    const key = randomBytes(32);
    const picture = new Uint8Array(3000).fill(0x5a);
    const sealed = Buffer.from(sealProfile(key, userId, { name: 'Rosalind Franklin', picture }));
    expect(sealed.includes(Buffer.from('Rosalind'))).toBe(false);
    expect(sealed.includes(Buffer.from(picture.subarray(0, 32)))).toBe(false);
  });

  it('refuses a wrong key, another user id, and any flipped byte', () => {
    const key = randomBytes(32);
    const sealed = sealProfile(key, userId, { name: 'ann', picture: null });
    expect(() => openProfile(randomBytes(32), userId, sealed)).toThrow(CryptoError);
    expect(() => openProfile(key, createMessageId(), sealed)).toThrow(/decrypt|authentication/);
    for (const at of [1, 30, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[at]! ^= 1;
      expect(() => openProfile(key, userId, bad)).toThrow(CryptoError);
    }
  });

  it('refuses names over 64 characters and pictures over 64 KiB', () => {
    const key = randomBytes(32);
    expect(() => sealProfile(key, userId, { name: 'x'.repeat(65), picture: null })).toThrow(/64 characters/);
    expect(() => sealProfile(key, userId, { name: '', picture: new Uint8Array(64 * 1024 + 1) })).toThrow(/65536 bytes/);
    const largest = sealProfile(key, userId, { name: '🦊'.repeat(64), picture: new Uint8Array(64 * 1024) });
    expect(largest.length).toBeLessThanOrEqual(SEALED_PROFILE_MAX_BYTES);
  });
});
