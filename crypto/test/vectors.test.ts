// Golden vectors: fixed seeds through the test-only random hook must still give exactly the committed bytes.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deserializeSession, fromBase64Url, openEnvelope, openLegacyBackup } from '../src/index.js';
import { PAIRWISE_SEED, pairwiseAccounts, VECTORS, withRandom, type VectorName } from './vectors/build.js';

function committed(name: VectorName): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`./vectors/${name}.json`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
}

describe('golden vectors', () => {
  for (const name of Object.keys(VECTORS) as VectorName[]) {
    it(`reproduces the committed ${name} vector byte for byte`, async () => {
      const fresh = JSON.parse(JSON.stringify(await VECTORS[name]())) as unknown;
      expect(fresh).toEqual(committed(name));
    });
  }

  it('loads the committed final sessions of the pairwise vector', () => {
    const v = committed('pairwise') as { finalSessions: { alice: unknown; bob: unknown } };
    expect(deserializeSession(v.finalSessions.alice).peerUserId).toBe('bob');
    expect(deserializeSession(v.finalSessions.bob).peerUserId).toBe('alice');
  });

  it('still opens the envelopes of format 1 (crypto_box_seal) that the pairwise vector held before format 2', async () => {
    const v1 = JSON.parse(readFileSync(new URL('./vectors/pairwise-v1.json', import.meta.url), 'utf8')) as {
      messages: { from: string; messageId: string; type: string; body: string }[];
    };
    const { alice, bob } = await withRandom(PAIRWISE_SEED, pairwiseAccounts);
    for (const m of v1.messages) {
      const recipient = m.from === 'alice' ? bob : alice;
      const env = await openEnvelope(recipient.identity, Uint8Array.from(Buffer.from(m.body, 'hex')));
      expect({ sender: env.senderUserId, messageId: env.messageId, type: env.type }).toEqual({
        sender: m.from,
        messageId: m.messageId,
        type: m.type,
      });
    }
  });

  it('opens the committed backup with the committed wrap key', () => {
    const v = committed('password') as { wrapKey: string; backup: string; backupIdentityKey: string };
    const backup = openLegacyBackup(fromBase64Url(v.wrapKey, 32), Uint8Array.from(Buffer.from(v.backup, 'hex')));
    expect(backup.identity.publicKey).toEqual(fromBase64Url(v.backupIdentityKey, 32));
  });
});
