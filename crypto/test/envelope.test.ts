// Sealed envelopes and padding.

import { describe, expect, it } from 'vitest';
import {
  createMessageId,
  createSenderKey,
  encryptGroupMessage,
  encryptToDevice,
  MAX_CONTENT_BYTES,
  generateIdentity,
  openEnvelope,
  padPlaintext,
  randomBytes,
  sealEnvelope,
  toBase64Url,
  unpadPlaintext,
} from '../src/index.js';
import { paddedLength } from '../src/envelope.js';
import { sodium } from '../src/sodium.js';
import { expectCode, expectCodeAsync, receive, startConversation, text } from './helpers.js';

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

  it('is in crypto_box_seal format, to the X25519 form of the identity key', async () => {
    const { recipient, body } = await sealed();
    const inner = sodium().crypto_box_seal_open(body, recipient.dhPublicKey, recipient.dhPrivateKey);
    expect(inner[0]).toBe(1);
    const lib = sodium().crypto_box_seal(inner, recipient.dhPublicKey);
    expect((await openEnvelope(recipient, lib)).senderUserId).toBe('alice');
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
