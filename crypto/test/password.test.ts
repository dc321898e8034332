// Password handling: Argon2id split into auth and wrap keys, the key backup, and local wrapping.
// Argon2id at 64 MiB costs 1–2 s, so the keys are derived twice in the whole file.

import { beforeAll, describe, expect, it } from 'vitest';
import {
  backupFormat,
  backupKeyBox,
  derivePasswordKeys,
  fromBase64Url,
  generateBackupKey,
  generateIdentity,
  generateSalt,
  isAcceptedKdfParams,
  KDF_PARAMS,
  openAccountBackup,
  openLegacyBackup,
  type PasswordKeys,
  sealAccountBackup,
  sealLegacyBackup,
  toBase64Url,
  unwrapBackupKey,
  wrapBackupKey,
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

  it("refuses a relay's 20 passes over 1 GiB, or any parameters but its own, at once and without hashing", () => {
    expect(isAcceptedKdfParams(KDF_PARAMS)).toBe(true);
    const hostile = [
      { opslimit: 20, memlimit: 1024 * 1024 * 1024 },
      { opslimit: 4, memlimit: KDF_PARAMS.memlimit },
      { opslimit: KDF_PARAMS.opslimit, memlimit: 2 * KDF_PARAMS.memlimit },
      { opslimit: '3', memlimit: KDF_PARAMS.memlimit },
    ];
    for (const params of hostile) {
      expect(isAcceptedKdfParams(params)).toBe(false);
      const started = performance.now();
      expectCode(() => derivePasswordKeys('pw', { salt, ...(params as typeof KDF_PARAMS) }), 'bad_input');
      // One Argon2id at the accepted parameters takes about a second here; a refusal takes no hashing at all.
      expect(performance.now() - started).toBeLessThan(50);
    }
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

describe('key backup, format 1 (legacy, under the wrap key)', () => {
  it('round-trips the identity and the verification state', () => {
    const identity = generateIdentity();
    const contacts = [
      { userId: 'bob', identityKey: toBase64Url(generateIdentity().publicKey), verified: true },
      { userId: 'carol', identityKey: toBase64Url(generateIdentity().publicKey), verified: false },
    ];
    const sealed = sealLegacyBackup(keys.wrapKey, { identity, contacts });
    const opened = openLegacyBackup(keys.wrapKey, sealed);
    expect(opened.identity.publicKey).toEqual(identity.publicKey);
    expect(opened.identity.signingKey).toEqual(identity.signingKey);
    expect(opened.identity.dhPrivateKey).toEqual(identity.dhPrivateKey);
    expect(opened.contacts).toEqual(contacts);
  });

  it('rejects a tampered backup, a wrong key and a truncated one', () => {
    const sealed = sealLegacyBackup(keys.wrapKey, { identity: generateIdentity(), contacts: [] });
    for (const i of [1, 30, sealed.length - 1]) {
      const t = sealed.slice();
      t[i]! ^= 1;
      expectCode(() => openLegacyBackup(keys.wrapKey, t), 'decrypt_failed');
    }
    expectCode(() => openLegacyBackup(keys.authKey, sealed), 'decrypt_failed');
    expectCode(() => openLegacyBackup(keys.wrapKey, sealed.subarray(0, 30)), 'decrypt_failed');
    expect(backupFormat(sealed)).toBe(1);
    const v3 = sealed.slice();
    v3[0] = 3;
    expectCode(() => openLegacyBackup(keys.wrapKey, v3), 'unsupported_version');
    expectCode(() => backupFormat(v3), 'unsupported_version');
  });

  it('validates contacts when sealing', () => {
    expectCode(
      () =>
        sealLegacyBackup(keys.wrapKey, {
          identity: generateIdentity(),
          contacts: [{ userId: 'x', identityKey: 'short', verified: true }],
        }),
      'bad_input',
    );
  });
});

describe('key backup, format 2 (random backup key, bound to the account, with a revision)', () => {
  const contacts = [{ userId: 'bob', identityKey: toBase64Url(new Uint8Array(32).fill(7)), verified: true }];

  function sealFor(userId: string, revision: number) {
    const backupKey = generateBackupKey();
    const keyBox = wrapBackupKey(keys.wrapKey, userId, backupKey);
    const identity = generateIdentity();
    return {
      backupKey,
      keyBox,
      identity,
      sealed: sealAccountBackup(backupKey, keyBox, { userId, revision, identity, contacts }),
    };
  }

  it('round-trips the account, the revision, the identity and the verification state', () => {
    const { backupKey, identity, sealed } = sealFor('ann', 7);
    expect(backupFormat(sealed)).toBe(2);
    const opened = openAccountBackup(backupKey, 'ann', sealed);
    expect(opened.userId).toBe('ann');
    expect(opened.revision).toBe(7);
    expect(opened.identity.signingKey).toEqual(identity.signingKey);
    expect(opened.contacts).toEqual(contacts);
  });

  it("gives a new device the backup key through the password's wrap key, and keeps the revision out of sight", () => {
    const { backupKey, keyBox, sealed } = sealFor('ann', 300);
    const unwrapped = unwrapBackupKey(keys.wrapKey, 'ann', sealed);
    expect(unwrapped).toEqual(backupKey);
    expect(backupKeyBox(sealed)).toEqual(keyBox);
    expect(unwrapped).not.toEqual(keys.wrapKey);
    expectCode(() => unwrapBackupKey(keys.authKey, 'ann', sealed), 'decrypt_failed');
    // The revision is inside the ciphertext: the bytes after the key box do not carry it in the clear.
    const other = sealAccountBackup(backupKey, keyBox, {
      ...openAccountBackup(backupKey, 'ann', sealed),
      revision: 301,
    });
    expect(other.length).toBe(sealed.length);
  });

  it("refuses another account's backup even under the same keys (the user id is authenticated)", () => {
    const { backupKey, sealed } = sealFor('ann', 1);
    expect(expectCode(() => openAccountBackup(backupKey, 'cy', sealed), 'decrypt_failed').message).toMatch(
      /authentication/,
    );
    expectCode(() => unwrapBackupKey(keys.wrapKey, 'cy', sealed), 'decrypt_failed');
  });

  it('rejects tampering anywhere, truncation, and a format-1 backup where format 2 is expected', () => {
    const { backupKey, sealed } = sealFor('ann', 2);
    for (const i of [1, 40, 80, 100, sealed.length - 1]) {
      const t = sealed.slice();
      t[i]! ^= 1;
      expectCode(() => openAccountBackup(backupKey, 'ann', t), 'decrypt_failed');
    }
    expectCode(() => openAccountBackup(backupKey, 'ann', sealed.subarray(0, 60)), 'decrypt_failed');
    const legacy = sealLegacyBackup(keys.wrapKey, { identity: generateIdentity(), contacts });
    expectCode(() => openAccountBackup(backupKey, 'ann', legacy), 'unsupported_version');
    expectCode(() => unwrapBackupKey(keys.wrapKey, 'ann', legacy), 'unsupported_version');
  });

  it('validates the revision and the key box when sealing', () => {
    const backupKey = generateBackupKey();
    const keyBox = wrapBackupKey(keys.wrapKey, 'ann', backupKey);
    const identity = generateIdentity();
    for (const revision of [-1, 1.5, 2 ** 32]) {
      expectCode(
        () => sealAccountBackup(backupKey, keyBox, { userId: 'ann', revision, identity, contacts }),
        'bad_input',
      );
    }
    expectCode(
      () => sealAccountBackup(backupKey, keyBox.subarray(1), { userId: 'ann', revision: 1, identity, contacts }),
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
