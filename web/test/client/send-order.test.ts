// A burst of messages sent within one millisecond (here: on a clock that does not move at all) goes out, is stored
// and shows in the order it was written, on the sender and on the recipient. Both the outbox (by `created`) and
// history (by ts) used to break such ties by the random message id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asClient, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  relay = await startTestRelay();
  alice = await signUpUser(relay.url, 'alice');
  const frozen = Date.now();
  bob = await signUpUser(relay.url, 'bob', { now: () => frozen });
  await openWith(bob, alice);
}, 60_000);

afterAll(async () => {
  for (const u of [alice, bob]) if (u) asClient(u.engine).close();
  await relay?.close();
});

describe('send order', () => {
  it('keeps the order of messages written in the same millisecond, on both sides', async () => {
    const texts = Array.from({ length: 30 }, (_, i) => `burst ${i}`);
    for (const t of texts) await bob.engine.send(alice.userId, t);
    const mine = (await history(bob.engine, alice.userId)).map((m) => m.text);
    expect(mine).toEqual(texts);
    const received = await until(
      'all arrived',
      async () => {
        const got = (await history(alice.engine, bob.userId)).map((m) => m.text);
        return got.length === texts.length ? got : undefined;
      },
      20_000,
    );
    expect(received).toEqual(texts);
    // Shown times are the clock's, unchanged by the tie-break.
    const frozen = Math.floor((await history(bob.engine, alice.userId))[0]?.ts ?? 0);
    for (const m of await history(bob.engine, alice.userId)) expect(Math.floor(m.ts)).toBe(frozen);
  }, 40_000);
});
