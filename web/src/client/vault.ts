// Vault: encrypts every private record kept in IndexedDB under a key derived from the wrap key (AES-256-GCM).

import { z } from 'zod';
import { fromBase64Url, toBase64Url } from './bytes';
import { ClientError } from './errors';

/** What a sealed record looks like on disk: a fresh 12-byte IV and the AES-GCM ciphertext with its tag. */
export const sealedSchema = z.object({ iv: z.instanceof(Uint8Array), ct: z.instanceof(Uint8Array) });
export type Sealed = z.infer<typeof sealedSchema>;

const AT_REST_INFO = new TextEncoder().encode('weconnect/web/at-rest/v1');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function buf(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

/**
 * Turns the 32-byte wrap key into a non-extractable AES-GCM key with HKDF-SHA-256 and a label of its own, so the
 * at-rest key never equals the key that seals the relay backup. The caller wipes `wrapKey` afterwards.
 */
export async function deriveAtRestKey(wrapKey: Uint8Array): Promise<CryptoKey> {
  if (wrapKey.length !== 32) throw new TypeError('deriveAtRestKey: wrapKey must be 32 bytes');
  const base = await crypto.subtle.importKey('raw', buf(wrapKey), 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: AT_REST_INFO },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/**
 * Seals and opens JSON values. The slot name (store + key) is authenticated as associated data, so a record copied
 * into another slot fails to open instead of being read as something else.
 */
export class Vault {
  readonly #key: CryptoKey;

  constructor(key: CryptoKey) {
    this.#key = key;
  }

  get key(): CryptoKey {
    return this.#key;
  }

  async sealBytes(slot: string, plaintext: Uint8Array): Promise<Sealed> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: encoder.encode(slot) },
      this.#key,
      buf(plaintext),
    );
    return { iv, ct: new Uint8Array(ct) };
  }

  async openBytes(slot: string, sealed: unknown): Promise<Uint8Array> {
    const parsed = sealedSchema.safeParse(sealed);
    if (!parsed.success) throw new ClientError('corrupt_store', `Stored record ${slot} is malformed`);
    try {
      const pt = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: buf(parsed.data.iv), additionalData: encoder.encode(slot) },
        this.#key,
        buf(parsed.data.ct),
      );
      return new Uint8Array(pt);
    } catch (cause) {
      throw new ClientError('decrypt_failed', `Stored record ${slot} could not be decrypted`, { cause });
    }
  }

  /** Seals a JSON-able value; Uint8Array fields survive (encoded as `{ $b: base64url }`). */
  async seal(slot: string, value: unknown): Promise<Sealed> {
    return this.sealBytes(slot, encoder.encode(encodeJson(value)));
  }

  /** Opens a sealed value and parses it with `schema`: a decrypted record is untrusted until parsed. */
  async open<T>(slot: string, sealed: unknown, schema: z.ZodType<T>): Promise<T> {
    const bytes = await this.openBytes(slot, sealed);
    let json: unknown;
    try {
      json = decodeJson(decoder.decode(bytes));
    } catch (cause) {
      throw new ClientError('corrupt_store', `Stored record ${slot} is not JSON`, { cause });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ClientError('corrupt_store', `Stored record ${slot} has an unexpected shape`);
    return parsed.data;
  }
}

/** JSON with Uint8Array support, for sealed records (crypto state holds keys as bytes). */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? { $b: toBase64Url(v) } : v));
}

/** Inverse of `encodeJson`. */
export function decodeJson(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const b = (v as { $b?: unknown }).$b;
      if (keys.length === 1 && typeof b === 'string') return fromBase64Url(b);
    }
    return v;
  });
}
