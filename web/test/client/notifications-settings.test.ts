// Notification and privacy settings against a real relay (issue #15). They are stored sealed on the device and
// survive a reload. Read receipts and typing indicators are reciprocal, as in Signal: with read receipts off a device
// sends none (the relay relays no receipt to the peer) and shows others' "read" as delivered; with typing indicators
// off it sends none and shows none. Counted on what the relay delivered to the peer (ephemeral entries).
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PREFERENCES } from '../../src/client/preferences';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, boot, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let dan: TestUser;
let eve: TestUser;
const engines: ChatEngineApi[] = [];

const relayed = (u: TestUser) => asClient(u.engine).dangerousTestOnlyEphemeralReceived();
const statusOf = async (u: TestUser, conv: string, id: string) =>
  (await history(u.engine, conv)).find((m) => m.id === id)?.status;

/** `from` sends `to` a stored message; once it is there, every ephemeral entry sent before it has arrived too. */
async function fence(from: TestUser, to: TestUser, text: string): Promise<void> {
  await from.engine.send(to.userId, text);
  await until(`${text} arrived`, () => hasText(to.engine, from.userId, text));
}

/** `from` sends a message and waits until `to` stored it and `from` has its delivery receipt. */
async function delivered(from: TestUser, to: TestUser, text: string): Promise<string> {
  const id = await from.engine.send(to.userId, text);
  await until('delivered', async () => (await statusOf(from, to.userId, id)) === 'delivered');
  return id;
}

beforeAll(async () => {
  relay = await startTestRelay();
  dan = await signUpUser(relay.url, 'ns_dan');
  eve = await signUpUser(relay.url, 'ns_eve');
  engines.push(dan.engine, eve.engine);
  await openWith(dan, eve);
  await openWith(eve, dan);
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

describe('notification and privacy settings', () => {
  it('start at the defaults and survive a reload, sealed on the device', async () => {
    expect(dan.engine.getSnapshot().preferences).toEqual(DEFAULT_PREFERENCES);
    await dan.engine.setPreferences({ notifyContent: 'full', sound: true });
    await dan.engine.setMuted(eve.userId, true);
    asClient(dan.engine).close();
    dan.engine = await boot(relay.url, dan.db).signIn(dan.name, dan.password);
    engines.push(dan.engine);
    await until('dan online', () => dan.engine.getSnapshot().connection === 'online');
    expect(dan.engine.getSnapshot().preferences).toMatchObject({
      notifyContent: 'full',
      sound: true,
      muted: [eve.userId],
    });
    await dan.engine.setMuted(eve.userId, false);
    await dan.engine.setPreferences({ notifyContent: 'name', sound: false });
    await expect(dan.engine.setPreferences({ notifyContent: 'all' as never })).rejects.toThrow(/not valid/);
  });

  it('reports a new message from someone else once, never a tick or my own message', async () => {
    const arrived: string[] = [];
    const off = dan.engine.onArrival((_conv, m) => arrived.push(m.text));
    await delivered(dan, eve, 'mine, not announced');
    await fence(eve, dan, 'from eve, announced');
    await dan.engine.markRead(eve.userId);
    off();
    expect(arrived).toEqual(['from eve, announced']);
  });

  it('with read receipts on (the baseline), reading sends one receipt and the peer sees "read"', async () => {
    const id = await delivered(eve, dan, 'read me, on');
    const before = relayed(eve);
    await dan.engine.markRead(eve.userId);
    await until('eve sees read', async () => (await statusOf(eve, dan.userId, id)) === 'read');
    await fence(dan, eve, 'fence 1');
    expect(relayed(eve) - before).toBe(1);
  });

  it('with read receipts off, nothing goes to the peer and the peer\'s "read" shows as delivered', async () => {
    await dan.engine.setPreferences({ readReceipts: false });
    const id = await delivered(eve, dan, 'read me, off');
    const before = relayed(eve);
    await dan.engine.markRead(eve.userId);
    await fence(dan, eve, 'fence 2');
    expect(relayed(eve) - before).toBe(0);
    expect(await statusOf(eve, dan.userId, id)).toBe('delivered');
    // Eve's receipts are on: hers reach dan's device, and count only as delivered there.
    const mine = await delivered(dan, eve, 'dan writes');
    const dansBefore = relayed(dan);
    await eve.engine.markRead(dan.userId);
    await fence(eve, dan, 'fence 3');
    expect(relayed(dan) - dansBefore).toBe(1);
    expect(await statusOf(dan, eve.userId, mine)).toBe('delivered');
    await dan.engine.setPreferences({ readReceipts: true });
  });

  it('with typing indicators on (the baseline), typing reaches the peer and shows', async () => {
    const before = relayed(eve);
    dan.engine.notifyTyping(eve.userId);
    await until('eve sees dan typing', () => (eve.engine.getSnapshot().typingUntil[dan.userId] ?? 0) > 0);
    expect(relayed(eve) - before).toBe(1);
    await fence(dan, eve, 'fence 4'); // clears eve's "typing" and dan's typing throttle
  });

  it('with typing indicators off, none goes out and none shows', async () => {
    await dan.engine.setPreferences({ typingIndicators: false });
    const before = relayed(eve);
    dan.engine.notifyTyping(eve.userId);
    // Waits for eve's delivery receipt as well: it is an ephemeral entry to dan, and one arriving after the count
    // below is taken would be counted as the typing indicator.
    await delivered(dan, eve, 'fence 5');
    expect(relayed(eve) - before).toBe(0);
    expect(eve.engine.getSnapshot().typingUntil[dan.userId] ?? 0).toBe(0);

    const dansBefore = relayed(dan);
    eve.engine.notifyTyping(dan.userId);
    // It was relayed to dan's device and handled there (a message would clear "typing": no fence here)…
    await until('the indicator was handled', () => relayed(dan) - dansBefore === 1);
    expect(dan.engine.getSnapshot().typingUntil[eve.userId] ?? 0).toBe(0); // …and not shown
  });
  it('changed at once, each change holds, in memory and after a reload', async () => {
    // Baseline: both privacy settings on, and eve not muted (set one at a time).
    await dan.engine.setPreferences({ readReceipts: true, typingIndicators: true });
    await dan.engine.setMuted(eve.userId, false);
    await Promise.all([
      dan.engine.setPreferences({ readReceipts: false }),
      dan.engine.setPreferences({ typingIndicators: false }),
      dan.engine.setMuted(eve.userId, true),
    ]);
    const all = { readReceipts: false, typingIndicators: false, muted: [eve.userId] };
    expect(dan.engine.getSnapshot().preferences).toMatchObject(all);
    asClient(dan.engine).close();
    dan.engine = await boot(relay.url, dan.db).signIn(dan.name, dan.password);
    engines.push(dan.engine);
    expect(dan.engine.getSnapshot().preferences).toMatchObject(all);
    await Promise.all([
      dan.engine.setPreferences({ readReceipts: true }),
      dan.engine.setPreferences({ typingIndicators: true }),
      dan.engine.setMuted(eve.userId, false),
    ]);
    expect(dan.engine.getSnapshot().preferences).toMatchObject({
      readReceipts: true,
      typingIndicators: true,
      muted: [],
    });
  });
});
