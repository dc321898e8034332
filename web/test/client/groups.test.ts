// Groups against a real relay: three people form a group (name sent encrypted), talk with sender keys (one
// ciphertext per message), see typing and receipts; a removed member can read nothing sent afterwards because
// everyone who stays rotates their sender key.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Person } from '../../src/client/types';
import { holdNextMessagesCommit } from '../support/commits';
import { asClient, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let ann: TestUser;
let ben: TestUser;
let cat: TestUser;
/** In one group with ann and ben (not the main one). */
let dan: TestUser;
let group: string;

const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });
/** Ephemeral entries (typing, receipts) the relay delivered to the user's device so far. */
const relayed = (u: TestUser): number => asClient(u.engine).dangerousTestOnlyEphemeralReceived();
const GROUP_NAME = 'Weekend plans 🏕';

/**
 * Every row of the relay's mailbox table (what the operator stores), read from its SQLite file; a group entry's body
 * is stored once in the bodies table, which the row names.
 */
function mailboxRows(): { deviceId: string; messageId: string; groupId: string | null; body: Buffer }[] {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare(
        `SELECT m.device_id AS deviceId, m.message_id AS messageId, m.group_id AS groupId,
                CASE WHEN m.body_id IS NULL THEN m.body ELSE b.body END AS body
           FROM mailbox m LEFT JOIN bodies b ON b.body_id = m.body_id`,
      )
      .all() as { deviceId: string; messageId: string; groupId: string | null; body: Buffer }[];
  } finally {
    db.close();
  }
}

/** True if `haystack` holds the UTF-8 bytes of `text` anywhere. */
const holds = (haystack: Uint8Array, text: string): boolean =>
  Buffer.from(haystack).includes(Buffer.from(text, 'utf8'));
const deviceOf = (u: TestUser): string => u.engine.getSnapshot().me.deviceId;

beforeAll(async () => {
  relay = await startTestRelay();
  [ann, ben, cat, dan] = await Promise.all([
    signUpUser(relay.url, 'g_ann'),
    signUpUser(relay.url, 'g_ben'),
    signUpUser(relay.url, 'g_cat'),
    signUpUser(relay.url, 'g_dan'),
  ]);
}, 60_000);

afterAll(async () => {
  for (const u of [ann, ben, cat, dan]) if (u) asClient(u.engine).close();
  await relay?.close();
});

function groupIn(u: TestUser, groupId: string) {
  return u.engine.getSnapshot().conversations.find((c) => c.conv === groupId)?.group;
}
const groupOf = (u: TestUser) => groupIn(u, group);

describe('groups', () => {
  it('creates a named group; every member learns the name and members over the pairwise sessions', async () => {
    // Cat is offline: what Ann sends her waits in the relay's mailbox, where we read it.
    asClient(cat.engine).dangerousTestOnlySetOnline(false);
    const before = mailboxRows().filter((r) => r.deviceId === deviceOf(cat)).length;
    group = await ann.engine.createGroup(GROUP_NAME, [person(ben), person(cat)]);
    const forCat = await until('the group info waits in cat’s mailbox', () => {
      const rows = mailboxRows().filter((r) => r.deviceId === deviceOf(cat));
      return rows.length > before ? rows : undefined;
    });
    for (const row of forCat) expect(holds(row.body, GROUP_NAME)).toBe(false);
    asClient(cat.engine).dangerousTestOnlySetOnline(true);
    for (const u of [ben, cat]) {
      const g = await until(`${u.name} knows the group`, () => groupOf(u));
      expect(g.name).toBe(GROUP_NAME);
      expect(g.members.map((m) => m.username).sort()).toEqual([ann, ben, cat].map((x) => x.name.toLowerCase()).sort());
      expect(g.admins).toEqual([ann.userId]);
    }
  });

  it('delivers a message to every member with one encryption, and replies from the others', async () => {
    asClient(cat.engine).dangerousTestOnlySetOnline(false);
    const id = await ann.engine.send(group, 'hello group');
    await until('sent', async () => (await history(ann.engine, group)).find((m) => m.id === id)?.status !== 'pending');
    const sent = asClient(ann.engine).dangerousTestOnlySentGroupBodies();
    expect(sent).toHaveLength(1);
    // What the relay holds: the one body, waiting for cat; neither it nor anything else there holds the text or name.
    const rows = await until('the group body waits in cat’s mailbox', () => {
      const all = mailboxRows();
      return all.some((r) => r.messageId === id && r.groupId === group) ? all : undefined;
    });
    expect(Buffer.from(rows.find((r) => r.messageId === id)!.body).equals(Buffer.from(sent[0]!))).toBe(true);
    for (const body of [...sent, ...rows.map((r) => r.body)]) {
      expect(holds(body, 'hello group')).toBe(false);
      expect(holds(body, GROUP_NAME)).toBe(false);
    }
    asClient(cat.engine).dangerousTestOnlySetOnline(true);
    for (const u of [ben, cat]) {
      const got = await until(`${u.name} got it`, async () =>
        (await history(u.engine, group)).find((m) => m.id === id && m.text === 'hello group'),
      );
      expect(got).toMatchObject({ mine: false, sender: ann.userId, senderName: ann.name.toLowerCase() });
    }
    await ben.engine.send(group, 'hi from ben');
    await cat.engine.send(group, 'hi from cat');
    await until('ann has both replies', async () => {
      const texts = (await history(ann.engine, group)).map((m) => m.text);
      return texts.includes('hi from ben') && texts.includes('hi from cat');
    });
    await until('cat has ben', () => hasText(cat.engine, group, 'hi from ben'));
  });

  it('shows typing to every member; receipts move the author’s ticks and reach no other member', async () => {
    // A group of its own, so that nothing from the tests above is still on its way to dan, the member watched.
    const plans = await ann.engine.createGroup('Receipts', [person(ben), person(dan)]);
    for (const u of [ben, dan]) await until(`${u.name} knows the group`, () => groupIn(u, plans));
    const danStart = relayed(dan);
    ben.engine.notifyTyping(plans);
    await until('ann sees ben typing', () => ann.engine.getSnapshot().typingUntil[plans]);
    await until('dan sees ben typing', () => dan.engine.getSnapshot().typingUntil[plans]);
    await until('dan counted it', () => relayed(dan) - danStart === 1); // counted once handled, after it shows
    expect(ann.engine.getSnapshot().typingName[plans]).toBe(ben.name.toLowerCase());

    const annBefore = relayed(ann);
    const danBefore = relayed(dan);
    const id = await ann.engine.send(plans, 'please read');
    const status = async () => (await history(ann.engine, plans)).find((m) => m.id === id)?.status;
    await until('delivered', async () => (await status()) === 'delivered');
    await until('ben has it', () => hasText(ben.engine, plans, 'please read'));
    await until('dan has it', () => hasText(dan.engine, plans, 'please read'));
    await ben.engine.markRead(plans);
    await dan.engine.markRead(plans);
    await until('read', async () => (await status()) === 'read');
    // Ann's device got both members' receipts, delivered and read…
    await until('ann has four receipts', () => relayed(ann) - annBefore >= 4);
    // …and dan's device none of ben's: once ben's next group message is there, anything ben sent before it is too.
    await ben.engine.send(plans, 'fence from ben');
    await until('dan has the fence', () => hasText(dan.engine, plans, 'fence from ben'));
    expect(relayed(dan) - danBefore).toBe(0);
  });

  it('takes a receipt that names a group only from a member of that group', async () => {
    for (const u of [ben, cat]) asClient(u.engine).dangerousTestOnlySetOnline(false);
    try {
      const id = await ann.engine.send(group, 'no one has this yet');
      const status = async () => (await history(ann.engine, group)).find((m) => m.id === id)?.status;
      await until('sent', async () => (await status()) === 'sent');
      // Dan shares a group with ann, but not this one; he knows (or guesses) its id and the message id.
      await asClient(dan.engine).dangerousTestOnlySendControl(ann.userId, {
        v: 1,
        type: 'receipt',
        status: 'read',
        ids: [id],
        group,
      });
      await openWith(dan, ann);
      await dan.engine.send(ann.userId, 'fence from dan');
      await until('ann has dan’s fence', () => hasText(ann.engine, dan.userId, 'fence from dan'));
      expect(await status()).toBe('sent');
      // A member's receipt of the same shape is taken.
      asClient(ben.engine).dangerousTestOnlySetOnline(true);
      await until('delivered by ben', async () => (await status()) === 'delivered');
    } finally {
      for (const u of [ben, cat]) asClient(u.engine).dangerousTestOnlySetOnline(true);
    }
  });

  it('after a member is removed, everyone who stays rotates, and the removed member can read nothing new and sends no receipt there', async () => {
    // Cat keeps her sender-key records (her client never hears of the removal: she went offline before it).
    asClient(cat.engine).dangerousTestOnlySetOnline(false);
    await ann.engine.removeGroupMember(group, cat.userId);
    await until('ben sees cat gone', () => groupOf(ben)?.members.length === 2);

    await ann.engine.send(group, 'after removal from ann');
    await until('ben got ann', () => hasText(ben.engine, group, 'after removal from ann'));
    await ben.engine.send(group, 'after removal from ben');
    await until('ann got ben', () => hasText(ann.engine, group, 'after removal from ben'));

    const annBody = asClient(ann.engine).dangerousTestOnlySentGroupBodies().at(-1)!;
    const benBody = asClient(ben.engine).dangerousTestOnlySentGroupBodies().at(-1)!;
    // Cat held working records for both before the removal; the new ciphertexts name keys she never received.
    await expect(asClient(cat.engine).dangerousTestOnlyOpenGroupBody(group, annBody)).rejects.toMatchObject({
      code: 'decrypt_failed',
    });
    await expect(asClient(cat.engine).dangerousTestOnlyOpenGroupBody(group, benBody)).rejects.toMatchObject({
      code: 'decrypt_failed',
    });

    // Back online, cat's client learns she is out; nothing sent after the removal reaches her.
    asClient(cat.engine).dangerousTestOnlySetOnline(true);
    await until('cat sees she left', () => groupOf(cat)?.left === true);
    const catTexts = (await history(cat.engine, group)).map((m) => m.text);
    expect(catTexts).not.toContain('after removal from ann');
    expect(catTexts).not.toContain('after removal from ben');
    await expect(cat.engine.send(group, 'still here?')).resolves.toBeTypeOf('string');
    await until(
      'cat’s send fails visibly',
      async () => (await history(cat.engine, group)).find((m) => m.text === 'still here?')?.failure,
    );
    // Reading what she had unread sends no receipt: the members hear nothing more from her in the group.
    expect(groupOf(cat)?.left).toBe(true);
    const unread = cat.engine.getSnapshot().conversations.find((c) => c.conv === group)?.unread ?? 0;
    expect(unread).toBeGreaterThan(0);
    const annBefore = relayed(ann);
    await cat.engine.markRead(group);
    await openWith(cat, ann);
    await cat.engine.send(ann.userId, 'fence from cat');
    await until('ann has cat’s fence', () => hasText(ann.engine, cat.userId, 'fence from cat'));
    expect(relayed(ann) - annBefore).toBe(0);
  });
  it('a send that waited while a removal was handled never gives the new sender key to the member removed', async () => {
    const race = await ann.engine.createGroup('Race', [person(ben), person(cat)]);
    const members = (u: TestUser) =>
      u.engine.getSnapshot().conversations.find((c) => c.conv === race)?.group?.members.length;
    for (const u of [ben, cat]) await until('the group arrived', () => members(u) === 3);
    // Ben's key reaches everyone with his first message, cat's devices included (the baseline).
    await ben.engine.send(race, 'ben before the removal');
    await until('cat got it', () => hasText(cat.engine, race, 'ben before the removal'));
    const catSlot = `${cat.userId}/${deviceOf(cat)}`;
    expect(await asClient(ben.engine).dangerousTestOnlyGroupKeyDevices(race)).toContain(catSlot);

    // Ben's client handles the removal in the group's queue: it rotates his key, then stores the new member list
    // (that commit is held). A send of his waits for the queue meanwhile, having been queued when cat was a member.
    const hold = holdNextMessagesCommit(ben.engine, ['conversations']);
    try {
      await ann.engine.removeGroupMember(race, cat.userId);
      await hold.holding;
      const sending = ben.engine.send(race, 'sent as cat is removed');
      await until(
        'the send waits for the group',
        () => asClient(ben.engine).dangerousTestOnlyGroupQueueWaiting(race) > 0,
      );
      await hold.release();
      await sending;
    } finally {
      hold.stop();
    }
    await until('ann got it', () => hasText(ann.engine, race, 'sent as cat is removed'));
    // The key it went out under was given to ann, not to cat.
    const devices = await asClient(ben.engine).dangerousTestOnlyGroupKeyDevices(race);
    expect(devices).toContain(`${ann.userId}/${deviceOf(ann)}`);
    expect(devices.filter((d) => d.startsWith(`${cat.userId}/`))).toEqual([]);
    const body = asClient(ben.engine).dangerousTestOnlySentGroupBodies().at(-1)!;
    await expect(asClient(cat.engine).dangerousTestOnlyOpenGroupBody(race, body)).rejects.toMatchObject({
      code: 'decrypt_failed',
    });
  });
  it('a rename stored after a removal was handled does not bring the removed member back, nor give them the key', async () => {
    const g = await ann.engine.createGroup('Rename race', [person(ben), person(cat)]);
    const groupOn = (u: TestUser) => u.engine.getSnapshot().conversations.find((c) => c.conv === g)?.group;
    for (const u of [ben, cat]) await until('the group arrived', () => groupOn(u)?.members.length === 3);
    await ann.engine.setGroupAdmin(g, ben.userId, true);
    await until('ben is an admin', () => groupOn(ben)?.admins.includes(ben.userId));
    await ben.engine.send(g, 'ben before the rename');
    await until('cat got it', () => hasText(cat.engine, g, 'ben before the rename'));
    expect(await asClient(ben.engine).dangerousTestOnlyGroupKeyDevices(g)).toContain(`${cat.userId}/${deviceOf(cat)}`);

    // Ben renames; his commit of the new name is held. Meanwhile ann removes cat, and ben's client hears of it.
    const hold = holdNextMessagesCommit(ben.engine, ['conversations']);
    const removedLine = async () =>
      (await history(ben.engine, g)).some(
        (m) => m.kind === 'notice' && m.text.includes(`removed ${person(cat).username}`),
      );
    try {
      const renaming = ben.engine.renameGroup(g, 'Renamed in the race');
      await hold.holding;
      await ann.engine.removeGroupMember(g, cat.userId);
      // The removal reached ben: it waits for the group's queue, or (were group changes not serialized) it is stored.
      await until(
        'the removal reached ben',
        async () => asClient(ben.engine).dangerousTestOnlyGroupQueueWaiting(g) > 0 || (await removedLine()),
      );
      await hold.release();
      await renaming;
    } finally {
      hold.stop();
    }
    await until('the removal is stored on ben’s device', removedLine);
    expect(groupOn(ben)?.name).toBe('Renamed in the race');
    expect(groupOn(ben)?.members.map((m) => m.userId)).not.toContain(cat.userId);
    await ben.engine.send(g, 'ben after the race');
    await until('ann got it', () => hasText(ann.engine, g, 'ben after the race'));
    const devices = await asClient(ben.engine).dangerousTestOnlyGroupKeyDevices(g);
    expect(devices).toContain(`${ann.userId}/${deviceOf(ann)}`);
    expect(devices.filter((d) => d.startsWith(`${cat.userId}/`))).toEqual([]);
  });
});
