// Prekeys: signed prekeys (X25519 signed by the identity key), one-time prekey batches, bundle verification.

import { toBase64Url } from './bytes.js';
import { CryptoError } from './errors.js';
import { checkIdentity, generateIdentity } from './identity.js';
import {
  checkX25519PublicKey,
  ed25519ToX25519PublicKey,
  generateKeyPair,
  KEY_BYTES,
  SIGNATURE_BYTES,
  verifySignature,
} from './keys.js';
import { verifyKemPrekey } from './kem.js';
import { sodium } from './sodium.js';
import type {
  AccountKeys,
  Identity,
  OneTimePrekey,
  PrekeyBundle,
  SignedPrekey,
  WireOneTimePrekey,
  WireSignedPrekey,
} from './types.js';
import { fail, keyArg, MAX_U32, objectArg, u32Arg } from './validate.js';

/** Most one-time prekeys the relay accepts per request (PROTOCOL.md). */
export const MAX_ONE_TIME_PREKEYS = 100;

export function generateSignedPrekey(identity: Identity, keyId: number): SignedPrekey {
  checkIdentity(identity);
  u32Arg(keyId, 'keyId');
  const keyPair = generateKeyPair();
  // Exactly what the relay verifies: an Ed25519 signature over the 32 public-key bytes, nothing else.
  const signature = sodium().crypto_sign_detached(keyPair.publicKey, identity.signingKey);
  return { keyId, keyPair, signature };
}

export function generateOneTimePrekeys(firstKeyId: number, count: number): OneTimePrekey[] {
  u32Arg(firstKeyId, 'firstKeyId');
  if (!Number.isInteger(count) || count < 0 || count > 10_000) fail('count must be an integer from 0 to 10000');
  if (firstKeyId + count - 1 > MAX_U32) fail('firstKeyId + count overflows 32-bit key ids');
  const out: OneTimePrekey[] = [];
  for (let i = 0; i < count; i++) out.push({ keyId: firstKeyId + i, keyPair: generateKeyPair() });
  return out;
}

export function signedPrekeyToWire(spk: SignedPrekey): WireSignedPrekey {
  return { keyId: spk.keyId, publicKey: toBase64Url(spk.keyPair.publicKey), signature: toBase64Url(spk.signature) };
}

export function oneTimePrekeysToWire(keys: readonly OneTimePrekey[]): WireOneTimePrekey[] {
  if (!Array.isArray(keys)) fail('keys must be an array');
  return keys.map((k) => ({ keyId: k.keyId, publicKey: toBase64Url(k.keyPair.publicKey) }));
}

interface DeviceKeyOptions {
  oneTimePrekeyCount?: number;
  signedPrekeyId?: number;
  firstOneTimePrekeyId?: number;
}

export function createDeviceKeys(identity: Identity, options: DeviceKeyOptions = {}): AccountKeys {
  checkIdentity(identity);
  const count = options.oneTimePrekeyCount ?? MAX_ONE_TIME_PREKEYS;
  if (!Number.isInteger(count) || count < 0 || count > MAX_ONE_TIME_PREKEYS) {
    fail(`oneTimePrekeyCount must be an integer from 0 to ${MAX_ONE_TIME_PREKEYS}`);
  }
  const signedPrekey = generateSignedPrekey(identity, options.signedPrekeyId ?? 1);
  const oneTimePrekeys = generateOneTimePrekeys(options.firstOneTimePrekeyId ?? 1, count);
  return {
    identity,
    signedPrekey,
    oneTimePrekeys,
    upload: {
      identityKey: toBase64Url(identity.publicKey),
      signedPrekey: signedPrekeyToWire(signedPrekey),
      oneTimePrekeys: oneTimePrekeysToWire(oneTimePrekeys),
    },
  };
}

export function createAccountKeys(options: DeviceKeyOptions = {}): AccountKeys {
  return createDeviceKeys(generateIdentity(), options);
}

function parseWireSignedPrekey(
  value: unknown,
  name: string,
): { keyId: number; publicKey: Uint8Array; signature: Uint8Array } {
  const o = objectArg(value, name, ['keyId', 'publicKey', 'signature']);
  return {
    keyId: u32Arg(o['keyId'], `${name}.keyId`),
    publicKey: keyArg(o['publicKey'], `${name}.publicKey`, KEY_BYTES),
    signature: keyArg(o['signature'], `${name}.signature`, SIGNATURE_BYTES),
  };
}

/** Verifies a signed prekey against an Ed25519 identity key (wire shape or bytes). */
export function verifySignedPrekey(identityKey: Uint8Array | string, signedPrekey: unknown): void {
  const ik = keyArg(identityKey, 'identityKey', KEY_BYTES);
  ed25519ToX25519PublicKey(ik, 'identityKey');
  const spk = parseWireSignedPrekey(signedPrekey, 'signedPrekey');
  verifySignature(spk.signature, spk.publicKey, ik, 'signedPrekey');
  checkX25519PublicKey(spk.publicKey, 'signedPrekey.publicKey');
}

export function verifyPrekeyBundle(bundle: {
  identityKey: unknown;
  signedPrekey: unknown;
  oneTimePrekey: unknown;
  kemPrekey?: unknown;
}): PrekeyBundle {
  if (typeof bundle !== 'object' || bundle === null) fail('bundle must be an object');
  const identityKey = keyArg(bundle.identityKey, 'bundle.identityKey', KEY_BYTES);
  ed25519ToX25519PublicKey(identityKey, 'bundle.identityKey');
  const spk = parseWireSignedPrekey(bundle.signedPrekey, 'bundle.signedPrekey');
  verifySignature(spk.signature, spk.publicKey, identityKey, 'bundle.signedPrekey');
  checkX25519PublicKey(spk.publicKey, 'bundle.signedPrekey.publicKey');
  let oneTimePrekey: PrekeyBundle['oneTimePrekey'] = null;
  if (bundle.oneTimePrekey !== null && bundle.oneTimePrekey !== undefined) {
    const o = objectArg(bundle.oneTimePrekey, 'bundle.oneTimePrekey', ['keyId', 'publicKey']);
    oneTimePrekey = {
      keyId: u32Arg(o['keyId'], 'bundle.oneTimePrekey.keyId'),
      publicKey: checkX25519PublicKey(
        keyArg(o['publicKey'], 'bundle.oneTimePrekey.publicKey', KEY_BYTES),
        'bundle.oneTimePrekey.publicKey',
      ),
    };
  }
  const kemPrekey =
    bundle.kemPrekey === null || bundle.kemPrekey === undefined
      ? null
      : verifyKemPrekey(identityKey, bundle.kemPrekey, 'bundle.kemPrekey');
  return { identityKey, signedPrekey: { keyId: spk.keyId, publicKey: spk.publicKey }, oneTimePrekey, kemPrekey };
}

/** Checks the shape of a SignedPrekey (argument validation). */
export function checkSignedPrekey(value: unknown, name: string): SignedPrekey {
  if (typeof value !== 'object' || value === null) throw new CryptoError('bad_input', `${name} must be a SignedPrekey`);
  const spk = value as SignedPrekey;
  u32Arg(spk.keyId, `${name}.keyId`);
  if (typeof spk.keyPair !== 'object' || spk.keyPair === null) fail(`${name}.keyPair is missing`);
  keyArg(spk.keyPair.publicKey, `${name}.keyPair.publicKey`, KEY_BYTES);
  keyArg(spk.keyPair.privateKey, `${name}.keyPair.privateKey`, KEY_BYTES);
  return spk;
}

/** Checks the shape of a OneTimePrekey (argument validation). */
export function checkOneTimePrekey(value: unknown, name: string): OneTimePrekey {
  if (typeof value !== 'object' || value === null)
    throw new CryptoError('bad_input', `${name} must be a OneTimePrekey`);
  const otk = value as OneTimePrekey;
  u32Arg(otk.keyId, `${name}.keyId`);
  if (typeof otk.keyPair !== 'object' || otk.keyPair === null) fail(`${name}.keyPair is missing`);
  keyArg(otk.keyPair.publicKey, `${name}.keyPair.publicKey`, KEY_BYTES);
  keyArg(otk.keyPair.privateKey, `${name}.keyPair.privateKey`, KEY_BYTES);
  return otk;
}
