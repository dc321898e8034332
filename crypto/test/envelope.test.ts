// Sealed envelopes and padding.

import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createMessageId,
  createSenderKey,
  encryptGroupMessage,
  encryptToDevice,
  forgetSealEpochs,
  MAX_CONTENT_BYTES,
  generateIdentity,
  openEnvelope,
  padPlaintext,
  randomBytes,
  sealEnvelope,
  toBase64Url,
  unpadPlaintext,
} from '../src/index.js';
import {
  dangerousTestOnlySealCacheSizes,
  paddedLength,
  SEAL_CACHE_SIZE,
  SEAL_EPOCH_ENVELOPES,
  SEAL_EPOCH_MS,
} from '../src/envelope.js';
import { sodium } from '../src/sodium.js';
import {
  expectCode,
  expectCodeAsync,
  openSealV2WithLibsodium,
  receive,
  sealV2WithLibsodium,
  startConversation,
  text,
} from './helpers.js';

async function sealed(recipient = generateIdentity()) {
  const messageId = createMessageId();
  const body = await sealEnvelope({
    recipientIdentityKey: toBase64Url(recipient.publicKey),
    senderUserId: 'alice',
    senderDeviceId: 'alice-d1',
    messageId,
    type: 'message',
    payload: text('opaque ratchet bytes'),
  });
  return { recipient, messageId, body };
}

describe('sealed envelopes', () => {
  it('round-trips every field', async () => {
    const { recipient, messageId, body } = await sealed();
    expect(await openEnvelope(recipient, body)).toEqual({
      version: 1,
      type: 'message',
      senderUserId: 'alice',
      senderDeviceId: 'alice-d1',
      messageId,
      payload: text('opaque ratchet bytes'),
    });
  });

  it('is in format 2: 0x02 ‖ epk ‖ nonce ‖ secretbox under the epoch key, to the X25519 form of the identity key', async () => {
    const { recipient, body } = await sealed();
    // Opened by an independent implementation from libsodium's primitives (test/helpers.ts).
    const inner = openSealV2WithLibsodium(body, recipient.dhPublicKey, recipient.dhPrivateKey);
    expect(inner[0]).toBe(1);
    expect(body[0]).toBe(2);
    expect(body.length).toBe(1 + 32 + 24 + 16 + inner.length);
    const lib = sealV2WithLibsodium(inner, recipient.dhPublicKey);
    expect((await openEnvelope(recipient, lib)).senderUserId).toBe('alice');
  });

  it('still opens format 1 (crypto_box_seal), what earlier versions sealed', async () => {
    const { recipient, body } = await sealed();
    const inner = openSealV2WithLibsodium(body, recipient.dhPublicKey, recipient.dhPrivateKey);
    const v1 = sodium().crypto_box_seal(inner, recipient.dhPublicKey);
    expect(await openEnvelope(recipient, v1)).toEqual(await openEnvelope(recipient, body));
    // Format 1 has no version byte: one in 256 of its envelopes starts with format 2's 0x02, and still opens.
    let looksLikeV2 = v1;
    while (looksLikeV2[0] !== 2) looksLikeV2 = sodium().crypto_box_seal(inner, recipient.dhPublicKey);
    expect((await openEnvelope(recipient, looksLikeV2)).senderUserId).toBe('alice');
  });

  it('hides the sender: the sealed bytes contain no identifier in clear', async () => {
    const { body } = await sealed();
    expect(Buffer.from(body).includes(Buffer.from('alice'))).toBe(false);
  });

  it('cannot be opened by anyone else, nor after tampering', async () => {
    const { recipient, body } = await sealed();
    await expectCodeAsync(async () => await openEnvelope(generateIdentity(), body), 'decrypt_failed');
    for (const i of [0, 31, 32, 40, body.length - 1]) {
      const t = body.slice();
      t[i]! ^= 0x10;
      await expectCodeAsync(async () => await openEnvelope(recipient, t), 'decrypt_failed');
    }
    await expectCodeAsync(async () => await openEnvelope(recipient, body.subarray(0, 20)), 'decrypt_failed');
  });

  it('rejects a malformed message id or sender when sealing', async () => {
    const base = {
      recipientIdentityKey: generateIdentity().publicKey,
      senderUserId: 'a',
      senderDeviceId: 'd',
      messageId: createMessageId(),
      type: 'message' as const,
      payload: new Uint8Array(1),
    };
    expect(
      (await expectCodeAsync(async () => await sealEnvelope({ ...base, messageId: 'short' }), 'bad_input')).message,
    ).toMatch(/messageId/);
    expect(
      (await expectCodeAsync(async () => await sealEnvelope({ ...base, senderUserId: '' }), 'bad_input')).message,
    ).toMatch(/senderUserId/);
    await expectCodeAsync(
      async () => await sealEnvelope({ ...base, recipientIdentityKey: new Uint8Array(32) }),
      'invalid_key',
    );
  });

  it('makes 22-character message ids of 16 random bytes', () => {
    const id = createMessageId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(createMessageId()).not.toBe(id);
  });
});

describe('seal epochs (format 2)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const epk = (body: Uint8Array) => toBase64Url(body.subarray(1, 33));
  const nonce = (body: Uint8Array) => toBase64Url(body.subarray(33, 57));

  it('seals SEAL_EPOCH_ENVELOPES envelopes to one recipient under one ephemeral key with fresh nonces, then a new one', async () => {
    const recipient = generateIdentity();
    const bodies: Uint8Array[] = [];
    for (let i = 0; i < 2 * SEAL_EPOCH_ENVELOPES + 1; i++) bodies.push((await sealed(recipient)).body);
    const perKey = new Map<string, number>();
    for (const b of bodies) perKey.set(epk(b), (perKey.get(epk(b)) ?? 0) + 1);
    expect([...perKey.values()]).toEqual([SEAL_EPOCH_ENVELOPES, SEAL_EPOCH_ENVELOPES, 1]);
    expect(new Set(bodies.map(nonce)).size).toBe(bodies.length);
    for (const b of bodies) expect((await openEnvelope(recipient, b)).senderUserId).toBe('alice');
  });

  it('never shares an ephemeral key between two recipients', async () => {
    const bob = generateIdentity();
    const carol = generateIdentity();
    const toBob: Uint8Array[] = [];
    const toCarol: Uint8Array[] = [];
    for (let i = 0; i < 10; i++) {
      toBob.push((await sealed(bob)).body);
      toCarol.push((await sealed(carol)).body);
    }
    const bobKeys = new Set(toBob.map(epk));
    expect(bobKeys.size).toBe(1);
    expect(toCarol.some((b) => bobKeys.has(epk(b)))).toBe(false);
    // Bob, with his epoch remembered, still cannot open Carol's envelopes.
    await openEnvelope(bob, toBob[0]!);
    await expectCodeAsync(async () => await openEnvelope(bob, toCarol[0]!), 'decrypt_failed');
  });

  it('never shares an ephemeral key between two sending devices, also in one process', async () => {
    const recipient = generateIdentity();
    const seal = (senderUserId: string, senderDeviceId: string) =>
      sealEnvelope({
        recipientIdentityKey: recipient.publicKey,
        senderUserId,
        senderDeviceId,
        messageId: createMessageId(),
        type: 'message',
        payload: text('x'),
      });
    const alicePhone = [await seal('alice', 'alice-d1'), await seal('alice', 'alice-d1')];
    const aliceLaptop = await seal('alice', 'alice-d2');
    const carol = await seal('carol', 'carol-d1');
    expect(epk(alicePhone[1]!)).toBe(epk(alicePhone[0]!));
    expect(new Set([epk(alicePhone[0]!), epk(aliceLaptop), epk(carol)]).size).toBe(3);
    expect((await openEnvelope(recipient, carol)).senderUserId).toBe('carol');
  });

  it('starts a new epoch once SEAL_EPOCH_MS have passed on the monotonic clock', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'performance'] });
    const recipient = generateIdentity();
    const first = (await sealed(recipient)).body;
    // The wall clock set back an hour does not stretch the epoch (it runs on the monotonic clock).
    vi.setSystemTime(Date.now() - 3_600_000);
    vi.advanceTimersByTime(SEAL_EPOCH_MS - 1);
    expect(epk((await sealed(recipient)).body)).toBe(epk(first));
    vi.advanceTimersByTime(1);
    const later = (await sealed(recipient)).body;
    expect(epk(later)).not.toBe(epk(first));
    expect((await openEnvelope(recipient, later)).senderUserId).toBe('alice');
  });

  it('shares one epoch between seals made at the same time, each with its own nonce', async () => {
    const recipient = generateIdentity();
    const bodies = await Promise.all(Array.from({ length: 20 }, async () => (await sealed(recipient)).body));
    expect(new Set(bodies.map(epk)).size).toBe(1);
    expect(new Set(bodies.map(nonce)).size).toBe(20);
    const many = await Promise.all(Array.from({ length: 20 }, async () => (await sealed()).body));
    expect(new Set(many.map(epk)).size).toBe(20);
  });

  it('refuses tampering also once the epoch is remembered, and the untouched envelope still opens', async () => {
    const recipient = generateIdentity();
    const { body, messageId } = await sealed(recipient);
    await openEnvelope(recipient, body);
    for (const i of [0, 1, 32, 33, 56, 57, 72, 73, body.length - 1]) {
      const t = body.slice();
      t[i]! ^= 0x01;
      await expectCodeAsync(async () => await openEnvelope(recipient, t), 'decrypt_failed');
    }
    await expectCodeAsync(async () => await openEnvelope(recipient, body.subarray(0, 74)), 'decrypt_failed');
    expect((await openEnvelope(recipient, body)).messageId).toBe(messageId);
  });

  it('forgets every epoch on forgetSealEpochs: the next seal starts a new one, and nothing is remembered', async () => {
    const recipient = generateIdentity();
    const first = (await sealed(recipient)).body;
    await openEnvelope(recipient, first);
    forgetSealEpochs();
    expect(dangerousTestOnlySealCacheSizes()).toEqual({ sealing: 0, opened: 0 });
    const next = (await sealed(recipient)).body;
    expect(epk(next)).not.toBe(epk(first));
    // Both still open: with the identity key, whatever was remembered.
    expect((await openEnvelope(recipient, first)).senderUserId).toBe('alice');
    expect((await openEnvelope(recipient, next)).senderUserId).toBe('alice');
  });

  it('remembers only epochs that opened, and at most SEAL_CACHE_SIZE of them on either side', async () => {
    const recipient = generateIdentity();
    const before = dangerousTestOnlySealCacheSizes().opened;
    // A relay's envelopes under fresh ephemeral keys that do not open are not remembered.
    for (let i = 0; i < 20; i++) {
      const junk = sealV2WithLibsodium(randomBytes(100), generateIdentity().dhPublicKey);
      await expectCodeAsync(async () => await openEnvelope(recipient, junk), 'decrypt_failed');
    }
    expect(dangerousTestOnlySealCacheSizes().opened).toBe(before);
    for (let i = 0; i < SEAL_CACHE_SIZE + 20; i++) {
      const other = generateIdentity();
      await openEnvelope(other, (await sealed(other)).body);
    }
    expect(dangerousTestOnlySealCacheSizes()).toEqual({ sealing: SEAL_CACHE_SIZE, opened: SEAL_CACHE_SIZE });
  });
});

describe('padding', () => {
  it('pads to 256-byte blocks up to 4 KiB, then to powers of two', () => {
    const cases: [number, number][] = [
      [0, 256],
      [200, 256],
      [255, 256],
      [256, 512],
      [4094, 4096],
      [4095, 4096],
      [4096, 8192],
      [8191, 8192],
      [8192, 16384],
      [20000, 32768],
    ];
    for (const [n, size] of cases) {
      expect(paddedLength(n)).toBe(size);
      const data = randomBytes(n);
      const padded = padPlaintext(data);
      expect(padded.length, `length ${n}`).toBe(size);
      expect(unpadPlaintext(padded)).toEqual(data);
      expect(padded).toEqual(sodium().pad(data, size));
    }
  });

  it('rejects malformed padding', () => {
    expectCode(() => unpadPlaintext(new Uint8Array(256)), 'decrypt_failed');
    expectCode(() => unpadPlaintext(new Uint8Array(300)), 'decrypt_failed');
    const nonCanonical = new Uint8Array(8192);
    nonCanonical[10] = 0x80;
    expectCode(() => unpadPlaintext(nonCanonical), 'decrypt_failed');
  });
});

describe('size limits', () => {
  it('accepts the largest content pairwise and in groups, within the relay body limit, and refuses one byte more', async () => {
    const { alice, aliceSession, bobSession } = await startConversation();
    const body = randomBytes(MAX_CONTENT_BYTES);
    const sent = await encryptToDevice(bobSession, { messageId: createMessageId(), content: { kind: 'chat', body } });
    expect(sent.body.length).toBeLessThan(64 * 1024);
    expect((await receive(alice, aliceSession, sent.body)).content.body).toEqual(body);
    const group = encryptGroupMessage(createSenderKey({ groupId: 'g', senderUserId: 'u', senderDeviceId: 'd' }), {
      messageId: createMessageId(),
      content: { kind: 'chat', body },
    });
    expect(group.body.length).toBeLessThan(33 * 1024);
    const tooBig = {
      messageId: createMessageId(),
      content: { kind: 'chat' as const, body: randomBytes(MAX_CONTENT_BYTES + 1) },
    };
    await expectCodeAsync(async () => await encryptToDevice(bobSession, tooBig), 'bad_input');
    expectCode(
      () => encryptGroupMessage(createSenderKey({ groupId: 'g', senderUserId: 'u', senderDeviceId: 'd' }), tooBig),
      'bad_input',
    );
  });
});
