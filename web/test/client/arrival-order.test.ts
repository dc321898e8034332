// Messages the relay committed in one batch share its timestamp: they must keep their arrival (seq) order in history
// and in the UI, which both sort by the message's ts.
import { describe, expect, it } from 'vitest';
import { EngineContext } from '../../src/client/context';
import type { EngineDeps } from '../../src/client/context';

const context = () =>
  new EngineContext({
    crypto: {},
    store: {},
    api: {},
    keys: {},
    me: { userId: 'me', deviceId: 'dev', username: 'me' },
    now: () => 0,
  } as unknown as EngineDeps);

describe('arrival timestamps', () => {
  it('orders messages of one millisecond by arrival, and leaves distinct times alone', () => {
    const ctx = context();
    const t = 1_795_000_000_000;
    const got = [t, t, t, t + 5, t + 5, t + 2].map((ts) => ctx.arrivalTs('bob', ts));
    expect(got.slice(0, 3)).toEqual([t, t + 1 / 1024, t + 2 / 1024]);
    expect(got[3]).toBe(t + 5);
    expect(got[4]).toBe(t + 5 + 1 / 1024);
    expect(got[5]).toBe(t + 2); // a late, older message keeps its own time
    for (let i = 1; i < 5; i++) expect(got[i]).toBeGreaterThan(got[i - 1] ?? Infinity);
    expect(got.map(Math.floor)).toEqual([t, t, t, t + 5, t + 5, t + 2]); // shown times are unchanged
  });

  it('keeps conversations apart', () => {
    const ctx = context();
    expect(ctx.arrivalTs('bob', 1000)).toBe(1000);
    expect(ctx.arrivalTs('carol', 1000)).toBe(1000);
  });
});
