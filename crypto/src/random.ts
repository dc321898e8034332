// Randomness: one crypto.getRandomValues call per request (libsodium.js draws bytes one at a time: slow).

import { CryptoError } from './errors.js';

type RandomSource = (n: number) => Uint8Array;

let override: RandomSource | null = null;
/** Counts replacements of the random source, so that caches of keys drawn from an earlier source can tell. */
let generation = 0;

/** Largest request crypto.getRandomValues accepts in one call. */
const MAX_CHUNK = 65536;

/** `n` random bytes from the platform CSPRNG (or the test override). */
export function randomBytes(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new CryptoError('bad_input', 'randomBytes: n must be a whole number');
  if (override) {
    const out = override(n);
    if (!(out instanceof Uint8Array) || out.length !== n) {
      throw new CryptoError('bad_input', `random source returned the wrong length (wanted ${n})`);
    }
    return out;
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += MAX_CHUNK) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + MAX_CHUNK)));
  return out;
}

/** True while a test has replaced the random source (golden vectors): then every random byte must come from it. */
export function randomSourceReplaced(): boolean {
  return override !== null;
}

/** Changes whenever a test replaces or restores the random source (golden vectors start from empty key caches). */
export function randomSourceGeneration(): number {
  return generation;
}

/**
 * True only under a test runner. Reads `process` through globalThis so bundlers neither inline nor polyfill it:
 * in a browser there is no `process`, so the hooks stay disabled.
 */
export function testHooksEnabled(): boolean {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const env = proc?.env;
  if (!env) return false;
  return (env['VITEST'] !== undefined && env['VITEST'] !== '') || env['NODE_ENV'] === 'test';
}

/** Guard for every `dangerousTestOnly…` function. */
export function assertTestHooksEnabled(name: string): void {
  if (!testHooksEnabled()) throw new CryptoError('test_hooks_disabled', `${name} is only available in tests`);
}

/** Replaces the random source (golden vectors); `null` restores the platform CSPRNG. Tests only. */
export function dangerousTestOnlySetRandomSource(source: RandomSource | null): void {
  assertTestHooksEnabled('dangerousTestOnlySetRandomSource');
  if (source !== null && typeof source !== 'function') {
    throw new CryptoError('bad_input', 'dangerousTestOnlySetRandomSource: source must be a function or null');
  }
  override = source;
  generation++;
}
