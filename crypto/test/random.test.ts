// Test hooks: usable under Vitest, refused everywhere else.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { dangerousTestOnlySetRandomSource, randomBytes } from '../src/index.js';
import { testHooksEnabled } from '../src/random.js';
import { expectCode } from './helpers.js';

afterEach(() => {
  vi.unstubAllEnvs();
  dangerousTestOnlySetRandomSource(null);
});

describe('test hooks', () => {
  it('replaces and restores the random source under Vitest', () => {
    dangerousTestOnlySetRandomSource((n) => new Uint8Array(n).fill(7));
    expect(randomBytes(3)).toEqual(Uint8Array.of(7, 7, 7));
    dangerousTestOnlySetRandomSource(null);
    expect(randomBytes(32).every((b) => b === 7)).toBe(false);
  });

  it('rejects a source that returns the wrong length', () => {
    dangerousTestOnlySetRandomSource(() => new Uint8Array(1));
    expectCode(() => randomBytes(2), 'bad_input');
  });

  it('throws outside tests', () => {
    vi.stubEnv('VITEST', '');
    vi.stubEnv('NODE_ENV', 'production');
    expect(testHooksEnabled()).toBe(false);
    expectCode(() => dangerousTestOnlySetRandomSource(() => new Uint8Array(0)), 'test_hooks_disabled');
  });

  it('stays disabled where there is no process object (browsers)', () => {
    const saved = globalThis.process;
    try {
      // @ts-expect-error -- simulating a browser global scope for one synchronous check
      delete globalThis.process;
      expect(testHooksEnabled()).toBe(false);
    } finally {
      globalThis.process = saved;
    }
  });
});
