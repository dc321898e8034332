// Vault: at-rest encryption of IndexedDB records (AES-GCM under a key derived from the wrap key).
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ClientError } from '../../src/client/errors';
import { Vault, decodeJson, deriveAtRestKey, encodeJson } from '../../src/client/vault';

const wrapKey = (fill: number) => new Uint8Array(32).fill(fill);
const schema = z.object({ text: z.string(), key: z.instanceof(Uint8Array) });

describe('Vault', () => {
  it('opens what it sealed, bytes included, and the ciphertext does not contain the plaintext', async () => {
    const vault = new Vault(await deriveAtRestKey(wrapKey(1)));
    const value = { text: 'hello secret world', key: new Uint8Array([1, 2, 3, 250]) };
    const sealed = await vault.seal('messages/abc', value);
    expect(new TextDecoder().decode(sealed.ct)).not.toContain('hello secret world');
    await expect(vault.open('messages/abc', sealed, schema)).resolves.toEqual(value);
  });

  it('refuses a record moved to another slot', async () => {
    const vault = new Vault(await deriveAtRestKey(wrapKey(1)));
    const sealed = await vault.seal('sessions/alice/1', { text: 'x', key: new Uint8Array(1) });
    await expect(vault.open('sessions/mallory/1', sealed, schema)).rejects.toMatchObject({ code: 'decrypt_failed' });
  });

  it('refuses a record sealed under another wrap key', async () => {
    const a = new Vault(await deriveAtRestKey(wrapKey(1)));
    const b = new Vault(await deriveAtRestKey(wrapKey(2)));
    const sealed = await a.seal('secrets/identity', { text: 'x', key: new Uint8Array(1) });
    await expect(b.open('secrets/identity', sealed, schema)).rejects.toBeInstanceOf(ClientError);
  });

  it('rejects a decrypted record of the wrong shape and a malformed record', async () => {
    const vault = new Vault(await deriveAtRestKey(wrapKey(3)));
    const sealed = await vault.seal('x', { text: 42 });
    await expect(vault.open('x', sealed, schema)).rejects.toMatchObject({ code: 'corrupt_store' });
    await expect(vault.open('x', { iv: 'nope' }, schema)).rejects.toMatchObject({ code: 'corrupt_store' });
  });

  it('rejects a wrap key of the wrong length', async () => {
    await expect(deriveAtRestKey(new Uint8Array(16))).rejects.toThrow('32 bytes');
  });

  it('round-trips nested bytes through its JSON codec', () => {
    const value = { a: [new Uint8Array([0, 255])], b: { c: new Uint8Array(0) }, d: 'plain' };
    expect(decodeJson(encodeJson(value))).toEqual(value);
  });
});
