// Read state across one account's devices: reading a conversation on one device clears its unread count (and marks
// the messages read) on the others — at once when they are online, on reconnect when they were offline.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_CHECK_MS } from '../../src/client/sessions';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, boot, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let now = Date.now();
const clock = { now: () => now };
const engines: ChatEngineApi[] = [];

beforeAll(async () => {
  relay = await startTestRelay();
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

function unread(engine: ChatEngineApi, conv: string): number | undefined {
  return engine.getSnapshot().conversations.find((c) => c.conv === conv)?.unread;
}

describe('unread state across our own devices', () => {
  it('reading on one device clears the count on the other, online or after a reconnect, in both directions', async () => {
    const dan: TestUser = await signUpUser(relay.url, 'us_dan', clock);
    const eve: TestUser = await signUpUser(relay.url, 'us_eve', clock);
    engines.push(dan.engine, eve.engine);
    const dan2 = await boot(relay.url, `${dan.db}-second`, clock).signIn(dan.name, dan.password);
    engines.push(dan2);
    await until('dan2 online', () => dan2.getSnapshot().connection === 'online');
    now += DEVICE_CHECK_MS + 1_000; // everyone re-lists dan's devices on their next send

    await openWith(eve, dan);
    for (const text of ['one', 'two', 'three']) await eve.engine.send(dan.userId, text);
    for (const e of [dan.engine, dan2]) await until('all three arrived', () => hasText(e, eve.userId, 'three'));
    await until('dan2 counts three', () => unread(dan2, eve.userId) === 3);
    expect(unread(dan.engine, eve.userId)).toBe(3);

    await dan.engine.markRead(eve.userId);
    expect(unread(dan.engine, eve.userId)).toBe(0);
    await until('dan2 cleared', () => unread(dan2, eve.userId) === 0);
    expect((await history(dan2, eve.userId)).map((m) => m.status)).toEqual(['read', 'read', 'read']);

    // dan2 is offline while a message arrives and dan reads it: the stored sync waits in its mailbox.
    asClient(dan2).dangerousTestOnlySetOnline(false);
    await until('dan2 offline', () => dan2.getSnapshot().connection !== 'online');
    await eve.engine.send(dan.userId, 'four');
    await until('dan got four', () => hasText(dan.engine, eve.userId, 'four'));
    await dan.engine.markRead(eve.userId);
    await until('dan has nothing queued', async () => (await asClient(dan.engine).dangerousTestOnlyOutboxSize()) === 0);
    asClient(dan2).dangerousTestOnlySetOnline(true);
    await until('dan2 got four', () => hasText(dan2, eve.userId, 'four'));
    await until('dan2 cleared after reconnecting', () => unread(dan2, eve.userId) === 0);

    // And the other way round.
    await eve.engine.send(dan.userId, 'five');
    for (const e of [dan.engine, dan2]) await until('five arrived', () => hasText(e, eve.userId, 'five'));
    await until('dan counts one', () => unread(dan.engine, eve.userId) === 1);
    await dan2.markRead(eve.userId);
    await until('dan cleared', () => unread(dan.engine, eve.userId) === 0);
  });

  it('ignores a read-state message from anyone but our own devices', async () => {
    const fay = await signUpUser(relay.url, 'us_fay', clock);
    const gus = await signUpUser(relay.url, 'us_gus', clock);
    engines.push(fay.engine, gus.engine);
    await openWith(gus, fay);
    await gus.engine.send(fay.userId, 'unread one');
    await until('fay got it', () => hasText(fay.engine, gus.userId, 'unread one'));
    const id = (await history(fay.engine, gus.userId))[0]!.id;
    // Gus's client claims fay read it (a forged own-device sync from another account).
    await asClient(gus.engine).dangerousTestOnlySendControl(fay.userId, {
      v: 1,
      type: 'read',
      conv: gus.userId,
      ids: [id],
    });
    await gus.engine.send(fay.userId, 'marker');
    await until('fay got the marker', () => hasText(fay.engine, gus.userId, 'marker'));
    expect(unread(fay.engine, gus.userId)).toBe(2);
  });
});
