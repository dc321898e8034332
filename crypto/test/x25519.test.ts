// The sealed box on every X25519 backend (node:crypto, WebCrypto, libsodium): the same bytes, interop both ways with
// libsodium (format 1, crypto_box_seal) and with format 2 written out from libsodium's primitives, tampering, and
// the golden vectors.

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createMessageId, generateIdentity, openEnvelope, sealEnvelope, type Identity } from '../src/index.js';
import { sodium } from '../src/sodium.js';
import { dangerousTestOnlySetX25519Backend, x25519Backend, type X25519Backend } from '../src/x25519.js';
import { expectCodeAsync, openSealV2WithLibsodium, sealV2WithLibsodium, text } from './helpers.js';
import { VECTORS } from './vectors/build.js';
import { readFileSync } from 'node:fs';

const BACKENDS: X25519Backend[] = ['node', 'webcrypto', 'libsodium'];

afterAll(async () => {
  await dangerousTestOnlySetX25519Backend(null);
});

function seal(recipient: Identity, payload: Uint8Array) {
  return sealEnvelope({
    recipientIdentityKey: recipient.publicKey,
    senderUserId: 'alice',
    senderDeviceId: 'alice-d1',
    messageId: createMessageId(),
    type: 'message',
    payload,
  });
}

it('picks node:crypto in Node (faster than WebCrypto and wasm here)', async () => {
  await dangerousTestOnlySetX25519Backend(null);
  expect(x25519Backend()).toBe('node');
});

describe.each(BACKENDS)('sealed box on %s', (backend) => {
  it('is selected', async () => {
    await dangerousTestOnlySetX25519Backend(backend);
    expect(x25519Backend()).toBe(backend);
  });

  it('opens with libsodium primitives (format 2), and opens what crypto_box_seal made (format 1)', async () => {
    await dangerousTestOnlySetX25519Backend(backend);
    const recipient = generateIdentity();
    const body = await seal(recipient, text('to libsodium'));
    const inner = openSealV2WithLibsodium(body, recipient.dhPublicKey, recipient.dhPrivateKey);
    expect(inner[0]).toBe(1);
    for (const made of [
      sodium().crypto_box_seal(inner, recipient.dhPublicKey),
      sealV2WithLibsodium(inner, recipient.dhPublicKey),
    ]) {
      const env = await openEnvelope(recipient, made);
      expect(env.payload).toEqual(text('to libsodium'));
      expect(env.senderUserId).toBe('alice');
    }
  });

  it('hands out each pre-made ephemeral key once: seals to many recipients at the same time never share one', async () => {
    await dangerousTestOnlySetX25519Backend(backend);
    const seen = new Set<string>();
    for (let round = 0; round < 10; round++) {
      // 20 new recipients at once drain the pool (8) and make the rest directly; between rounds it fills up again.
      const recipients = Array.from({ length: 20 }, () => generateIdentity());
      const bodies = await Promise.all(recipients.map((r) => seal(r, text('once'))));
      for (const [i, body] of bodies.entries()) {
        seen.add(sodium().to_hex(body.subarray(1, 33)));
        expect((await openEnvelope(recipients[i]!, body)).payload).toEqual(text('once'));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen.size).toBe(200);
  });

  it('rejects tampering, the wrong recipient, and a low-order or all-zero ephemeral key', async () => {
    await dangerousTestOnlySetX25519Backend(backend);
    const recipient = generateIdentity();
    const body = await seal(recipient, text('tamper'));
    await expectCodeAsync(() => openEnvelope(generateIdentity(), body), 'decrypt_failed');
    for (const i of [0, 1, 5, 32, 33, 47, 56, 57, 73, body.length - 1]) {
      const t = body.slice();
      t[i]! ^= 0x01;
      await expectCodeAsync(() => openEnvelope(recipient, t), 'decrypt_failed');
    }
    // As format 2's ephemeral key (after the version byte), and where format 1 has it (from the first byte).
    for (const low of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
      for (const offset of [1, 0]) {
        const t = body.slice();
        t.set(low, offset);
        await expectCodeAsync(() => openEnvelope(recipient, t), 'decrypt_failed');
      }
    }
    await expectCodeAsync(() => openEnvelope(recipient, body.subarray(0, 49)), 'decrypt_failed');
    await expectCodeAsync(() => openEnvelope(recipient, body.subarray(0, 74)), 'decrypt_failed');
  });

  it('re-imports the private key when the identity bytes change under the cache', async () => {
    await dangerousTestOnlySetX25519Backend(backend);
    const first = generateIdentity();
    const second = generateIdentity();
    await openEnvelope(first, await seal(first, text('warm the cache')));
    // Same array objects, other key: the cached import must not be used.
    const swapped: Identity = { ...first };
    swapped.dhPrivateKey.set(second.dhPrivateKey);
    swapped.dhPublicKey.set(second.dhPublicKey);
    swapped.publicKey.set(second.publicKey);
    swapped.signingKey.set(second.signingKey);
    const env = await openEnvelope(swapped, await seal(second, text('after the swap')));
    expect(env.payload).toEqual(text('after the swap'));
  });

  it('reproduces the committed pairwise golden vector', async () => {
    await dangerousTestOnlySetX25519Backend(backend);
    const committed = JSON.parse(readFileSync(new URL('./vectors/pairwise.json', import.meta.url), 'utf8')) as unknown;
    expect(JSON.parse(JSON.stringify(await VECTORS.pairwise()))).toEqual(committed);
  });

  it('round-trips any payload with libsodium on the other side, in both formats (property)', async () => {
    await dangerousTestOnlySetX25519Backend(backend);
    const recipient = generateIdentity();
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 600 }),
        fc.constantFrom('ours', 'libsodium v1', 'libsodium v2'),
        async (payload, sealer) => {
          const ours = await seal(recipient, payload);
          if (sealer === 'ours') {
            expect((await openEnvelope(recipient, ours)).payload).toEqual(payload);
            return;
          }
          const inner = openSealV2WithLibsodium(ours, recipient.dhPublicKey, recipient.dhPrivateKey);
          const made =
            sealer === 'libsodium v1'
              ? sodium().crypto_box_seal(inner, recipient.dhPublicKey)
              : sealV2WithLibsodium(inner, recipient.dhPublicKey);
          expect((await openEnvelope(recipient, made)).payload).toEqual(payload);
        },
      ),
      { numRuns: 40 },
    );
  });
});
