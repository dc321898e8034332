// Group admin features against a real relay: renames and pictures travel encrypted and are taken only from admins
// (the relay's admin list decides), admins promote and demote, and every membership change leaves the same notice
// line in every member's log; being added counts as unread. Group info from someone never in the group changes nothing.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatMessage, Person } from '../../src/client/types';
import { asClient, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let ann: TestUser;
let ben: TestUser;
let cat: TestUser;
let dan: TestUser;
let group: string;

const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });
const nameOf = (u: TestUser): string => u.name.toLowerCase();
const groupOf = (u: TestUser) => u.engine.getSnapshot().conversations.find((c) => c.conv === group);

/** The notice lines of a member's log for the group, oldest first. */
async function notices(u: TestUser): Promise<string[]> {
  return (await history(u.engine, group)).filter((m: ChatMessage) => m.kind === 'notice').map((m) => m.text);
}

/** Waits until `u`'s log holds the notice `text`. */
function sees(u: TestUser, text: string): Promise<string[]> {
  return until(`${u.name} sees “${text}”`, async () => {
    const lines = await notices(u);
    return lines.includes(text) ? lines : undefined;
  });
}

/** Waits until `u` has the group message `text` (a fence: whatever the same sender sent before it was handled). */
function hasMessage(u: TestUser, text: string): Promise<true> {
  return until(`${u.name} has “${text}”`, async () =>
    (await history(u.engine, group)).some((m) => m.text === text && !m.kind) ? true : undefined,
  );
}

/** Every byte the relay keeps on disk (its SQLite database with WAL and shared memory files). */
function relayFiles(): Buffer {
  return Buffer.concat(
    readdirSync(relay.dataDir)
      .filter((f) => f.startsWith('weconnect.db'))
      .map((f) => readFileSync(join(relay.dataDir, f))),
  );
}

function mailboxBodies(): Buffer[] {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    return (
      db
        .prepare(
          `SELECT CASE WHEN m.body_id IS NULL THEN m.body ELSE b.body END AS body
             FROM mailbox m LEFT JOIN bodies b ON b.body_id = m.body_id`,
        )
        .all() as { body: Buffer }[]
    ).map((r) => r.body);
  } finally {
    db.close();
  }
}

/** A small valid-looking JPEG: the magic bytes, then a recognisable pattern. */
function fakeJpeg(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + 13) % 251;
  bytes.set([0xff, 0xd8, 0xff, 0xe0], 0);
  return bytes;
}

beforeAll(async () => {
  relay = await startTestRelay();
  [ann, ben, cat, dan] = await Promise.all([
    signUpUser(relay.url, 'ga_ann'),
    signUpUser(relay.url, 'ga_ben'),
    signUpUser(relay.url, 'ga_cat'),
    signUpUser(relay.url, 'ga_dan'),
  ]);
  group = await ann.engine.createGroup('Book club', [person(ben), person(cat)]);
  for (const u of [ben, cat]) await until(`${u.name} knows the group`, () => groupOf(u));
}, 60_000);

afterAll(async () => {
  for (const u of [ann, ben, cat, dan]) if (u) asClient(u.engine).close();
  await relay?.close();
});

describe('group admins, names and notices', () => {
  it('counts being added as unread, with the notice that says who added you', async () => {
    for (const u of [ben, cat]) {
      expect(groupOf(u)?.unread).toBe(1);
      expect(await notices(u)).toEqual([`${nameOf(ann)} added you`]);
    }
  });

  it('renames the group for every member, with a notice in every log', async () => {
    await ann.engine.renameGroup(group, 'Reading circle');
    expect(groupOf(ann)?.username).toBe('Reading circle');
    expect(await notices(ann)).toContain('You renamed the group to “Reading circle”');
    for (const u of [ben, cat]) {
      await sees(u, `${nameOf(ann)} renamed the group to “Reading circle”`);
      expect(groupOf(u)?.username).toBe('Reading circle');
    }
  });

  it('ignores a rename from a member who is not an admin', async () => {
    // Cat's client would refuse; a modified one sends the group-info payload anyway, with a rename event.
    await expect(cat.engine.renameGroup(group, 'Cat’s club')).rejects.toThrow(/admins/);
    const forged = {
      v: 1,
      t: 'group',
      groupId: group,
      name: 'Hijacked by cat',
      members: groupOf(cat)!.group!.members,
      event: { type: 'renamed' },
    };
    for (const u of [ann, ben]) await asClient(cat.engine).dangerousTestOnlySendPairwiseJson(u.userId, forged);
    await cat.engine.send(group, 'sent after the forged rename');
    for (const u of [ann, ben]) {
      await hasMessage(u, 'sent after the forged rename');
      expect(groupOf(u)?.username).toBe('Reading circle');
      expect((await notices(u)).some((t) => t.includes('Hijacked'))).toBe(false);
    }
  });

  it('ignores group info from someone who was never in the group, even without a change', async () => {
    const eve = await signUpUser(relay.url, 'ga_eve');
    try {
      await openWith(eve, ann);
      const before = groupOf(ann);
      if (!before?.group) throw new Error('ann does not know the group');
      // Eve learned the group's id; her modified client sends its info, as a member's device would to a new device.
      const info = { v: 1, t: 'group', groupId: group, name: before.group.name, members: before.group.members };
      await asClient(eve.engine).dangerousTestOnlySendPairwiseJson(ann.userId, info);
      await eve.engine.send(ann.userId, 'sent after the group info');
      await until('ann has eve’s message', () => hasText(ann.engine, eve.userId, 'sent after the group info'));
      expect(groupOf(ann)).toEqual(before);
    } finally {
      asClient(eve.engine).close();
    }
  });

  it('lets an admin make a member admin; the new admin renames, and every member sees both notices', async () => {
    await ann.engine.setGroupAdmin(group, ben.userId, true);
    expect(groupOf(ann)?.group?.admins).toEqual([ann.userId, ben.userId]);
    await sees(cat, `${nameOf(ann)} made ${nameOf(ben)} an admin`);
    await sees(ben, `${nameOf(ann)} made you an admin`);
    await until('ben knows he is admin', () => groupOf(ben)?.group?.admins.includes(ben.userId));
    await ben.engine.renameGroup(group, 'Readers');
    for (const u of [ann, cat]) {
      await sees(u, `${nameOf(ben)} renamed the group to “Readers”`);
      expect(groupOf(u)?.username).toBe('Readers');
    }
    expect(await notices(cat)).toEqual([
      `${nameOf(ann)} added you`,
      `${nameOf(ann)} renamed the group to “Reading circle”`,
      `${nameOf(ann)} made ${nameOf(ben)} an admin`,
      `${nameOf(ben)} renamed the group to “Readers”`,
    ]);
  });

  it('shows added, removed and left in every member’s log, and tells the removed member', async () => {
    await ann.engine.addGroupMembers(group, [person(dan)]);
    for (const u of [ben, cat]) await sees(u, `${nameOf(ann)} added ${nameOf(dan)}`);
    await sees(dan, `${nameOf(ann)} added you`);
    await until('dan’s unread count rises', () => groupOf(dan)?.unread === 1);

    await ben.engine.removeGroupMember(group, dan.userId);
    for (const u of [ann, cat]) await sees(u, `${nameOf(ben)} removed ${nameOf(dan)}`);
    await sees(dan, `${nameOf(ben)} removed you`);
    expect(groupOf(dan)?.group?.left).toBe(true);

    await cat.engine.leaveGroup(group);
    expect(await notices(cat)).toContain('You left the group');
    for (const u of [ann, ben]) await sees(u, `${nameOf(cat)} left`);
  });

  it('sends the group picture end to end encrypted: the relay never holds its bytes', async () => {
    const picture = fakeJpeg(20_000);
    const marker = Buffer.from(picture.subarray(4, 68));
    const asText = Buffer.from(Buffer.from(picture).toString('base64url').slice(8, 96));
    // Baseline: before the picture is sent, and with the scan shown to find what is there in clear.
    expect(relayFiles().includes(marker)).toBe(false);
    expect(relayFiles().includes(Buffer.from(ann.userId))).toBe(true);
    asClient(ben.engine).dangerousTestOnlySetOnline(false);
    // Waits for the picture message itself: the only body of its size. (Not for the count of entries to grow: the
    // deletions of delivered entries may commit with this very send, ACK_HOLD_MS.)
    const pictureSized = (b: Buffer): boolean => b.length > 20_000;
    expect(mailboxBodies().some(pictureSized)).toBe(false);
    await ann.engine.setGroupPicture(group, picture);
    const bodies = await until('the picture waits in ben’s mailbox', () => {
      const now = mailboxBodies();
      return now.some(pictureSized) ? now : undefined;
    });
    for (const haystack of [...bodies, relayFiles()]) {
      expect(haystack.includes(marker)).toBe(false);
      expect(haystack.includes(asText)).toBe(false);
    }
    asClient(ben.engine).dangerousTestOnlySetOnline(true);
    await sees(ben, `${nameOf(ann)} changed the group picture`);
    expect(groupOf(ben)?.group?.picture).toEqual(picture);

    // Someone added later gets the current picture with the group, quietly, and the addition counts as unread.
    await dan.engine.markRead(group);
    await ann.engine.addGroupMembers(group, [person(dan)]);
    await until('dan gets the picture', () => groupOf(dan)?.group?.picture);
    expect(groupOf(dan)?.group?.picture).toEqual(picture);
    expect(groupOf(dan)?.group?.left).toBe(false);
    expect(groupOf(dan)?.unread).toBe(1);
    expect((await notices(dan)).filter((t) => t.includes('picture'))).toEqual([]);
    expect((await notices(dan)).at(-1)).toBe(`${nameOf(ann)} added you`);
  });

  it('ignores a group picture from a member who is not an admin, and a payload that is not an image', async () => {
    await ann.engine.setGroupAdmin(group, ben.userId, false);
    await until('ben is no longer admin', () => groupOf(ben)?.group?.admins.includes(ben.userId) === false);
    const before = groupOf(ann)?.group?.picture;
    const forged = {
      v: 1,
      t: 'group-picture',
      groupId: group,
      picture: Buffer.from(fakeJpeg(500)).toString('base64url'),
    };
    await asClient(ben.engine).dangerousTestOnlySendPairwiseJson(ann.userId, forged);
    await ben.engine.send(group, 'sent after the forged picture');
    await hasMessage(ann, 'sent after the forged picture');
    expect(groupOf(ann)?.group?.picture).toEqual(before);
    expect((await notices(ann)).filter((t) => t.includes('group picture'))).toEqual(['You changed the group picture']);
    // An admin's payload that is not an image is dropped too.
    await ann.engine.setGroupAdmin(group, ben.userId, true);
    await until('ben is admin again', () => groupOf(ben)?.group?.admins.includes(ben.userId));
    const junk = { ...forged, picture: Buffer.from('<svg onload=alert(1)>').toString('base64url') };
    await asClient(ben.engine).dangerousTestOnlySendPairwiseJson(ann.userId, junk);
    await ben.engine.send(group, 'sent after the junk picture');
    await hasMessage(ann, 'sent after the junk picture');
    expect(groupOf(ann)?.group?.picture).toEqual(before);
  });
});
