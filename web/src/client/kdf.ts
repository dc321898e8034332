// Password → {authKey, wrapKey}. In the browser Argon2id runs in a Web Worker (worker/kdf.worker.ts) so the page
// stays responsive; in Node (tests) it runs inline. The worker's script gets the password, and browsers take no
// integrity for `new Worker(url)`: the page first fetches it with Subresource Integrity (the hash is written into this
// module by the build, web/build/subresource-integrity.ts, and this module is itself bound by the page's integrity
// set), and starts it only when the bytes the relay serves are the ones built.

import kdfWorkerUrl from './worker/kdf.worker.ts?worker&url';
import { loadCrypto } from './crypto-loader';
import { ClientError } from './errors';

/**
 * `sha256-…` of the built worker script. The build replaces this placeholder (and fails if it cannot); a development
 * server (`vite`) leaves it, and only there is the worker started unchecked.
 */
const KDF_WORKER_INTEGRITY = '__WECONNECT_KDF_WORKER_INTEGRITY__';

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

/** The message shown when the worker script the relay serves is not the one built (and the password stays here). */
export const KDF_WORKER_REFUSED =
  "This app's key-derivation code, as the relay serves it, is not the code that was built: it was refused and your password was not used. Reload, or contact your relay's operator.";

/**
 * Fetches the worker script with Subresource Integrity: a mismatch rejects the fetch, and then nothing runs and the
 * password is never posted. The worker is then started from the same URL (the relay's CSP, kept as WEBCAT accepts it,
 * allows `worker-src 'self'` only, not `blob:`): the hashed asset is cached as immutable, so the browser normally
 * starts the bytes just checked, but a relay that answers the worker's own request differently is not caught here
 * (under WEBCAT the extension checks that request against the signed manifest).
 */
async function checkedWorkerUrl(): Promise<string> {
  if (import.meta.env.DEV) return kdfWorkerUrl;
  let res: Response;
  try {
    res = await fetch(kdfWorkerUrl, { integrity: KDF_WORKER_INTEGRITY, credentials: 'same-origin' });
  } catch (cause) {
    // A network failure and an integrity mismatch both reject the fetch; only the second has reached the relay.
    const reachable = await fetch(kdfWorkerUrl, { method: 'HEAD', cache: 'no-store' }).then(
      (r) => r.ok,
      () => false,
    );
    throw reachable
      ? new ClientError('kdf_refused', KDF_WORKER_REFUSED, { cause })
      : new ClientError('relay_unreachable', 'The relay is unreachable. Check your connection.', { cause });
  }
  if (!res.ok) throw new ClientError('relay_error', `The relay answered ${res.status} for the key-derivation code`);
  await res.arrayBuffer();
  return kdfWorkerUrl;
}

/** Runs Argon2id in a dedicated module worker, one derivation per worker (its 64 MiB is freed afterwards). */
export const deriveInWorker: KeyDeriver = async (password, params) => {
  const url = await checkedWorkerUrl();
  return new Promise((resolve, reject) => {
    const worker = new Worker(url, { type: 'module' });
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
};
