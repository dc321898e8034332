// Ordering keys: messages the relay committed in one batch share its timestamp and must keep their arrival (seq)
// order; what we create locally in one millisecond must keep the order it was written in (see EngineContext.stamp).
import { describe, expect, it } from 'vitest';
import { EngineContext } from '../../src/client/context';
import type { EngineDeps } from '../../src/client/context';

const context = (now: () => number = () => 0, newestOutbox = 0) =>
  new EngineContext({
    crypto: {},
    store: { newestOutboxCreated: () => Promise.resolve(newestOutbox) },
    api: {},
    keys: {},
    me: { userId: 'me', deviceId: 'dev', username: 'me' },
    now,
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

  it('continues after the last arrival stored with the conversation (a reload between two such messages)', () => {
    const t = 1_795_000_000_000;
    const before = context();
    before.arrivalTs('bob', t);
    const stored = before.arrivalTs('bob', t); // what storeIncoming saves as the conversation's lastArrival
    const after = context(); // a new app session: nothing in memory
    after.convs.set('bob', {
      conv: 'bob',
      username: 'bob',
      lastText: '',
      lastTs: t,
      unread: 0,
      unreadIds: [],
      lastArrival: stored,
    });
    expect(after.arrivalTs('bob', t)).toBe(t + 2 / 1024);
    expect(after.arrivalTs('carol', t)).toBe(t);
  });

  it('keeps conversations apart', () => {
    const ctx = context();
    expect(ctx.arrivalTs('bob', 1000)).toBe(1000);
    expect(ctx.arrivalTs('carol', 1000)).toBe(1000);
  });
});

describe('local stamps (what we create and queue)', () => {
  it('are distinct and increasing while the clock stands still, and follow it when it moves on', async () => {
    let clock = 5000;
    const ctx = context(() => clock);
    const got = [await ctx.stamp(), await ctx.stamp(), await ctx.stamp()];
    expect(got).toEqual([5000, 5000 + 1 / 1024, 5000 + 2 / 1024]);
    clock = 5007;
    expect(await ctx.stamp()).toBe(5007);
    clock = 4000; // set back: still after the last one
    expect(await ctx.stamp()).toBe(5007 + 1 / 1024);
  });

  it('start after the newest row already in the outbox', async () => {
    const ctx = context(() => 1000, 9000.5);
    expect(await ctx.stamp()).toBe(9000.5 + 1 / 1024);
    expect(await context(() => 10_000, 9000.5).stamp()).toBe(10_000);
  });

  it('stay distinct when asked for concurrently', async () => {
    const ctx = context(() => 42);
    const got = await Promise.all(Array.from({ length: 50 }, () => ctx.stamp()));
    expect(new Set(got).size).toBe(50);
  });
});
