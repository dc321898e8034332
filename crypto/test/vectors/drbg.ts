// Deterministic "randomness" for golden vectors: BLAKE2b-512 keyed by the seed over a block counter.

import { sodium } from '../../src/sodium.js';

export function deterministicRandom(seed: string): (n: number) => Uint8Array {
  const key = sodium().crypto_generichash(32, new TextEncoder().encode(seed), null);
  let counter = 0;
  let pool = new Uint8Array(0);
  return (n: number) => {
    while (pool.length < n) {
      const block = new Uint8Array(8);
      new DataView(block.buffer).setBigUint64(0, BigInt(counter++), false);
      const next = new Uint8Array(pool.length + 64);
      next.set(pool);
      next.set(sodium().crypto_generichash(64, block, key), pool.length);
      pool = next;
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    return out;
  };
}
