// Password handling: Argon2id split into auth and wrap keys, the key backup, and local wrapping.
// Argon2id at 64 MiB costs 1–2 s, so the keys are derived twice in the whole file.

import { beforeAll, describe, expect, it } from 'vitest';
import {
  derivePasswordKeys,
  fromBase64Url,
  generateIdentity,
  generateSalt,
  KDF_PARAMS,
  openBackup,
  type PasswordKeys,
  sealBackup,
  toBase64Url,
  unwrapJson,
  unwrapSecret,
  wrapJson,
  wrapSecret,
} from '../src/index.js';
import { sodium } from '../src/sodium.js';
import { expectCode, text } from './helpers.js';

const salt = Uint8Array.from({ length: 16 }, (_, i) => i);
let keys: PasswordKeys;

beforeAll(() => {
  keys = derivePasswordKeys('correct horse battery staple', { salt, ...KDF_PARAMS });
});

describe('password keys', () => {
  it('uses Argon2id with opslimit 3 and 64 MiB, then crypto_kdf into two different keys', () => {
    expect(KDF_PARAMS).toEqual({ opslimit: 3, memlimit: 64 * 1024 * 1024 });
    const lib = sodium();
    const master = lib.crypto_pwhash(
      32,
      text('correct horse battery staple'),
      salt,
      3,
      64 * 1024 * 1024,
      lib.crypto_pwhash_ALG_ARGON2ID13,
    );
    expect(keys.authKey).toEqual(lib.crypto_kdf_derive_from_key(32, 1, 'WCpasswd', master));
    expect(keys.wrapKey).toEqual(lib.crypto_kdf_derive_from_key(32, 2, 'WCpasswd', master));
    expect(keys.authKey).not.toEqual(keys.wrapKey);
    expect(keys.authKeyBase64Url).toBe(toBase64Url(keys.authKey));
    expect(fromBase64Url(keys.authKeyBase64Url, 32)).toEqual(keys.authKey);
  });

  it('is deterministic per salt and different for another salt or password', () => {
    const again = derivePasswordKeys('correct horse battery staple', { salt: toBase64Url(salt), ...KDF_PARAMS });
    expect(again.authKey).toEqual(keys.authKey);
    expect(again.wrapKey).toEqual(keys.wrapKey);
    // Cheaper differing cases: the same split with a different salt must differ, checked at the crypto_pwhash level.
    const lib = sodium();
    const otherSalt = generateSalt();
    expect(otherSalt).toHaveLength(16);
    const a = lib.crypto_pwhash(32, text('pw'), salt, 1, 8192, lib.crypto_pwhash_ALG_ARGON2ID13);
    const b = lib.crypto_pwhash(32, text('pw'), otherSalt, 1, 8192, lib.crypto_pwhash_ALG_ARGON2ID13);
    expect(a).not.toEqual(b);
  });

  it('refuses parameters below protocol version 1 and malformed salts before hashing', () => {
    expectCode(() => derivePasswordKeys('pw', { salt, opslimit: 2, memlimit: KDF_PARAMS.memlimit }), 'bad_input');
    expectCode(() => derivePasswordKeys('pw', { salt, opslimit: 3, memlimit: 1024 * 1024 }), 'bad_input');
    expectCode(() => derivePasswordKeys('pw', { salt, opslimit: 3, memlimit: 8 * 1024 * 1024 * 1024 }), 'bad_input');
    expect(
      expectCode(() => derivePasswordKeys('pw', { salt: salt.subarray(1), ...KDF_PARAMS }), 'bad_input').message,
    ).toMatch(/salt/);
    expectCode(() => derivePasswordKeys('', { salt, ...KDF_PARAMS }), 'bad_input');
  });
});

describe('key backup', () => {
  it('round-trips the identity and the verification state', () => {
    const identity = generateIdentity();
    const contacts = [
      { userId: 'bob', identityKey: toBase64Url(generateIdentity().publicKey), verified: true },
      { userId: 'carol', identityKey: toBase64Url(generateIdentity().publicKey), verified: false },
    ];
    const sealed = sealBackup(keys.wrapKey, { identity, contacts });
    const opened = openBackup(keys.wrapKey, sealed);
    expect(opened.identity.publicKey).toEqual(identity.publicKey);
    expect(opened.identity.signingKey).toEqual(identity.signingKey);
    expect(opened.identity.dhPrivateKey).toEqual(identity.dhPrivateKey);
    expect(opened.contacts).toEqual(contacts);
  });

  it('rejects a tampered backup, a wrong key and a truncated one', () => {
    const sealed = sealBackup(keys.wrapKey, { identity: generateIdentity(), contacts: [] });
    for (const i of [1, 30, sealed.length - 1]) {
      const t = sealed.slice();
      t[i]! ^= 1;
      expectCode(() => openBackup(keys.wrapKey, t), 'decrypt_failed');
    }
    expectCode(() => openBackup(keys.authKey, sealed), 'decrypt_failed');
    expectCode(() => openBackup(keys.wrapKey, sealed.subarray(0, 30)), 'decrypt_failed');
    const v2 = sealed.slice();
    v2[0] = 2;
    expectCode(() => openBackup(keys.wrapKey, v2), 'unsupported_version');
  });

  it('validates contacts when sealing', () => {
    expectCode(
      () =>
        sealBackup(keys.wrapKey, {
          identity: generateIdentity(),
          contacts: [{ userId: 'x', identityKey: 'short', verified: true }],
        }),
      'bad_input',
    );
  });
});

describe('wrapping local secrets', () => {
  it('round-trips bytes and JSON under a context', () => {
    const secret = text('private key material');
    expect(unwrapSecret(keys.wrapKey, 'prekey:1', wrapSecret(keys.wrapKey, 'prekey:1', secret))).toEqual(secret);
    const value = { version: 1, nested: ['a', 2, null] };
    expect(unwrapJson(keys.wrapKey, 'session:bob', wrapJson(keys.wrapKey, 'session:bob', value))).toEqual(value);
  });

  it('rejects a blob moved to another context, or under another key', () => {
    const wrapped = wrapSecret(keys.wrapKey, 'session:bob', text('x'));
    expectCode(() => unwrapSecret(keys.wrapKey, 'session:carol', wrapped), 'decrypt_failed');
    expectCode(() => unwrapSecret(keys.authKey, 'session:bob', wrapped), 'decrypt_failed');
    expectCode(() => wrapSecret(new Uint8Array(16), 'c', text('x')), 'bad_input');
  });
});
