// Disappearing messages against a real relay (issue #15): a timer set on either side of a one-to-one conversation
// reaches every device of both people as a notice line; messages written under it carry it, and when it runs out
// (an injected clock moves on) the sealed rows are deleted from IndexedDB on the sender's and the recipient's
// devices. In a group only admins may set it; a timer from a non-admin, or from someone outside the conversation,
// changes nothing.
import 'fake-indexeddb/auto';
import { openDB } from 'idb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newMessageId } from '../../src/client/bytes';
import { DEVICE_CHECK_MS } from '../../src/client/sessions';
import type { ChatEngineApi, Person } from '../../src/client/types';
import { holdNextMessagesCommit, rawRecord, watchShown } from '../support/commits';
import { asClient, boot, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let now = Date.now();
const clock = { now: () => now };
let ann: TestUser;
let ann2: ChatEngineApi;
let bob: TestUser;
const engines: ChatEngineApi[] = [];

const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });
const timerOf = (e: ChatEngineApi, conv: string) =>
  e.getSnapshot().conversations.find((c) => c.conv === conv)?.expireSeconds;
const flushed = (e: ChatEngineApi) =>
  until('outbox empty', async () => (await asClient(e).dangerousTestOnlyOutboxSize()) === 0);

/** The raw row of a message, and of a conversation (its sealed summary). */
const rawRow = (dbName: string, id: string) => rawRecord(dbName, 'messages', id);
const rawConversation = (dbName: string, conv: string) => rawRecord(dbName, 'conversations', conv);

/** The status of one of Ann's messages to Bob, as her engine shows it. */
const annStatus = async (id: string) => (await history(ann.engine, bob.userId)).find((m) => m.id === id)?.status;

/** Sets a 5-minute timer on Ann's chat with Bob and sends `text` under it; its id, once Bob has it. */
async function vanishingToBob(text: string): Promise<string> {
  await ann.engine.setDisappearing(bob.userId, 300);
  await until('bob has the timer', () => timerOf(bob.engine, ann.userId) === 300);
  const id = await ann.engine.send(bob.userId, text);
  await until('bob got it', () => hasText(bob.engine, ann.userId, text));
  return id;
}

/** Turns the timer of Ann's chat with Bob off again, on both sides. */
async function timerOffWithBob(): Promise<void> {
  await ann.engine.setDisappearing(bob.userId, 0);
  await until('bob has it off', () => timerOf(bob.engine, ann.userId) === undefined);
}

/** The expiry records (array keys ['expiry', …]) of a database. */
async function expiryKeys(dbName: string): Promise<unknown[]> {
  const db = await openDB(dbName);
  try {
    return (await db.getAllKeys('secrets')).filter((k) => Array.isArray(k) && k[0] === 'expiry');
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  relay = await startTestRelay();
  ann = await signUpUser(relay.url, 'dm_ann', clock);
  ann2 = await boot(relay.url, `${ann.db}-second`, clock).signIn(ann.name, ann.password);
  bob = await signUpUser(relay.url, 'dm_bob', clock);
  engines.push(ann.engine, ann2, bob.engine);
  await until('ann2 online', () => ann2.getSnapshot().connection === 'online');
  now += DEVICE_CHECK_MS + 1_000;
  await openWith(ann, bob);
  await ann.engine.send(bob.userId, 'hello bob');
  await until('bob got it', () => hasText(bob.engine, ann.userId, 'hello bob'));
  await until('ann2 has the copy', () => hasText(ann2, bob.userId, 'hello bob'));
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

describe('disappearing messages in a one-to-one conversation', () => {
  it('a timer set by either side reaches every device of both and shows the notice on each', async () => {
    await ann.engine.setDisappearing(bob.userId, 3_600);
    const set = `${ann.name.toLowerCase()} set disappearing messages to 1 hour`;
    expect(timerOf(ann.engine, bob.userId)).toBe(3_600);
    for (const [e, conv] of [
      [ann.engine, bob.userId],
      [ann2, bob.userId],
      [bob.engine, ann.userId],
    ] as const) {
      await until('the timer arrived', () => timerOf(e, conv) === 3_600);
      await until('the notice shows', async () =>
        (await history(e, conv)).some((m) => m.kind === 'notice' && m.text === set),
      );
    }

    await bob.engine.setDisappearing(ann.userId, 300);
    const changed = `${bob.name.toLowerCase()} set disappearing messages to 5 minutes`;
    for (const [e, conv] of [
      [ann.engine, bob.userId],
      [ann2, bob.userId],
      [bob.engine, ann.userId],
    ] as const) {
      await until('the change arrived', () => timerOf(e, conv) === 300);
      await until('its notice shows', async () =>
        (await history(e, conv)).some((m) => m.kind === 'notice' && m.text === changed),
      );
    }
  });

  it("deletes both sides' messages from IndexedDB on every device when the timer runs out", async () => {
    const fromAnn = await ann.engine.send(bob.userId, 'ann says this vanishes');
    const fromBob = await bob.engine.send(ann.userId, 'bob says this vanishes');
    const dbs: [ChatEngineApi, string, string][] = [
      [ann.engine, ann.db, bob.userId],
      [ann2, `${ann.db}-second`, bob.userId],
      [bob.engine, bob.db, ann.userId],
    ];
    for (const [e, , conv] of dbs) {
      await until('both arrived', async () => {
        const h = await history(e, conv);
        return h.some((m) => m.id === fromAnn) && h.some((m) => m.id === fromBob);
      });
    }
    // Baseline: the sealed rows are there, each with its timer and expiry, and the messages before the timer too.
    for (const [e, db, conv] of dbs) {
      expect(await rawRow(db, fromAnn)).toBeDefined();
      expect(await rawRow(db, fromBob)).toBeDefined();
      const h = await history(e, conv);
      for (const id of [fromAnn, fromBob]) {
        const m = h.find((x) => x.id === id);
        expect(m?.expireSeconds).toBe(300);
        expect(m?.expiresAt).toBeGreaterThan(now);
      }
    }
    const removed: string[] = [];
    const off = ann.engine.onMessagesRemoved((_conv, ids) => removed.push(...ids));

    // Not yet: four minutes on, nothing goes.
    now += 240_000;
    for (const [e, db] of dbs) {
      await asClient(e).dangerousTestOnlyExpireNow();
      expect(await rawRow(db, fromAnn)).toBeDefined();
    }

    now += 120_000;
    for (const [e, db, conv] of dbs) {
      await asClient(e).dangerousTestOnlyExpireNow();
      expect(await rawRow(db, fromAnn)).toBeUndefined();
      expect(await rawRow(db, fromBob)).toBeUndefined();
      expect(await expiryKeys(db)).toEqual([]);
      const h = await history(e, conv);
      expect(h.some((m) => m.id === fromAnn || m.id === fromBob)).toBe(false);
      // What was written before the timer stays, and so do the notices.
      expect(h.some((m) => m.text === 'hello bob')).toBe(true);
      const c = e.getSnapshot().conversations.find((x) => x.conv === conv);
      expect(c?.lastText).not.toMatch(/vanishes/);
    }
    off();
    expect(removed.sort()).toEqual([fromAnn, fromBob].sort());
  });

  it('a message keeps the timer it was sent with when the timer changes before it arrives', async () => {
    asClient(bob.engine).dangerousTestOnlySetOnline(false);
    const id = await ann.engine.send(bob.userId, 'written under five minutes');
    await ann.engine.setDisappearing(bob.userId, 0);
    await flushed(ann.engine);
    asClient(bob.engine).dangerousTestOnlySetOnline(true);
    const off = `${ann.name.toLowerCase()} turned off disappearing messages`;
    await until('bob has the timer off', () => timerOf(bob.engine, ann.userId) === undefined);
    const h = await history(bob.engine, ann.userId);
    expect(h.some((m) => m.kind === 'notice' && m.text === off)).toBe(true);
    expect(h.find((m) => m.id === id)?.expireSeconds).toBe(300);

    now += 301_000;
    await asClient(bob.engine).dangerousTestOnlyExpireNow();
    expect(await rawRow(bob.db, id)).toBeUndefined();
    // Sent with the timer off: stays.
    const kept = await bob.engine.send(ann.userId, 'no timer now');
    now += 700_000;
    await asClient(bob.engine).dangerousTestOnlyExpireNow();
    expect(await rawRow(bob.db, kept)).toBeDefined();
  });

  it("asks the relay to delete my expired message's blobs (best effort: the route is on another branch)", async () => {
    await ann.engine.setDisappearing(bob.userId, 300);
    await until('bob has the timer', () => timerOf(bob.engine, ann.userId) === 300);
    const blobId = newMessageId();
    const attachment = {
      blobId,
      key: 'A'.repeat(43),
      digest: `${'B'.repeat(42)}A`,
      size: 3,
      type: 'text/plain',
      name: 'a.txt',
    };
    const id = await ann.engine.send(bob.userId, 'with a file', { attachments: [attachment] });
    await until('bob got it', () => hasText(bob.engine, ann.userId, 'with a file'));
    const deletes: string[] = [];
    const real = globalThis.fetch;
    const spy = vi.spyOn(globalThis, 'fetch').mockImplementation((input, init) => {
      if (init?.method === 'DELETE') deletes.push(String(input));
      return real(input, init);
    });
    try {
      now += 301_000;
      for (const e of [ann.engine, bob.engine]) await asClient(e).dangerousTestOnlyExpireNow();
      expect(await rawRow(ann.db, id)).toBeUndefined();
      expect(await rawRow(bob.db, id)).toBeUndefined();
      await until('the delete was asked', () => deletes.length > 0);
      // One request, from the sender only (bob's copy is not his blob), whatever the relay answers.
      expect(deletes.map((u) => new URL(u).pathname)).toEqual([`/api/blobs/${blobId}`]);
    } finally {
      spy.mockRestore();
    }
    await timerOffWithBob();
  });

  it('a receipt applied while the message disappears does not bring it back, on disk or on screen', async () => {
    await ann.engine.setDisappearing(bob.userId, 300);
    await until('bob has the timer', () => timerOf(bob.engine, ann.userId) === 300);
    const id = await ann.engine.send(bob.userId, 'raced by a read receipt');
    await until('delivered to bob', async () => (await annStatus(id)) === 'delivered');
    // Baseline: the sealed row and its expiry record are on ann's device.
    expect(await rawRow(ann.db, id)).toBeDefined();
    expect((await expiryKeys(ann.db)).some((k) => String((k as string[])[1]).endsWith(`:${id}`))).toBe(true);

    // Bob reads it; ann's commit of his read receipt (the tick) is held back once it has read and sealed the row.
    const hold = holdNextMessagesCommit(ann.engine);
    const { shown, offShown } = watchShown(ann.engine);
    try {
      await bob.engine.markRead(ann.userId);
      await hold.holding;
      // Meanwhile the timer runs out: the sweep deletes the row and its expiry record.
      now += 301_000;
      await asClient(ann.engine).dangerousTestOnlyExpireNow();
      expect(await rawRow(ann.db, id)).toBeUndefined();
      shown.length = 0;

      await hold.release();
      // The tick's commit found no row: nothing was written back, and nothing is shown again.
      expect(await rawRow(ann.db, id)).toBeUndefined();
      expect((await expiryKeys(ann.db)).some((k) => String((k as string[])[1]).endsWith(`:${id}`))).toBe(false);
      expect((await history(ann.engine, bob.userId)).some((m) => m.id === id)).toBe(false);
      expect(shown).not.toContain(id);
    } finally {
      offShown();
      hold.stop();
    }
    await timerOffWithBob();
  });

  it('a receipt applied while the message is deleted for me does not bring it back either', async () => {
    const id = await ann.engine.send(bob.userId, 'ann deletes this for herself');
    await until('delivered to bob', async () => (await annStatus(id)) === 'delivered');
    expect(await rawRow(ann.db, id)).toBeDefined();
    const hold = holdNextMessagesCommit(ann.engine);
    const { shown, offShown } = watchShown(ann.engine);
    try {
      await bob.engine.markRead(ann.userId);
      await hold.holding;
      await ann.engine.deleteForMe(bob.userId, id);
      expect(await rawRow(ann.db, id)).toBeUndefined();
      shown.length = 0;
      await hold.release();
      expect(await rawRow(ann.db, id)).toBeUndefined();
      expect((await history(ann.engine, bob.userId)).some((m) => m.id === id)).toBe(false);
      expect(shown).not.toContain(id);
    } finally {
      offShown();
      hold.stop();
    }
  });

  it("an edit applied while the message disappears brings back neither it nor its text as the chat's last line", async () => {
    await ann.engine.setDisappearing(bob.userId, 300);
    await until('ann2 has the timer', () => timerOf(ann2, bob.userId) === 300);
    // Ann's newest message, edited from her other device: on this device the edit would be the chat's last line.
    const id = await ann.engine.send(bob.userId, 'ann will edit this');
    await until('ann2 has the copy', () => hasText(ann2, bob.userId, 'ann will edit this'));
    // Bob's delivery tick is in first, so that the commit held below is the edit's.
    await until('delivered to bob', async () => (await annStatus(id)) === 'delivered');
    expect(await rawRow(ann.db, id)).toBeDefined();

    const hold = holdNextMessagesCommit(ann.engine);
    const { shown, offShown } = watchShown(ann.engine);
    try {
      await ann2.edit(bob.userId, id, 'an edited secret');
      await hold.holding;
      now += 301_000;
      await asClient(ann.engine).dangerousTestOnlyExpireNow();
      expect(await rawRow(ann.db, id)).toBeUndefined();
      const afterSweep = await rawConversation(ann.db, bob.userId);
      expect(afterSweep).toBeDefined();
      shown.length = 0;

      await hold.release();
      expect(await rawRow(ann.db, id)).toBeUndefined();
      expect((await history(ann.engine, bob.userId)).some((m) => m.id === id)).toBe(false);
      expect(shown).not.toContain(id);
      const last = () => ann.engine.getSnapshot().conversations.find((c) => c.conv === bob.userId)?.lastText;
      expect(last()).not.toMatch(/edit/);
      // As stored: the conversation's sealed row is the one the sweep wrote, not the edit's.
      expect(await rawConversation(ann.db, bob.userId)).toEqual(afterSweep);
    } finally {
      offShown();
      hold.stop();
    }
    await ann.engine.setDisappearing(bob.userId, 0);
    await until('ann2 has it off', () => timerOf(ann2, bob.userId) === undefined);
  });

  it("a read mark committed while the message disappears leaves its text nowhere as the chat's last line", async () => {
    const id = await vanishingToBob('bob reads this as it vanishes');
    const hold = holdNextMessagesCommit(bob.engine);
    try {
      const reading = bob.engine.markRead(ann.userId);
      await hold.holding;
      now += 301_000;
      await asClient(bob.engine).dangerousTestOnlyExpireNow();
      expect(await rawRow(bob.db, id)).toBeUndefined();
      const stored = async () => (await asClient(bob.engine).dangerousTestOnlyStoredConversation(ann.userId))?.lastText;
      expect(await stored()).not.toMatch(/vanish/);
      const afterSweep = await rawConversation(bob.db, ann.userId);
      await hold.release();
      await reading;
      expect(await rawRow(bob.db, id)).toBeUndefined();
      expect(bob.engine.getSnapshot().conversations.find((c) => c.conv === ann.userId)?.lastText).not.toMatch(/vanish/);
      // The read mark has committed the state it derived before the sweep; the newest state is written after it.
      expect(await rawConversation(bob.db, ann.userId)).not.toEqual(afterSweep);
      await until('the stored last line is the newest again', async () => !/vanish/.test((await stored()) ?? 'vanish'));
    } finally {
      hold.stop();
    }
    await timerOffWithBob();
  });

  it("a message that arrives while the sweep deletes the one before stays the chat's last line, in memory and as stored", async () => {
    const id = await vanishingToBob('this one vanishes');
    const line = () => bob.engine.getSnapshot().conversations.find((c) => c.conv === ann.userId)?.lastText;
    const stored = async () => (await asClient(bob.engine).dangerousTestOnlyStoredConversation(ann.userId))?.lastText;
    // Bob's sweep has read the rows and worked out the line it would leave; its commit waits until the next message
    // from Ann is stored and shown as the line.
    now += 301_000;
    const hold = holdNextMessagesCommit(bob.engine, ['conversations']);
    try {
      const sweeping = asClient(bob.engine).dangerousTestOnlyExpireNow();
      await hold.holding;
      await ann.engine.send(bob.userId, 'arrived during the sweep');
      await until('bob shows it as the line', () => line() === 'arrived during the sweep');
      await hold.release();
      await sweeping;
    } finally {
      hold.stop();
    }
    expect(await rawRow(bob.db, id)).toBeUndefined();
    expect(line()).toBe('arrived during the sweep');
    await until('stored as the line', async () => (await stored()) === 'arrived during the sweep');
    await timerOffWithBob();
  });

  it("replaces the vanished message's line in a conversation stored before the line's message id was kept", async () => {
    const id = await vanishingToBob('vanishes from an older state');
    await asClient(bob.engine).dangerousTestOnlyKeepConversationAsBeforeLastId(ann.userId);
    expect((await asClient(bob.engine).dangerousTestOnlyStoredConversation(ann.userId))?.lastId).toBeUndefined();
    now += 301_000;
    await asClient(bob.engine).dangerousTestOnlyExpireNow();
    expect(await rawRow(bob.db, id)).toBeUndefined();
    expect(bob.engine.getSnapshot().conversations.find((c) => c.conv === ann.userId)?.lastText).not.toMatch(/vanish/);
    expect((await asClient(bob.engine).dangerousTestOnlyStoredConversation(ann.userId))?.lastText).not.toMatch(
      /vanish/,
    );
    await timerOffWithBob();
  });

  it('a timer that arrives while a message is sent stays set, in memory and as stored for the next start', async () => {
    expect(timerOf(ann.engine, bob.userId)).toBeUndefined();
    const stored = async () =>
      (await asClient(ann.engine).dangerousTestOnlyStoredConversation(bob.userId))?.expireSeconds;
    // Ann's send has derived the conversation's new state (its last line); its commit waits until bob's timer is in.
    const hold = holdNextMessagesCommit(ann.engine);
    try {
      const sending = ann.engine.send(bob.userId, 'sent as the timer changes');
      await hold.holding;
      await bob.engine.setDisappearing(ann.userId, 300);
      await until('the timer reached ann', () => timerOf(ann.engine, bob.userId) === 300);
      await hold.release();
      await sending;
    } finally {
      hold.stop();
    }
    expect(timerOf(ann.engine, bob.userId)).toBe(300);
    expect(ann.engine.getSnapshot().conversations.find((c) => c.conv === bob.userId)?.lastText).toBe(
      'sent as the timer changes',
    );
    await until('stored with the timer', async () => (await stored()) === 300);
    // The next message is written under it.
    const next = await ann.engine.send(bob.userId, 'written under the timer');
    expect((await history(ann.engine, bob.userId)).find((m) => m.id === next)?.expireSeconds).toBe(300);
    await timerOffWithBob();
  });

  it('a timer from someone outside the conversation changes nothing', async () => {
    const mal = await signUpUser(relay.url, 'dm_mal', clock);
    engines.push(mal.engine);
    // A stranger (no conversation with ann) sends her a timer, one naming her conversation with bob too.
    await asClient(mal.engine).dangerousTestOnlySendPairwiseJson(ann.userId, { v: 1, type: 'timer', seconds: 300 });
    await asClient(mal.engine).dangerousTestOnlySendPairwiseJson(ann.userId, {
      v: 1,
      type: 'timer',
      seconds: 604_800,
      to: bob.userId,
    });
    // The fence: a message from mal, sent after both, arrives after them.
    await openWith(mal, ann);
    await mal.engine.send(ann.userId, 'fence from mal');
    await until('ann got the fence', () => hasText(ann.engine, mal.userId, 'fence from mal'));
    expect(timerOf(ann.engine, bob.userId)).toBeUndefined();
    expect(timerOf(ann.engine, mal.userId)).toBeUndefined();
    expect((await history(ann.engine, bob.userId)).some((m) => /1 week/.test(m.text))).toBe(false);
    expect((await history(ann.engine, mal.userId)).some((m) => m.kind === 'notice')).toBe(false);
  });
});

describe('disappearing messages in a group', () => {
  it("takes the timer from an admin only: a member's is refused locally and ignored by everyone", async () => {
    const cat = await signUpUser(relay.url, 'dm_cat', clock);
    engines.push(cat.engine);
    const group = await cat.engine.createGroup('Vanishing', [person(ann), person(bob)]);
    for (const e of [ann.engine, bob.engine]) {
      await until('the group arrived', () =>
        e.getSnapshot().conversations.some((c) => c.conv === group && c.group?.name === 'Vanishing'),
      );
    }
    await expect(bob.engine.setDisappearing(group, 300)).rejects.toThrow(/admins/);

    // Bob's client misbehaves and sends it anyway; then a message, which arrives after it.
    await asClient(bob.engine).dangerousTestOnlyQueueAction(group, { v: 1, type: 'timer', seconds: 300 });
    await bob.engine.send(group, 'fence from bob');
    for (const e of [ann.engine, cat.engine]) {
      await until('the fence arrived', () => hasText(e, group, 'fence from bob'));
      expect(timerOf(e, group)).toBeUndefined();
      expect((await history(e, group)).some((m) => /disappearing/.test(m.text))).toBe(false);
    }

    // The admin's timer is taken by everyone.
    await cat.engine.setDisappearing(group, 86_400);
    const text = `${cat.name.toLowerCase()} set disappearing messages to 1 day`;
    for (const e of [ann.engine, ann2, bob.engine, cat.engine]) {
      await until('the admin timer arrived', () => timerOf(e, group) === 86_400);
      expect((await history(e, group)).some((m) => m.kind === 'notice' && m.text === text)).toBe(true);
    }
    // A change to the group (a rename, from the admin) keeps the timer on every device of every member.
    await cat.engine.renameGroup(group, 'Still vanishing');
    for (const e of [ann.engine, ann2, bob.engine, cat.engine]) {
      await until('the rename arrived', () =>
        e.getSnapshot().conversations.some((c) => c.conv === group && c.group?.name === 'Still vanishing'),
      );
      expect(timerOf(e, group)).toBe(86_400);
    }
    // A group message written under it carries it to every member, and expires there.
    const id = await ann.engine.send(group, 'group message that vanishes');
    for (const [e, db] of [
      [bob.engine, bob.db],
      [cat.engine, cat.db],
    ] as const) {
      await until('it arrived', () => hasText(e, group, 'group message that vanishes'));
      expect((await history(e, group)).find((m) => m.id === id)?.expireSeconds).toBe(86_400);
      now += 86_401_000;
      await asClient(e).dangerousTestOnlyExpireNow();
      expect(await rawRow(db, id)).toBeUndefined();
    }
  });
});
