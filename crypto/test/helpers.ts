// Shared test helpers: hex, text, accounts, and a started pairwise conversation.

import {
  acceptSession,
  type AccountKeys,
  createAccountKeys,
  createMessageId,
  CryptoError,
  type CryptoErrorCode,
  decryptFromDevice,
  encryptToDevice,
  initiateSession,
  openEnvelope,
  readPrekeyMessage,
  type Session,
  verifyPrekeyBundle,
} from '../src/index.js';
import { expect } from 'vitest';
import { sodium } from '../src/sodium.js';

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Asserts that `fn` throws a CryptoError with `code` (and returns it). */
export function expectCode(fn: () => unknown, code: CryptoErrorCode): CryptoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    expect((err as CryptoError).code, (err as Error).message).toBe(code);
    return err as CryptoError;
  }
  throw new Error(`expected CryptoError ${code}, but nothing was thrown`);
}

/** Asserts that `fn` rejects with a CryptoError with `code` (and returns it). */
export async function expectCodeAsync(fn: () => Promise<unknown>, code: CryptoErrorCode): Promise<CryptoError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    expect((err as CryptoError).code, (err as Error).message).toBe(code);
    return err as CryptoError;
  }
  throw new Error(`expected CryptoError ${code}, but nothing was thrown`);
}

export interface Party {
  userId: string;
  deviceId: string;
  keys: AccountKeys;
}

export function party(userId: string, deviceId = `${userId}-d1`, oneTimePrekeyCount = 2): Party {
  return { userId, deviceId, keys: createAccountKeys({ oneTimePrekeyCount }) };
}

/** Alice's session to Bob from Bob's bundle (with his first one-time prekey unless `withOneTime` is false). */
export function initiate(alice: Party, bob: Party, withOneTime = true): Session {
  const bundle = verifyPrekeyBundle({
    identityKey: bob.keys.upload.identityKey,
    signedPrekey: bob.keys.upload.signedPrekey,
    oneTimePrekey: withOneTime ? bob.keys.upload.oneTimePrekeys[0] : null,
  });
  return initiateSession({
    identity: alice.keys.identity,
    localUserId: alice.userId,
    localDeviceId: alice.deviceId,
    peerUserId: bob.userId,
    peerDeviceId: bob.deviceId,
    bundle,
  });
}

/** Bob accepts a prekey envelope body from Alice. */
export async function accept(bob: Party, alice: Party, body: Uint8Array) {
  const env = await openEnvelope(bob.keys.identity, body);
  const info = readPrekeyMessage(env.payload);
  return acceptSession({
    identity: bob.keys.identity,
    localUserId: bob.userId,
    localDeviceId: bob.deviceId,
    envelope: env,
    signedPrekey: bob.keys.signedPrekey,
    oneTimePrekey: bob.keys.oneTimePrekeys.find((k) => k.keyId === info.oneTimePrekeyId) ?? null,
    expectedPeerIdentityKey: alice.keys.identity.publicKey,
  });
}

export async function send(session: Session, message: string) {
  return await encryptToDevice(session, {
    messageId: createMessageId(),
    content: { kind: 'chat', body: text(message) },
  });
}

export async function receive(me: Party, session: Session, body: Uint8Array) {
  return decryptFromDevice(session, await openEnvelope(me.keys.identity, body));
}

/** A conversation where Alice sent "hello" and Bob accepted it: both sessions ready, Alice still pending. */
export async function startConversation(withOneTime = true) {
  const alice = party('alice');
  const bob = party('bob');
  const first = await send(initiate(alice, bob, withOneTime), 'hello');
  const accepted = await accept(bob, alice, first.body);
  expect(str(accepted.content.body)).toBe('hello');
  return { alice, bob, aliceSession: first.session, bobSession: accepted.session };
}

// Format 2 of the sealed envelope written out again with libsodium's primitives only, independently of
// src/envelope.ts: 0x02 ‖ epk ‖ nonce(24) ‖ crypto_secretbox(inner, nonce, BLAKE2b-256(key = X25519(esk, rpk),
// "WeConnect sealed envelope v2" ‖ epk ‖ rpk)).
const SEAL_V2_LABEL = 'WeConnect sealed envelope v2';

function sealV2Key(shared: Uint8Array, epk: Uint8Array, rpk: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(32, Buffer.concat([Buffer.from(SEAL_V2_LABEL), epk, rpk]), shared);
}

/** Opens a format-2 body with the recipient's X25519 key pair; throws if it does not open. */
export function openSealV2WithLibsodium(body: Uint8Array, rpk: Uint8Array, rsk: Uint8Array): Uint8Array {
  if (body[0] !== 2) throw new Error('not format 2');
  const epk = body.subarray(1, 33);
  const key = sealV2Key(sodium().crypto_scalarmult(rsk, epk), epk, rpk);
  return sodium().crypto_secretbox_open_easy(body.subarray(57), body.subarray(33, 57), key);
}

/** Seals `inner` to `rpk` in format 2 with a given (or fresh) ephemeral secret and nonce. */
export function sealV2WithLibsodium(
  inner: Uint8Array,
  rpk: Uint8Array,
  esk: Uint8Array = sodium().randombytes_buf(32),
  nonce: Uint8Array = sodium().randombytes_buf(24),
): Uint8Array {
  const epk = sodium().crypto_scalarmult_base(esk);
  const key = sealV2Key(sodium().crypto_scalarmult(esk, rpk), epk, rpk);
  return Uint8Array.from(
    Buffer.concat([Uint8Array.of(2), epk, nonce, sodium().crypto_secretbox_easy(inner, nonce, key)]),
  );
}
