// Password → {authKey, wrapKey}. In the browser Argon2id runs in a Web Worker (worker/kdf.worker.ts) so the page
// stays responsive; in Node (tests) it runs inline.

import { loadCrypto } from './crypto-loader';
import { ClientError } from './errors';

export interface KdfInput {
  salt: string;
  opslimit: number;
  memlimit: number;
}

export interface DerivedKeys {
  authKey: string;
  wrapKey: Uint8Array;
}

export type KeyDeriver = (password: string, params: KdfInput) => Promise<DerivedKeys>;

/** Runs Argon2id on the calling thread (Node, tests). */
export const deriveInline: KeyDeriver = async (password, params) => {
  const c = await loadCrypto();
  const keys = c.derivePasswordKeys(password, params);
  const result = { authKey: keys.authKeyBase64Url, wrapKey: keys.wrapKey.slice() };
  c.wipe(keys.authKey, keys.wrapKey);
  return result;
};

/** Runs Argon2id in a dedicated module worker, one derivation per worker (its 64 MiB is freed afterwards). */
export const deriveInWorker: KeyDeriver = (password, params) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./worker/kdf.worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (event: MessageEvent<unknown>) => {
      worker.terminate();
      const data = event.data as { ok: boolean; authKey?: string; wrapKey?: Uint8Array; error?: string };
      if (data.ok && typeof data.authKey === 'string' && data.wrapKey instanceof Uint8Array) {
        resolve({ authKey: data.authKey, wrapKey: data.wrapKey });
      } else {
        reject(new ClientError('invalid_input', data.error ?? 'Key derivation failed'));
      }
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new ClientError('invalid_input', `Key derivation worker failed: ${event.message}`));
    };
    worker.postMessage({ password, params });
  });
