// A send the relay stored for some devices and refused for others (their mailboxes were full), against a real relay
// whose mailboxes hold three entries. The sender sends each refused device a copy later, alone, until its day is over;
// the device files the copy under the first send's id, once. (A relay that lies "refused": security/refused-lies.)
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFUSED_RETRY_MAX_MS, REFUSED_RETRY_MS, SEND_LOG_MS } from '../../src/client/outbound';
import { DEVICE_CHECK_MS } from '../../src/client/sessions';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, boot, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let now = Date.now();
const clock = { now: () => now };
const engines: ChatEngineApi[] = [];

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(relay.url, prefix, clock);
  engines.push(u.engine);
  return u;
}

/**
 * A second device of `u`, which has `sender`'s message 'to every device' in conversation `conv`: `sender` (another
 * user, or `u` itself) lists the devices again first.
 */
async function secondDevice(
  u: TestUser,
  sender: TestUser,
  conv: string,
): Promise<{ db: string; engine: ChatEngineApi }> {
  const db = `${u.db}-second`;
  const engine = await boot(relay.url, db, clock).signIn(u.name, u.password);
  engines.push(engine);
  await until('second device online', () => engine.getSnapshot().connection === 'online');
  now += DEVICE_CHECK_MS + 1_000;
  await sender.engine.send(sender.userId === u.userId ? conv : u.userId, 'to every device');
  await until('the second device got it', async () => (await shown(engine, conv)).has('to every device'));
  return { db, engine };
}

/** Texts shown in `conv`, each with how many times it shows. */
async function shown(engine: ChatEngineApi, conv: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const m of await history(engine, conv)) out.set(m.text, [...(out.get(m.text) ?? []), m.id]);
  return out;
}

/** Sends until the relay has refused `count` sends for a device that is away (acks come back `sent` all the same). */
async function sendPastAFullMailbox(from: TestUser, to: string, count: number): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (let i = 0; i < 3 + count; i++) {
    const text = `message ${i}`;
    const id = await from.engine.send(to, text);
    ids.set(text, id);
    await until(`${text} acknowledged`, async () =>
      (await history(from.engine, to)).some((m) => m.id === id && m.status !== 'pending'),
    );
  }
  return ids;
}

/** Moves the clock past every waiting copy's time and flushes, until `done` holds. */
async function retryUntil(sender: TestUser, what: string, done: () => Promise<boolean>): Promise<void> {
  await until(
    what,
    async () => {
      if (await done()) return true;
      now += REFUSED_RETRY_MAX_MS + 1_000;
      await asClient(sender.engine).flushOutbox();
      return false;
    },
    30_000,
  );
}

beforeAll(async () => {
  relay = await startTestRelay({ MAILBOX_MAX_ENTRIES: '3' });
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

describe('a send refused for some devices', () => {
  it("reaches a contact's device that was away with a full mailbox, later, once, under the first id", async () => {
    const ann = await user('rf_ann');
    const ben = await user('rf_ben');
    await openWith(ann, ben);
    const ben2 = await secondDevice(ben, ann, ann.userId);
    asClient(ben2.engine).close(); // away: its mailbox fills after three entries

    const ids = await sendPastAFullMailbox(ann, ben.userId, 3);
    expect(await asClient(ann.engine).dangerousTestOnlyOutboxSize()).toBe(3); // a copy each, waiting
    expect(ann.engine.getSnapshot().notices.map((n) => n.text)).toContainEqual(
      expect.stringMatching(new RegExp(`not reached one of ${ben.name}’s devices yet`)),
    );

    const back = await boot(relay.url, ben2.db, clock).unlock(ben.password, false);
    engines.push(back);
    await until('ben2 took in its mailbox', async () => (await shown(back, ann.userId)).has('message 2'));
    now += REFUSED_RETRY_MS;
    await retryUntil(ann, 'ben2 has every message', async () => (await shown(back, ann.userId)).size === 1 + ids.size);
    await until('no copy waits', async () => (await asClient(ann.engine).dangerousTestOnlyOutboxSize()) === 0);

    // Each message once, under the id ann sent it with (so her reactions, edits and receipts find it), on both.
    for (const engine of [back, ben.engine]) {
      const got = await shown(engine, ann.userId);
      for (const [text, id] of ids) expect([text, got.get(text)]).toEqual([text, [id]]);
    }
  });

  it('reaches our own other device that was away, as our own message, under the first id', async () => {
    const cat = await user('rf_cat');
    const dan = await user('rf_dan');
    await openWith(cat, dan);
    const cat2 = await secondDevice(cat, cat, dan.userId);
    asClient(cat2.engine).close();

    const ids = await sendPastAFullMailbox(cat, dan.userId, 2);
    expect(cat.engine.getSnapshot().notices.map((n) => n.text)).toContainEqual(
      expect.stringMatching(/not reached one of your other devices yet/),
    );
    const back = await boot(relay.url, cat2.db, clock).unlock(cat.password, false);
    engines.push(back);
    await until('cat2 took in its mailbox', async () => (await shown(back, dan.userId)).has('message 2'));
    now += REFUSED_RETRY_MS;
    await retryUntil(cat, 'cat2 has every message', async () => {
      const got = await shown(back, dan.userId);
      return [...ids.keys()].every((t) => got.has(t));
    });
    const got = await history(back, dan.userId);
    for (const [text, id] of ids) {
      expect(got.filter((m) => m.text === text).map((m) => [m.id, m.mine])).toEqual([[id, true]]);
    }
    // Dan got each message once: the copies went to cat's device alone.
    const danGot = await shown(dan.engine, cat.userId);
    for (const [text, id] of ids) expect([text, danGot.get(text)]).toEqual([text, [id]]);
  });

  it('gives a copy up after a day, and says so', async () => {
    const eve = await user('rf_eve');
    const fay = await user('rf_fay');
    await openWith(eve, fay);
    const fay2 = await secondDevice(fay, eve, eve.userId);
    asClient(fay2.engine).close();
    await sendPastAFullMailbox(eve, fay.userId, 1);
    expect(await asClient(eve.engine).dangerousTestOnlyOutboxSize()).toBe(1);
    now += SEND_LOG_MS + 1_000;
    await asClient(eve.engine).flushOutbox();
    expect(await asClient(eve.engine).dangerousTestOnlyOutboxSize()).toBe(0);
    expect(
      eve.engine
        .getSnapshot()
        .notices.filter((n) => n.kind === 'error')
        .map((n) => n.text),
    ).toEqual([`A message never reached one of ${fay.name}’s devices: its mailbox on the relay stayed full.`]);
  });

  it('reaches a group member’s device that was away, pairwise, once, under the first id, as the sender’s', async () => {
    const kay = await user('rf_kay');
    const lee = await user('rf_lee');
    const mia = await user('rf_mia');
    const group = await kay.engine.createGroup(
      'Full mailboxes',
      [lee, mia].map((u) => ({ userId: u.userId, username: u.name.toLowerCase() })),
    );
    await kay.engine.send(group, 'to every member');
    await until('mia got it', async () => (await shown(mia.engine, group)).has('to every member'));
    asClient(mia.engine).close(); // away: her mailbox fills after three entries
    const ids = new Map<string, string>();
    for (let i = 0; i < 5; i++) ids.set(`group message ${i}`, await kay.engine.send(group, `group message ${i}`));
    await until('lee got them', async () => (await shown(lee.engine, group)).has('group message 4'));
    await until('all sent', async () => (await history(kay.engine, group)).every((m) => m.status !== 'pending'));
    expect((await history(kay.engine, group)).filter((m) => m.failure)).toEqual([]);
    const waiting = await asClient(kay.engine).dangerousTestOnlyOutboxSize();
    expect(waiting).toBeGreaterThan(0); // a copy for each send her mailbox had no room for
    expect(kay.engine.getSnapshot().notices.map((n) => n.text)).toContain(
      `A message in Full mailboxes has not reached one of ${mia.name.toLowerCase()}’s devices yet: its mailbox on the relay is full (the device has been away a long time). It is sent again when there is room, for up to a day.`,
    );

    const back = await boot(relay.url, mia.db, clock).unlock(mia.password, false);
    engines.push(back);
    now += REFUSED_RETRY_MS;
    await retryUntil(kay, 'mia has every message', async () => {
      const got = await shown(back, group);
      return [...ids.keys()].every((t) => got.has(t));
    });
    await until('no copy waits', async () => (await asClient(kay.engine).dangerousTestOnlyOutboxSize()) === 0);
    const got = await history(back, group);
    for (const [text, id] of ids) {
      expect(got.filter((m) => m.text === text).map((m) => [m.id, m.sender, m.mine])).toEqual([
        [id, kay.userId, false],
      ]);
    }
    // Lee got each message once (the copies went to mia's device alone).
    const leeGot = await shown(lee.engine, group);
    for (const [text, id] of ids) expect([text, leeGot.get(text)]).toEqual([text, [id]]);
  });

  it('a member whose only device is full stops no one: the key goes to her again after a rotation, once she has room', async () => {
    const kay = await user('rf_kay');
    const lee = await user('rf_lee');
    const mia = await user('rf_mia');
    const nat = await user('rf_nat');
    const people = [lee, mia, nat].map((u) => ({ userId: u.userId, username: u.name.toLowerCase() }));
    const group = await kay.engine.createGroup('Rotations', people);
    await kay.engine.send(group, 'before');
    await until('mia got it', async () => (await shown(mia.engine, group)).has('before'));
    asClient(mia.engine).close();
    for (let i = 0; i < 3; i++) await kay.engine.send(group, `filler ${i}`); // her mailbox is full after these
    await until('lee got them', async () => (await shown(lee.engine, group)).has('filler 2'));
    // A removal makes a new key, which goes to mia's device pairwise: the relay refuses it (mailbox_full).
    await kay.engine.removeGroupMember(group, nat.userId);
    const id = await kay.engine.send(group, 'after the rotation');
    await until('lee got it', async () => (await shown(lee.engine, group)).has('after the rotation'));
    await until('sent', async () => (await history(kay.engine, group)).every((m) => m.status !== 'pending'));
    expect((await history(kay.engine, group)).filter((m) => m.failure)).toEqual([]);

    const back = await boot(relay.url, mia.db, clock).unlock(mia.password, false);
    engines.push(back);
    now += REFUSED_RETRY_MS;
    await retryUntil(kay, 'mia has the copy', async () => (await shown(back, group)).has('after the rotation'));
    expect((await shown(back, group)).get('after the rotation')).toEqual([id]);
    // Her device has room now: the next send takes the new key to her first, and she reads it as a group message.
    const next = await kay.engine.send(group, 'with the new key');
    const got = await until('it reached mia', async () => (await history(back, group)).find((m) => m.id === next));
    expect([got.text, got.failure]).toEqual(['with the new key', undefined]);
  });
});
