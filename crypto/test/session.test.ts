// Session start (X3DH) on both sides, prekey-message handling and sender checks.

import { describe, expect, it } from 'vitest';
import {
  acceptSession,
  decryptFromDevice,
  type Envelope,
  initiateSession,
  isNewSession,
  openEnvelope,
  readPrekeyMessage,
  verifyPrekeyBundle,
} from '../src/index.js';
import { x3dhAssociatedData, x3dhInitiator, x3dhResponder } from '../src/x3dh.js';
import { generateKeyPair } from '../src/keys.js';
import { accept, expectCode, initiate, party, receive, send, startConversation, str } from './helpers.js';

describe('X3DH', () => {
  it('derives the same root secret on both sides, with and without a one-time prekey', () => {
    const a = party('alice').keys;
    const b = party('bob').keys;
    for (const opk of [b.oneTimePrekeys[0]!.keyPair, null]) {
      const ephemeral = generateKeyPair();
      const s1 = x3dhInitiator({
        identityDhPrivateKey: a.identity.dhPrivateKey,
        ephemeral,
        peerIdentityDhKey: b.identity.dhPublicKey,
        peerSignedPrekey: b.signedPrekey.keyPair.publicKey,
        peerOneTimePrekey: opk ? opk.publicKey : null,
      });
      const s2 = x3dhResponder({
        identityDhPrivateKey: b.identity.dhPrivateKey,
        signedPrekey: b.signedPrekey.keyPair,
        oneTimePrekey: opk,
        peerIdentityDhKey: a.identity.dhPublicKey,
        peerBaseKey: ephemeral.publicKey,
      });
      expect(s1).toEqual(s2);
      expect(s1.length).toBe(32);
    }
  });

  it('makes the associated data depend on both identity keys and both user ids', () => {
    const a = party('alice').keys.identity.publicKey;
    const b = party('bob').keys.identity.publicKey;
    const ad = x3dhAssociatedData(a, b, 'alice', 'bob');
    expect(x3dhAssociatedData(b, a, 'alice', 'bob')).not.toEqual(ad);
    expect(x3dhAssociatedData(a, b, 'alice', 'bobby')).not.toEqual(ad);
    expect(x3dhAssociatedData(a, b, 'alicebob', 'x')).not.toEqual(x3dhAssociatedData(a, b, 'alice', 'bobx'));
  });

  it('treats an all-zero DH output as fatal', () => {
    const b = party('bob').keys;
    expectCode(
      () =>
        x3dhInitiator({
          identityDhPrivateKey: b.identity.dhPrivateKey,
          ephemeral: generateKeyPair(),
          peerIdentityDhKey: b.identity.dhPublicKey,
          peerSignedPrekey: new Uint8Array(32),
          peerOneTimePrekey: null,
        }),
      'invalid_key',
    );
  });
});

describe('sessions', () => {
  it('starts a session without a one-time prekey', async () => {
    const { alice, aliceSession, bobSession } = await startConversation(false);
    expect(aliceSession.pendingPrekey?.oneTimePrekeyId).toBeNull();
    expect(str((await receive(alice, aliceSession, (await send(bobSession, 'hi')).body)).content.body)).toBe('hi');
  });

  it('exposes the prekey ids and identity key of a prekey message', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const env = await openEnvelope(bob.keys.identity, (await send(initiate(alice, bob), 'x')).body);
    const info = readPrekeyMessage(env.payload);
    expect(info.identityKey).toEqual(alice.keys.identity.publicKey);
    expect(info.signedPrekeyId).toBe(bob.keys.signedPrekey.keyId);
    expect(info.oneTimePrekeyId).toBe(bob.keys.oneTimePrekeys[0]!.keyId);
  });

  it('decrypts further prekey messages of the same start with the accepted session', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const first = await send(initiate(alice, bob), 'one');
    const second = await send(first.session, 'two');
    const accepted = await accept(bob, alice, first.body);
    const env2 = await openEnvelope(bob.keys.identity, second.body);
    expect(isNewSession(accepted.session, env2)).toBe(false);
    expect(str(decryptFromDevice(accepted.session, env2).content.body)).toBe('two');
  });

  it('rejects a replayed prekey message once the session is accepted', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const first = await send(initiate(alice, bob), 'once');
    const accepted = await accept(bob, alice, first.body);
    const replay = await openEnvelope(bob.keys.identity, first.body);
    expect(isNewSession(accepted.session, replay)).toBe(false);
    expectCode(() => decryptFromDevice(accepted.session, replay), 'duplicate_message');
  });

  it('rejects a prekey message with an all-zero or low-order base key', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const env = await openEnvelope(bob.keys.identity, (await send(initiate(alice, bob), 'x')).body);
    for (const bad of [new Uint8Array(32), Uint8Array.of(1, ...new Array<number>(31).fill(0))]) {
      const payload = env.payload.slice();
      payload.set(bad, 33);
      expectCode(
        () =>
          acceptSession({
            identity: bob.keys.identity,
            localUserId: bob.userId,
            localDeviceId: bob.deviceId,
            envelope: { ...env, payload },
            signedPrekey: bob.keys.signedPrekey,
            oneTimePrekey: bob.keys.oneTimePrekeys[0]!,
            expectedPeerIdentityKey: alice.keys.identity.publicKey,
          }),
        'invalid_key',
      );
    }
  });

  it('tells a restarted session from the current one', async () => {
    const { alice, bob, bobSession } = await startConversation();
    const restart = await send(initiate(alice, bob, false), 'again');
    const env = await openEnvelope(bob.keys.identity, restart.body);
    expect(isNewSession(null, env)).toBe(true);
    expect(isNewSession(bobSession, env)).toBe(true);
    expectCode(() => decryptFromDevice(bobSession, env), 'bad_input');
    expect(str((await accept(bob, alice, restart.body)).content.body)).toBe('again');
  });

  it('rejects a prekey message whose identity key is not the one expected for the sender', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const mallory = party('mallory');
    const env = await openEnvelope(bob.keys.identity, (await send(initiate(mallory, bob), 'I am alice')).body);
    expectCode(
      () =>
        acceptSession({
          identity: bob.keys.identity,
          localUserId: bob.userId,
          localDeviceId: bob.deviceId,
          envelope: env,
          signedPrekey: bob.keys.signedPrekey,
          oneTimePrekey: bob.keys.oneTimePrekeys[0]!,
          expectedPeerIdentityKey: alice.keys.identity.publicKey,
        }),
      'sender_mismatch',
    );
  });

  it('rejects a prekey message naming prekeys the caller did not supply', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const env = await openEnvelope(bob.keys.identity, (await send(initiate(alice, bob), 'x')).body);
    const base = {
      identity: bob.keys.identity,
      localUserId: bob.userId,
      localDeviceId: bob.deviceId,
      envelope: env,
      signedPrekey: bob.keys.signedPrekey,
      expectedPeerIdentityKey: alice.keys.identity.publicKey,
    };
    expectCode(() => acceptSession({ ...base, oneTimePrekey: null }), 'unknown_prekey');
    expectCode(() => acceptSession({ ...base, oneTimePrekey: bob.keys.oneTimePrekeys[1]! }), 'unknown_prekey');
  });

  it('fails to decrypt when the wrong private prekey is supplied', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const env = await openEnvelope(bob.keys.identity, (await send(initiate(alice, bob), 'x')).body);
    const wrong = { keyId: bob.keys.oneTimePrekeys[0]!.keyId, keyPair: bob.keys.oneTimePrekeys[1]!.keyPair };
    expectCode(
      () =>
        acceptSession({
          identity: bob.keys.identity,
          localUserId: bob.userId,
          localDeviceId: bob.deviceId,
          envelope: env,
          signedPrekey: bob.keys.signedPrekey,
          oneTimePrekey: wrong,
          expectedPeerIdentityKey: alice.keys.identity.publicKey,
        }),
      'decrypt_failed',
    );
  });

  it('rejects a prekey message accepted under a different user id than the initiator bound', async () => {
    const alice = party('alice');
    const bob = party('bob');
    const first = await send(initiate(alice, bob), 'x');
    const env = await openEnvelope(bob.keys.identity, first.body);
    const forged: Envelope = { ...env, senderUserId: 'carol' };
    expectCode(
      () =>
        acceptSession({
          identity: bob.keys.identity,
          localUserId: bob.userId,
          localDeviceId: bob.deviceId,
          envelope: forged,
          signedPrekey: bob.keys.signedPrekey,
          oneTimePrekey: bob.keys.oneTimePrekeys[0]!,
          expectedPeerIdentityKey: alice.keys.identity.publicKey,
        }),
      'decrypt_failed',
    );
  });

  it('rejects an envelope whose claimed sender is not the session peer', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const env = await openEnvelope(alice.keys.identity, (await send(bobSession, 'x')).body);
    expectCode(() => decryptFromDevice(aliceSession, { ...env, senderUserId: 'carol' }), 'sender_mismatch');
    expectCode(() => decryptFromDevice(aliceSession, { ...env, senderDeviceId: 'bob-d2' }), 'sender_mismatch');
  });

  it('names the argument when a session is started with bad input', () => {
    const alice = party('alice');
    const bob = party('bob');
    const bundle = verifyPrekeyBundle({
      identityKey: bob.keys.upload.identityKey,
      signedPrekey: bob.keys.upload.signedPrekey,
      oneTimePrekey: null,
    });
    const params = {
      identity: alice.keys.identity,
      localUserId: 'alice',
      localDeviceId: 'a1',
      peerUserId: 'bob',
      peerDeviceId: 'b1',
      bundle,
    };
    expect(expectCode(() => initiateSession({ ...params, peerUserId: '' }), 'bad_input').message).toMatch(/peerUserId/);
    expect(
      expectCode(
        () => initiateSession({ ...params, bundle: { ...bundle, identityKey: new Uint8Array(31) } }),
        'bad_input',
      ).message,
    ).toMatch(/bundle\.identityKey/);
  });
});
