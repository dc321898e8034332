// The one place libsodium is imported: loading it (ready) and handing out the loaded instance.

import libsodium from 'libsodium-wrappers-sumo';
import { CryptoError } from './errors.js';

let loaded = false;

/** Waits for libsodium's WebAssembly to load. Idempotent. */
export async function ready(): Promise<void> {
  if (loaded) return;
  await libsodium.ready;
  loaded = true;
}

/** True once {@link ready} has resolved. */
export function isReady(): boolean {
  return loaded;
}

/** The loaded libsodium instance; throws `not_ready` before {@link ready} resolved. */
export function sodium(): typeof libsodium {
  if (!loaded) throw new CryptoError('not_ready', 'call and await ready() before using @weconnect/crypto');
  return libsodium;
}
