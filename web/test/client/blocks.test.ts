// Blocking against a real relay: ann blocks mal. The relay stores nothing mal sends her directly (read from its
// mailbox table), her engine drops mal's messages in a group they share, sends mal no typing indicators or receipts,
// and her other devices learn the block list from the relay. Unblocking lets mal through again.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Person } from '../../src/client/types';
import { asClient, boot, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let ann: TestUser;
let mal: TestUser;
let cat: TestUser;

const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });
const deviceOf = (u: TestUser): string => u.engine.getSnapshot().me.deviceId;

/** The message ids the relay's mailbox table holds for a device (what the operator stores for it). */
function storedFor(deviceId: string): string[] {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    return (
      db.prepare('SELECT message_id AS id FROM mailbox WHERE device_id = ?').all(deviceId) as { id: string }[]
    ).map((r) => r.id);
  } finally {
    db.close();
  }
}

/** Waits until `u`'s outbox is empty: the relay has acknowledged every send. */
const flushed = (u: TestUser) =>
  until('outbox empty', async () => (await asClient(u.engine).dangerousTestOnlyOutboxSize()) === 0);

beforeAll(async () => {
  relay = await startTestRelay();
  [ann, mal, cat] = await Promise.all([
    signUpUser(relay.url, 'b_ann'),
    signUpUser(relay.url, 'b_mal'),
    signUpUser(relay.url, 'b_cat'),
  ]);
  await openWith(mal, ann);
  await openWith(ann, mal);
  await openWith(cat, ann);
}, 60_000);

afterAll(async () => {
  for (const u of [ann, mal, cat]) if (u) asClient(u.engine).close();
  await relay?.close();
});

describe('blocking', () => {
  it('stores nothing the blocked person sends, at the relay, and shows nothing of it', async () => {
    // Baseline: before the block, mal's message reaches ann.
    await mal.engine.send(ann.userId, 'before the block');
    await until('ann got it', () => hasText(ann.engine, mal.userId, 'before the block'));
    // And ann's delivery receipt reached mal before the block (the last test checks no read receipt follows it).
    await until('mal saw it delivered', async () =>
      (await history(mal.engine, ann.userId)).some((m) => m.text === 'before the block' && m.status === 'delivered'),
    );

    await ann.engine.block(person(mal));
    expect(ann.engine.getSnapshot().blocked).toEqual([person(mal)]);
    asClient(ann.engine).dangerousTestOnlySetOnline(false);
    const id = await mal.engine.send(ann.userId, 'after the block');
    await flushed(mal);
    // The relay acknowledged the send, and holds nothing of it for ann's device.
    expect(storedFor(deviceOf(ann))).not.toContain(id);
    const [latest] = (await history(mal.engine, ann.userId)).filter((m) => m.id === id);
    expect(latest?.status).toBe('sent');

    // The fence: cat's message, sent after, arrives; mal's never does.
    await cat.engine.send(ann.userId, 'fence from cat');
    asClient(ann.engine).dangerousTestOnlySetOnline(true);
    await until('ann got the fence', () => hasText(ann.engine, cat.userId, 'fence from cat'));
    expect(await hasText(ann.engine, mal.userId, 'after the block')).toBe(false);
  });

  it('drops what the blocked person sent before the block and the relay still held', async () => {
    await ann.engine.unblock(mal.userId);
    asClient(ann.engine).dangerousTestOnlySetOnline(false);
    const id = await mal.engine.send(ann.userId, 'queued before the block');
    await flushed(mal);
    expect(storedFor(deviceOf(ann))).toContain(id);
    await ann.engine.block(person(mal));
    await cat.engine.send(ann.userId, 'second fence from cat');
    asClient(ann.engine).dangerousTestOnlySetOnline(true);
    await until('ann got the fence', () => hasText(ann.engine, cat.userId, 'second fence from cat'));
    await until('the relay deleted it (acknowledged)', () => !storedFor(deviceOf(ann)).includes(id));
    expect(await hasText(ann.engine, mal.userId, 'queued before the block')).toBe(false);
  });

  it('sends the blocked person no typing indicator and no read receipt', async () => {
    ann.engine.notifyTyping(mal.userId);
    await ann.engine.markRead(mal.userId);
    // The fence: ann (who may still write to mal) sends a stored message after both; by the time mal has it, a
    // typing indicator or receipt sent before it would have arrived.
    await ann.engine.send(mal.userId, 'fence from ann');
    await until('mal got the fence', () => hasText(mal.engine, ann.userId, 'fence from ann'));
    expect(mal.engine.getSnapshot().typingUntil[ann.userId]).toBeUndefined();
    const before = (await history(mal.engine, ann.userId)).find((m) => m.text === 'before the block');
    expect(before?.status).toBe('delivered');
  });

  it("drops a blocked member's messages in a group both are in, and sends them no read receipt there", async () => {
    // Baseline: before the block, ann reads mal in the group (and so holds mal's sender key).
    await ann.engine.unblock(mal.userId);
    const group = await cat.engine.createGroup('Shared', [person(ann), person(mal)]);
    for (const u of [ann, mal]) {
      await until(`${u.name} knows the group`, () =>
        u.engine.getSnapshot().conversations.some((c) => c.conv === group),
      );
    }
    const malsId = await mal.engine.send(group, 'mal before the block');
    await until('ann got mal', () => hasText(ann.engine, group, 'mal before the block'));
    const malsStatus = async () => (await history(mal.engine, group)).find((m) => m.id === malsId)?.status;
    await until('mal saw it delivered', async () => (await malsStatus()) === 'delivered');

    await ann.engine.block(person(mal));
    await mal.engine.send(group, 'mal in the group');
    await flushed(mal);
    await cat.engine.send(group, 'cat in the group');
    await until('ann got cat', () => hasText(ann.engine, group, 'cat in the group'));
    await until('cat got mal', () => hasText(cat.engine, group, 'mal in the group'));
    expect(await hasText(ann.engine, group, 'mal in the group')).toBe(false);
    // Not even as a message that "could not be decrypted".
    expect((await history(ann.engine, group)).filter((m) => m.failure !== undefined)).toEqual([]);
    // Reading the group now sends mal no read receipt of the message ann had from mal before the block. The fence:
    // ann's next group message reaches mal after anything ann sent before it.
    await ann.engine.markRead(group);
    await ann.engine.send(group, 'fence from ann in the group');
    await until('mal got ann’s fence', () => hasText(mal.engine, group, 'fence from ann in the group'));
    expect(await malsStatus()).toBe('delivered');
  });

  it('learns the block list from the relay on another device, and lets the person through once unblocked', async () => {
    const second = await boot(relay.url, `${ann.db}-second`).signIn(ann.name, ann.password);
    try {
      await until('the second device knows the block', () => second.getSnapshot().blocked.length === 1);
      expect(second.getSnapshot().blocked).toEqual([person(mal)]);
      await ann.engine.unblock(mal.userId);
      expect(ann.engine.getSnapshot().blocked).toEqual([]);
      await mal.engine.send(ann.userId, 'after unblocking');
      await until('ann got it', () => hasText(ann.engine, mal.userId, 'after unblocking'));
    } finally {
      asClient(second).close();
    }
  });
  it('takes two blocks made at once, and two unblocks, each in memory and as stored for the next start', async () => {
    const stored = async () =>
      ((await asClient(ann.engine).dangerousTestOnlyStoredBlocks()) ?? []).map((p) => p.userId).sort();
    // Baseline: nobody is blocked after the unblock above.
    expect(ann.engine.getSnapshot().blocked).toEqual([]);
    expect(await stored()).toEqual([]);
    await Promise.all([ann.engine.block(person(mal)), ann.engine.block(person(cat))]);
    const both = [mal.userId, cat.userId].sort();
    expect(
      ann.engine
        .getSnapshot()
        .blocked.map((p) => p.userId)
        .sort(),
    ).toEqual(both);
    expect(await stored()).toEqual(both);
    await Promise.all([ann.engine.unblock(mal.userId), ann.engine.unblock(cat.userId)]);
    expect(ann.engine.getSnapshot().blocked).toEqual([]);
    expect(await stored()).toEqual([]);
  });
});
