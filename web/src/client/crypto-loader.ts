// The one place that loads @weconnect/crypto (and libsodium's WebAssembly): a dynamic import, so the first screen
// paints before the crypto chunk arrives. Everything else imports only its types.

import type * as CryptoModule from '@weconnect/crypto';

export type Crypto = typeof CryptoModule;

let loading: Promise<Crypto> | null = null;

export function loadCrypto(): Promise<Crypto> {
  loading ??= import('@weconnect/crypto').then(async (mod) => {
    await mod.ready();
    return mod;
  });
  return loading;
}
