// Message actions against a real relay: reactions, edits, deletes for everyone and for me, in one-to-one
// conversations, groups and across our own devices; actions that arrive before their message (the relay's mailbox
// reordered in its SQLite file, as a network path could); forged ones from someone who did not write the message;
// the 24-hour window for deleting; and property tests of the payload parser and of arrival orders.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { join } from 'node:path';
import { MAX_CONTENT_BYTES } from '@weconnect/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyAction, DELETE_WINDOW_MS, type Audience, type TargetedAction } from '../../src/client/action-state';
import {
  CRYPTO_MAX_CONTENT_BYTES,
  KT_GOSSIP_MAX_BYTES,
  MAX_TEXT_BYTES,
  encodedTextBytes,
  payloadFits,
} from '../../src/client/message-limits';
import { PENDING_MAX } from '../../src/client/actions';
import { actionPayloadSchema, chatPayloadSchema } from '../../src/client/schemas';
import type { ChatEngineApi, ChatMessage, Person } from '../../src/client/types';
import { holdNextMessagesCommit } from '../support/commits';
import { asClient, boot, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let offset = 0;
const clock = { now: () => Date.now() + offset };
let ann: TestUser;
let ann2: ChatEngineApi;
let ben: TestUser;
let cat: TestUser;
let group: string;
const engines: ChatEngineApi[] = [];

const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });
const deviceOf = (e: ChatEngineApi): string => e.getSnapshot().me.deviceId;

async function find(engine: ChatEngineApi, conv: string, id: string): Promise<ChatMessage | undefined> {
  return (await history(engine, conv)).find((m) => m.id === id);
}

/** Waits until `engine` holds message `id` in `conv` and `probe` accepts it. */
function waitFor(
  what: string,
  engine: ChatEngineApi,
  conv: string,
  id: string,
  probe: (m: ChatMessage) => boolean = () => true,
): Promise<ChatMessage> {
  return until(what, async () => {
    const m = await find(engine, conv, id);
    return m && probe(m) ? m : undefined;
  });
}

/** Sends a message and waits until every listed engine holds it (so later actions find it). */
async function sendAndWait(
  from: ChatEngineApi,
  conv: string,
  text: string,
  others: { engine: ChatEngineApi; conv: string }[],
): Promise<string> {
  const id = await from.send(conv, text);
  for (const o of others) await waitFor(`${text} arrived`, o.engine, o.conv, id);
  return id;
}

/** A marker message after forged actions: once it arrives, everything sent before it was handled (in order). */
async function barrier(from: ChatEngineApi, conv: string, to: ChatEngineApi, toConv: string): Promise<void> {
  await sendAndWait(from, conv, `barrier ${Math.random()}`, [{ engine: to, conv: toConv }]);
}

function mailbox(): Database.Database {
  return new Database(join(relay.dataDir, 'weconnect.db'), { fileMustExist: true });
}

/**
 * Swaps, in the relay's SQLite mailbox of `device`, the row of message `id` with the newest row after it (the
 * action on it), so the device gets the action first: an arrival order a network path could produce.
 */
async function deliverActionFirst(device: string, id: string): Promise<void> {
  const db = mailbox();
  try {
    const [message, action] = await until('both rows are stored', () => {
      const all = db
        .prepare('SELECT seq, message_id AS id FROM mailbox WHERE device_id = ? ORDER BY seq')
        .all(device) as { seq: number; id: string }[];
      const at = all.findIndex((r) => r.id === id);
      const first = all[at];
      const last = all[all.length - 1];
      return at >= 0 && all.length > at + 1 && first && last ? ([first, last] as const) : undefined;
    });
    db.transaction(() => {
      db.prepare('UPDATE mailbox SET seq = -1 WHERE seq = ?').run(message.seq);
      db.prepare('UPDATE mailbox SET seq = ? WHERE seq = ?').run(message.seq, action.seq);
      db.prepare('UPDATE mailbox SET seq = ? WHERE seq = -1').run(action.seq);
    })();
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  relay = await startTestRelay();
  [ann, ben, cat] = await Promise.all([
    signUpUser(relay.url, 'ac_ann', clock),
    signUpUser(relay.url, 'ac_ben', clock),
    signUpUser(relay.url, 'ac_cat', clock),
  ]);
  ann2 = await boot(relay.url, `${ann.db}-second`, clock).signIn(ann.name, ann.password);
  engines.push(ann2);
  await until('ann2 online', () => ann2.getSnapshot().connection === 'online');
  await openWith(ann, ben);
  await openWith(ben, ann);
  // Sessions both ways before the tests (later sends are plain ratchet messages).
  await sendAndWait(ann.engine, ben.userId, 'hello ben', [
    { engine: ben.engine, conv: ann.userId },
    { engine: ann2, conv: ben.userId },
  ]);
  await sendAndWait(ben.engine, ann.userId, 'hello ann', [
    { engine: ann.engine, conv: ben.userId },
    { engine: ann2, conv: ben.userId },
  ]);
  group = await ann.engine.createGroup('Actions', [person(ben), person(cat)]);
  for (const u of [ben, cat]) {
    await until('group known', () => u.engine.getSnapshot().conversations.find((c) => c.conv === group)?.group);
  }
}, 120_000);

afterAll(async () => {
  for (const e of [...engines, ann?.engine, ben?.engine, cat?.engine]) if (e) asClient(e).close();
  await relay?.close();
});

describe('reactions', () => {
  it('reach the peer and our other device; a second reaction replaces the first; removing takes it back', async () => {
    const id = await sendAndWait(ben.engine, ann.userId, 'react to me', [
      { engine: ann.engine, conv: ben.userId },
      { engine: ann2, conv: ben.userId },
    ]);
    await ann.engine.react(ben.userId, id, '👍');
    expect((await find(ann.engine, ben.userId, id))?.reactions).toEqual([{ from: ann.userId, emoji: '👍' }]);
    await waitFor('ben sees 👍', ben.engine, ann.userId, id, (m) => m.reactions?.[0]?.emoji === '👍');
    await waitFor('ann2 sees 👍', ann2, ben.userId, id, (m) => m.reactions?.[0]?.emoji === '👍');

    await ann.engine.react(ben.userId, id, '❤️');
    await ben.engine.react(ann.userId, id, '😂');
    const both = (m: ChatMessage) =>
      m.reactions?.length === 2 && m.reactions.some((r) => r.from === ann.userId && r.emoji === '❤️');
    await waitFor('ben sees one reaction each', ben.engine, ann.userId, id, both);
    await waitFor('ann2 sees one reaction each', ann2, ben.userId, id, both);

    await ann.engine.unreact(ben.userId, id);
    const onlyBen = (m: ChatMessage) => m.reactions?.length === 1 && m.reactions[0]?.from === ben.userId;
    await waitFor('ben sees ann’s reaction gone', ben.engine, ann.userId, id, onlyBen);
    await waitFor('ann2 sees it gone', ann2, ben.userId, id, onlyBen);
    expect((await find(ann.engine, ben.userId, id))?.reactions).toEqual([{ from: ben.userId, emoji: '😂' }]);
  });

  it('are refused when not one emoji', async () => {
    const id = await sendAndWait(ann.engine, ben.userId, 'no text reactions', [
      { engine: ben.engine, conv: ann.userId },
    ]);
    await expect(ann.engine.react(ben.userId, id, '<b>x</b>')).rejects.toThrow(/one emoji/);
  });

  it('in a group, come from current members and show on every member’s copy', async () => {
    const id = await sendAndWait(cat.engine, group, 'group message', [
      { engine: ann.engine, conv: group },
      { engine: ben.engine, conv: group },
    ]);
    await ben.engine.react(group, id, '🙏');
    await waitFor('ann sees ben’s 🙏', ann.engine, group, id, (m) => m.reactions?.[0]?.from === ben.userId);
    await waitFor('cat sees ben’s 🙏', cat.engine, group, id, (m) => m.reactions?.[0]?.emoji === '🙏');
  });
});

describe('edits', () => {
  it('replace the text for the peer and our other device and mark it edited; the conversation list follows', async () => {
    const id = await sendAndWait(ann.engine, ben.userId, 'teh typo', [
      { engine: ben.engine, conv: ann.userId },
      { engine: ann2, conv: ben.userId },
    ]);
    await ann.engine.edit(ben.userId, id, 'the typo, fixed');
    const local = await find(ann.engine, ben.userId, id);
    expect(local).toMatchObject({ text: 'the typo, fixed' });
    expect(local?.edited).toBeTypeOf('number');
    await waitFor('ben sees the edit', ben.engine, ann.userId, id, (m) => m.text === 'the typo, fixed' && !!m.edited);
    await waitFor('ann2 sees the edit', ann2, ben.userId, id, (m) => m.text === 'the typo, fixed' && !!m.edited);
    await until('ben’s list shows it', () =>
      ben.engine.getSnapshot().conversations.find((c) => c.conv === ann.userId && c.lastText === 'the typo, fixed'),
    );
    await ann.engine.edit(ben.userId, id, 'second edit');
    await waitFor('ben sees the latest edit', ben.engine, ann.userId, id, (m) => m.text === 'second edit');
  });

  it('are refused for someone else’s message before anything is sent', async () => {
    const id = await sendAndWait(ben.engine, ann.userId, 'ben wrote this', [{ engine: ann.engine, conv: ben.userId }]);
    await expect(ann.engine.edit(ben.userId, id, 'ann rewrites it')).rejects.toThrow(/own messages/);
  });

  it('from someone who did not write the message are ignored (one-to-one)', async () => {
    const id = await sendAndWait(ann.engine, ben.userId, 'ann’s words', [{ engine: ben.engine, conv: ann.userId }]);
    // Ben's client misbehaves: an edit and a delete of ann's message, straight to ann's devices.
    await asClient(ben.engine).dangerousTestOnlySendPairwiseJson(ann.userId, {
      v: 1,
      type: 'edit',
      target: id,
      text: 'forged by ben',
    });
    await asClient(ben.engine).dangerousTestOnlySendPairwiseJson(ann.userId, { v: 1, type: 'delete', target: id });
    await barrier(ben.engine, ann.userId, ann.engine, ben.userId);
    const m = await find(ann.engine, ben.userId, id);
    expect(m).toMatchObject({ text: 'ann’s words' });
    expect(m?.edited).toBeUndefined();
    expect(m?.deleted).toBeUndefined();
  });

  it('in a group, from a member who did not write the message are ignored', async () => {
    const id = await sendAndWait(cat.engine, group, 'cat’s words', [
      { engine: ann.engine, conv: group },
      { engine: ben.engine, conv: group },
    ]);
    await asClient(ben.engine).dangerousTestOnlyQueueAction(group, {
      v: 1,
      type: 'edit',
      target: id,
      text: 'ben forged this',
    });
    await asClient(ben.engine).dangerousTestOnlyQueueAction(group, { v: 1, type: 'delete', target: id });
    await barrier(ben.engine, group, ann.engine, group);
    await barrier(ben.engine, group, cat.engine, group);
    for (const e of [ann.engine, cat.engine]) {
      const m = await find(e, group, id);
      expect(m).toMatchObject({ text: 'cat’s words' });
      expect(m?.deleted).toBeUndefined();
    }
    // The author's own edit goes through.
    await cat.engine.edit(group, id, 'cat’s words, edited');
    await waitFor('ann sees cat’s edit', ann.engine, group, id, (m) => m.text === 'cat’s words, edited');
  });

  it('aimed at a message of another conversation are ignored', async () => {
    // Cat wrote a group message; cat edits "it" from a one-to-one conversation with ann.
    const id = await sendAndWait(cat.engine, group, 'said in the group', [{ engine: ann.engine, conv: group }]);
    await openWith(cat, ann);
    await asClient(cat.engine).dangerousTestOnlySendPairwiseJson(ann.userId, {
      v: 1,
      type: 'edit',
      target: id,
      text: 'edited from elsewhere',
    });
    await openWith(ann, cat);
    await barrier(cat.engine, ann.userId, ann.engine, cat.userId);
    expect(await find(ann.engine, group, id)).toMatchObject({ text: 'said in the group' });
  });
});

describe('delete for everyone', () => {
  it('clears text, quote and reactions on every device and ignores a later edit', async () => {
    const quoted = await sendAndWait(ben.engine, ann.userId, 'quoted', [{ engine: ann.engine, conv: ben.userId }]);
    const id = await ann.engine.send(ben.userId, 'regret this', {
      reply: { id: quoted, author: ben.userId, text: 'quoted' },
    });
    await waitFor('ben got it', ben.engine, ann.userId, id);
    await waitFor('ann2 got it', ann2, ben.userId, id);
    await ben.engine.react(ann.userId, id, '😮');
    await waitFor('ann sees the reaction', ann.engine, ben.userId, id, (m) => !!m.reactions);
    await ann.engine.deleteForEveryone(ben.userId, id);
    const gone = (m: ChatMessage) => m.deleted === true && m.text === '' && !m.reply && !m.reactions && !m.attachments;
    await waitFor('ben sees it deleted', ben.engine, ann.userId, id, gone);
    await waitFor('ann2 sees it deleted', ann2, ben.userId, id, gone);
    expect(gone((await find(ann.engine, ben.userId, id))!)).toBe(true);
    await until('ben’s list says so', () =>
      ben.engine
        .getSnapshot()
        .conversations.find((c) => c.conv === ann.userId && c.lastText === 'This message was deleted'),
    );
    // A later edit (ann's client misbehaving) changes nothing.
    await asClient(ann.engine).dangerousTestOnlyQueueAction(ben.userId, {
      v: 1,
      type: 'edit',
      target: id,
      text: 'back from the dead',
    });
    await barrier(ann.engine, ben.userId, ben.engine, ann.userId);
    expect(gone((await find(ben.engine, ann.userId, id))!)).toBe(true);
    await expect(ann.engine.edit(ben.userId, id, 'again')).rejects.toThrow(/deleted/);
  });

  /**
   * Ben writes to ann and deletes it for everyone at once; ann's own change to the message (`change`) has read the
   * row, and its commit is held until ben's delete has reached her. Once both are done, the message stays deleted
   * on ann's device, and what ann's change did (a read mark, a reaction) is kept too.
   */
  async function raceDelete(
    text: string,
    change: (id: string) => Promise<unknown>,
    whileLatest: () => Promise<void> = async () => undefined,
  ): Promise<ChatMessage> {
    const id = await sendAndWait(ben.engine, ann.userId, text, [{ engine: ann.engine, conv: ben.userId }]);
    // Baseline: ann's device holds the text.
    expect((await find(ann.engine, ben.userId, id))?.text).toBe(text);
    const hold = holdNextMessagesCommit(ann.engine);
    try {
      const changing = change(id);
      await hold.holding;
      await ben.engine.deleteForEveryone(ann.userId, id);
      // The delete reached ann: it waits for the held change, or (were changes not serialized) it is applied already.
      await until('the delete reached ann', async () => {
        if (asClient(ann.engine).dangerousTestOnlyMessageChangesWaiting() > 0) return true;
        return (await find(ann.engine, ben.userId, id))?.deleted === true;
      });
      await hold.release();
      await changing;
    } finally {
      hold.stop();
    }
    await waitFor('deleted on ann’s device', ann.engine, ben.userId, id, (m) => m.deleted === true);
    // Still the conversation's latest message: `whileLatest` checks the list's line.
    await whileLatest();
    // Everything ben sent before the barrier (his delete) was handled on ann's device, and the change was committed.
    await barrier(ben.engine, ann.userId, ann.engine, ben.userId);
    const stored = (await find(ann.engine, ben.userId, id))!;
    expect(stored.deleted).toBe(true);
    expect(stored.text).toBe('');
    expect(JSON.stringify(stored)).not.toContain(text);
    return stored;
  }

  it('stays deleted when our read mark of the message commits after the delete arrived', async () => {
    const stored = await raceDelete('read as it is deleted', () => ann.engine.markRead(ben.userId));
    // The read mark is not lost either.
    expect(stored.status).toBe('read');
  });

  it('stays deleted, and so does the list’s last line, when our reaction commits after the delete arrived', async () => {
    const deletedLine = 'This message was deleted';
    const stored = await raceDelete(
      'reacted to as it is deleted',
      (id) => ann.engine.react(ben.userId, id, '👍'),
      async () => {
        // In memory, and in the sealed conversation row (what the list shows after a reload).
        await until('the list says deleted', () =>
          ann.engine.getSnapshot().conversations.find((c) => c.conv === ben.userId && c.lastText === deletedLine),
        );
        await until(
          'and so does the stored row',
          async () =>
            (await asClient(ann.engine).dangerousTestOnlyStoredConversation(ben.userId))?.lastText === deletedLine,
        );
      },
    );
    // The delete takes every reaction away, ours included.
    expect(stored.reactions).toBeUndefined();
  });

  it('works in a group for the sender’s own message', async () => {
    const id = await sendAndWait(ben.engine, group, 'group oops', [
      { engine: ann.engine, conv: group },
      { engine: cat.engine, conv: group },
    ]);
    await ben.engine.deleteForEveryone(group, id);
    await waitFor('ann sees it deleted', ann.engine, group, id, (m) => m.deleted === true && m.text === '');
    await waitFor('cat sees it deleted', cat.engine, group, id, (m) => m.deleted === true);
  });

  it('clears the group’s last line after group info without a change moved the group up the list', async () => {
    const id = await sendAndWait(ben.engine, group, 'group line to take back', [
      { engine: ann.engine, conv: group },
      { engine: cat.engine, conv: group },
    ]);
    const conv = () => cat.engine.getSnapshot().conversations.find((c) => c.conv === group);
    const sort = (await find(cat.engine, group, id))?.ts ?? Infinity;
    expect(conv()?.lastText).toBe('group line to take back');
    // Group info with no event (what a device sends its own new device, and any member's modified client can send):
    // no notice, the line stays, and the group moves up the list, past the message's time.
    const current = conv()?.group;
    if (!current) throw new Error('cat does not know the group');
    const info = { v: 1, t: 'group', groupId: group, name: current.name, members: current.members };
    await asClient(ann.engine).dangerousTestOnlySendPairwiseJson(cat.userId, info);
    await until('the group moved up on cat’s list', () => (conv()?.lastTs ?? 0) > sort);
    expect(conv()?.lastText).toBe('group line to take back');

    await ben.engine.deleteForEveryone(group, id);
    await waitFor('cat sees it deleted', cat.engine, group, id, (m) => m.deleted === true);
    expect(conv()?.lastText).toBe('This message was deleted');
    expect((await asClient(cat.engine).dangerousTestOnlyStoredConversation(group))?.lastText).toBe(
      'This message was deleted',
    );
  });

  it('clears the last line of a conversation stored before the line’s message id was kept', async () => {
    const id = await sendAndWait(ben.engine, ann.userId, 'line of an older state', [
      { engine: ann.engine, conv: ben.userId },
    ]);
    await asClient(ann.engine).dangerousTestOnlyKeepConversationAsBeforeLastId(ben.userId);
    await ben.engine.deleteForEveryone(ann.userId, id);
    await waitFor('ann sees it deleted', ann.engine, ben.userId, id, (m) => m.deleted === true);
    const line = ann.engine.getSnapshot().conversations.find((c) => c.conv === ben.userId)?.lastText;
    expect(line).toBe('This message was deleted');
  });

  it('is refused on receipt when the delete arrived more than 24 hours after the message', async () => {
    const id = await sendAndWait(ben.engine, ann.userId, 'old news', [{ engine: ann.engine, conv: ben.userId }]);
    // Ben's device is closed to hold the delete in the relay's mailbox; then its relay time is moved a day on.
    asClient(ann.engine).close();
    const actionId = await asClient(ben.engine).dangerousTestOnlyQueueAction(ann.userId, {
      v: 1,
      type: 'delete',
      target: id,
    });
    const db = mailbox();
    try {
      const row = await until('the delete is in ann’s mailbox', () =>
        db
          .prepare('SELECT seq, ts FROM mailbox WHERE device_id = ? AND message_id = ?')
          .get(deviceOf(ann.engine), actionId),
      );
      const { ts } = row as { seq: number; ts: number };
      db.prepare('UPDATE mailbox SET ts = ? WHERE device_id = ? AND message_id = ?').run(
        ts + DELETE_WINDOW_MS + 60_000,
        deviceOf(ann.engine),
        actionId,
      );
    } finally {
      db.close();
    }
    ann.engine = await boot(relay.url, ann.db, clock).unlock(ann.password, false);
    await barrier(ben.engine, ann.userId, ann.engine, ben.userId);
    expect(await find(ann.engine, ben.userId, id)).toMatchObject({ text: 'old news' });
    expect((await find(ann.engine, ben.userId, id))?.deleted).toBeUndefined();
  });
});

describe('actions that arrive before their message', () => {
  /**
   * Ann's device is closed; ben sends a message and then acts on it; the two mailbox rows swap places in the
   * relay's SQLite file, so ann's device gets the action first. Returns the message id.
   */
  async function reordered(act: (id: string) => Promise<void>): Promise<string> {
    asClient(ann.engine).close();
    const id = await ben.engine.send(ann.userId, 'the original');
    await act(id);
    const device = deviceOf(ann.engine);
    await deliverActionFirst(device, id);
    ann.engine = await boot(relay.url, ann.db, clock).unlock(ann.password, false);
    return id;
  }

  it('an edit before its message is kept and applied when the message arrives', async () => {
    const id = await reordered((target) => ben.engine.edit(ann.userId, target, 'the edited text'));
    const m = await waitFor('ann has the message', ann.engine, ben.userId, id);
    await barrier(ben.engine, ann.userId, ann.engine, ben.userId);
    expect((await find(ann.engine, ben.userId, id))?.text).toBe('the edited text');
    expect((await find(ann.engine, ben.userId, id))?.edited).toBeTypeOf('number');
    void m;
  });

  it('a reaction before its message is kept and applied when the message arrives', async () => {
    const id = await reordered((target) => ben.engine.react(ann.userId, target, '🎉'));
    await waitFor('ann has the reaction', ann.engine, ben.userId, id, (m) => m.reactions?.[0]?.emoji === '🎉');
  });

  it('a forged edit before its message is dropped when the message arrives', async () => {
    // Ann wrote it; ben's forged edit reaches ann2 before ann's own copy does.
    const closed = ann2;
    asClient(closed).close();
    const id = await ann.engine.send(ben.userId, 'ann’s original');
    await waitFor('ben has it', ben.engine, ann.userId, id);
    await asClient(ben.engine).dangerousTestOnlySendPairwiseJson(ann.userId, {
      v: 1,
      type: 'edit',
      target: id,
      text: 'forged early',
    });
    await deliverActionFirst(deviceOf(closed), id);
    ann2 = await boot(relay.url, `${ann.db}-second`, clock).unlock(ann.password, false);
    engines.push(ann2);
    await waitFor('ann2 has her copy', ann2, ben.userId, id);
    await barrier(ben.engine, ann.userId, ann2, ben.userId);
    expect(await find(ann2, ben.userId, id)).toMatchObject({ text: 'ann’s original' });
  });
});

describe('kept actions', () => {
  it('are bounded per conversation: an edit pushed out by 201 later unknown-target actions is never applied', async () => {
    asClient(ann.engine).close();
    const id = await ben.engine.send(ann.userId, 'bounded original');
    await ben.engine.edit(ann.userId, id, 'evicted edit');
    await until('the edit is sent', async () => (await asClient(ben.engine).dangerousTestOnlyOutboxSize()) === 0);
    for (let i = 0; i < PENDING_MAX + 1; i++) {
      // Reactions to messages that never arrive (ids nobody sent).
      await asClient(ben.engine).dangerousTestOnlySendPairwiseJson(ann.userId, {
        v: 1,
        type: 'react',
        target: `${String(i).padStart(4, '0')}${'q'.repeat(17)}A`,
        emoji: '👍',
      });
    }
    // The message goes last: ann's device keeps the edit, then 201 more, then gets the message.
    await deliverActionFirst(deviceOf(ann.engine), id);
    ann.engine = await boot(relay.url, ann.db, clock).unlock(ann.password, false);
    await waitFor('ann has the message', ann.engine, ben.userId, id);
    await barrier(ben.engine, ann.userId, ann.engine, ben.userId);
    expect(await find(ann.engine, ben.userId, id)).toMatchObject({ text: 'bounded original' });
  }, 60_000);
});

describe('delete for me', () => {
  it('removes the message from this device only', async () => {
    const id = await sendAndWait(ben.engine, ann.userId, 'only mine to forget', [
      { engine: ann.engine, conv: ben.userId },
      { engine: ann2, conv: ben.userId },
    ]);
    await ann.engine.deleteForMe(ben.userId, id);
    expect(await find(ann.engine, ben.userId, id)).toBeUndefined();
    await barrier(ben.engine, ann.userId, ann2, ben.userId);
    expect(await find(ann2, ben.userId, id)).toMatchObject({ text: 'only mine to forget' });
    expect(await find(ben.engine, ann.userId, id)).toMatchObject({ text: 'only mine to forget' });
  });
});

describe('a duplicate action', () => {
  it('changes nothing the second time (same id, same stamp)', () => {
    const m: ChatMessage = { id: 'm'.repeat(22), conv: 'b'.repeat(22), mine: false, text: 'x', ts: 1, status: 'read' };
    const audience: Audience = { me: 'a'.repeat(22) };
    const edit: TargetedAction = { v: 1, type: 'edit', target: m.id, text: 'y' };
    const once = applyAction(m, edit, m.conv, { ts: 5, id: 'e'.repeat(22) }, audience);
    expect(once?.text).toBe('y');
    expect(applyAction(once!, edit, m.conv, { ts: 5, id: 'e'.repeat(22) }, audience)).toBeNull();
    const react: TargetedAction = { v: 1, type: 'react', target: m.id, emoji: '👍' };
    const r1 = applyAction(once!, react, m.conv, { ts: 6, id: 'r'.repeat(22) }, audience);
    expect(applyAction(r1!, react, m.conv, { ts: 6, id: 'r'.repeat(22) }, audience)).toBeNull();
  });
});

describe('the text limit', () => {
  it('is the crypto library’s content limit minus the largest payload around the text', () => {
    expect(CRYPTO_MAX_CONTENT_BYTES).toBe(MAX_CONTENT_BYTES);
    const worst = {
      v: 1,
      text: 'x'.repeat(MAX_TEXT_BYTES),
      sentAt: 9_999_999_999_999,
      to: 'A'.repeat(22),
      reply: { id: 'A'.repeat(22), author: 'A'.repeat(22), text: '\u0001'.repeat(200) },
      expire: 604_800,
      kt: 'A'.repeat(KT_GOSSIP_MAX_BYTES), // key transparency gossip (issue #16) at its longest
    };
    expect(payloadFits(worst)).toBe(true);
    expect(payloadFits({ ...worst, text: `${worst.text}x` })).toBe(false);
    expect(chatPayloadSchema.safeParse(worst).success).toBe(true);
    expect(encodedTextBytes('a"\n€😀')).toBe(1 + 2 + 2 + 3 + 4);
  });

  it('sends and delivers text exactly at the limit, and refuses one byte more before anything is queued', async () => {
    const exact = `${'€'.repeat(Math.floor((MAX_TEXT_BYTES - 2) / 3))}`.padEnd(
      Math.floor((MAX_TEXT_BYTES - 2) / 3) + (MAX_TEXT_BYTES - 3 * Math.floor((MAX_TEXT_BYTES - 2) / 3)),
      'a',
    );
    expect(encodedTextBytes(exact)).toBe(MAX_TEXT_BYTES);
    const id = await ann.engine.send(ben.userId, exact);
    const got = await waitFor('ben got the longest message', ben.engine, ann.userId, id);
    expect(got.text).toBe(exact);
    const outbox = await asClient(ann.engine).dangerousTestOnlyOutboxSize();
    await expect(ann.engine.send(ben.userId, `${exact}a`)).rejects.toThrow(/at most/);
    expect(await asClient(ann.engine).dangerousTestOnlyOutboxSize()).toBe(outbox);
    await expect(ann.engine.edit(ben.userId, id, `${exact}a`)).rejects.toThrow(/at most/);
  });
});

describe('failed messages', () => {
  it('can be retried as a new message (the failed one goes) or deleted', async () => {
    // A relay whose mailboxes hold three entries: with eve's device closed, dan's sends soon fail (mailbox_full).
    const small = await startTestRelay({ MAILBOX_MAX_ENTRIES: '3' });
    const dan = await signUpUser(small.url, 'ac_dan');
    const eve = await signUpUser(small.url, 'ac_eve');
    try {
      await openWith(dan, eve);
      asClient(eve.engine).close();
      const settled = (id: string) =>
        waitFor('the send settled', dan.engine, eve.userId, id, (m) => m.status !== 'pending' || !!m.failure);
      const failedIds: string[] = [];
      for (let i = 0; failedIds.length < 2 && i < 10; i++) {
        const id = await dan.engine.send(eve.userId, `message ${i}`);
        if ((await settled(id)).failure) failedIds.push(id);
      }
      const [failed, other] = failedIds;
      expect(other).toBeDefined();
      expect((await find(dan.engine, eve.userId, failed!))?.text).toMatch(/^message \d$/);
      const text = (await find(dan.engine, eve.userId, failed!))!.text;
      await dan.engine.deleteForMe(eve.userId, other!);
      expect(await find(dan.engine, eve.userId, other!)).toBeUndefined();

      eve.engine = await boot(small.url, eve.db).unlock(eve.password, false);
      await until('eve drained her mailbox', async () => (await history(eve.engine, dan.userId)).length >= 3);
      const retried = await dan.engine.retry(eve.userId, failed!);
      expect(await find(dan.engine, eve.userId, failed!)).toBeUndefined();
      await waitFor('eve got the retry', eve.engine, dan.userId, retried, (m) => m.text === text);
    } finally {
      asClient(dan.engine).close();
      asClient(eve.engine).close();
      await small.close();
    }
  });
});

describe('delete for everyone after 24 hours', () => {
  it('is refused by the sender’s device', async () => {
    const id = await sendAndWait(ann.engine, ben.userId, 'yesterday’s', [{ engine: ben.engine, conv: ann.userId }]);
    offset += DELETE_WINDOW_MS + 60_000;
    await expect(ann.engine.deleteForEveryone(ben.userId, id)).rejects.toThrow(/24 hours/);
    expect(await find(ann.engine, ben.userId, id)).toMatchObject({ text: 'yesterday’s' });
  });
});

// ── properties ───────────────────────────────────────────────────────────────────────────────────────────────

const ID = fc.stringMatching(/^[A-Za-z0-9_-]{21}[AQgw]$/);

describe('the action payload parser', () => {
  it('never throws and accepts only well-formed actions', () => {
    const near = fc.record(
      {
        v: fc.oneof(fc.constant(1), fc.anything()),
        type: fc.constantFrom('react', 'edit', 'delete', 'timer', 'x', '__proto__'),
        target: fc.oneof(ID, fc.string()),
        emoji: fc.oneof(fc.constantFrom('👍', '❤️', '👨‍👩‍👧', '<script>'), fc.string()),
        text: fc.string(),
        remove: fc.anything(),
        seconds: fc.oneof(fc.constantFrom(0, 300, 3_600), fc.integer()),
        to: fc.oneof(ID, fc.string()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.anything(), near), (input) => {
        const out = actionPayloadSchema.safeParse(input);
        if (!out.success) return;
        const a = out.data;
        expect(a.v).toBe(1);
        if (a.type === 'react') expect(a.emoji).not.toMatch(/[<>A-Za-z]/);
        if (a.type === 'edit') expect(a.text.length).toBeGreaterThan(0);
        if (a.type !== 'timer') expect(a.target).toMatch(/^[A-Za-z0-9_-]{22}$/);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('arrival orders', () => {
  const me = 'M'.repeat(21) + 'A';
  const author = 'A'.repeat(21) + 'A';
  const member = 'B'.repeat(21) + 'A';
  const outsider = 'Z'.repeat(21) + 'A';
  const target = 'T'.repeat(21) + 'A';
  const audience: Audience = { me, members: [me, author, member] };
  const original: ChatMessage = {
    id: target,
    conv: 'G'.repeat(21) + 'A',
    mine: false,
    sender: author,
    text: 'original',
    ts: 1_000,
    status: 'delivered',
  };

  interface Event {
    from: string;
    ts: number;
    id: string;
    action: TargetedAction;
  }

  const event = fc.record({
    from: fc.constantFrom(me, author, member, outsider),
    ts: fc.integer({ min: 1_000, max: 1_000 + DELETE_WINDOW_MS + 10 }),
    kind: fc.constantFrom('edit', 'react', 'unreact', 'delete'),
    text: fc.constantFrom('a', 'b', 'c'),
    emoji: fc.constantFrom('👍', '❤️', '😂'),
  });

  /** One device: actions before the message wait (as in Actions.applyPending), then apply in stamp order. */
  function device(events: readonly Event[], messageAt: number): ChatMessage {
    let m: ChatMessage | null = null;
    const pending: Event[] = [];
    const apply = (e: Event) => {
      m = applyAction(m!, e.action, e.from, e, audience) ?? m;
    };
    events.forEach((e, i) => {
      if (i === messageAt) {
        m = original;
        pending.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1)).forEach(apply);
      }
      if (m) apply(e);
      else pending.push(e);
    });
    if (!m) {
      m = original;
      pending.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1)).forEach(apply);
    }
    return m;
  }

  it('converge to the same message on two devices whatever the order, and forged actions never count', () => {
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 12 }).chain((raw) => {
          const events: Event[] = raw.map((r, i) => ({
            from: r.from,
            ts: r.ts,
            id: `${String(i).padStart(2, '0')}${'x'.repeat(20)}`,
            action:
              r.kind === 'edit'
                ? { v: 1, type: 'edit', target, text: r.text }
                : r.kind === 'delete'
                  ? { v: 1, type: 'delete', target }
                  : { v: 1, type: 'react', target, emoji: r.emoji, ...(r.kind === 'unreact' ? { remove: true } : {}) },
          }));
          const n = events.length;
          return fc.tuple(
            fc.constant(events),
            fc.shuffledSubarray(events, { minLength: n, maxLength: n }),
            fc.shuffledSubarray(events, { minLength: n, maxLength: n }),
            fc.integer({ min: 0, max: n }),
            fc.integer({ min: 0, max: n }),
          );
        }),
        ([events, first, second, at1, at2]) => {
          const one = device(first, at1);
          const two = device(second, at2);
          expect(one).toEqual(two);
          const byAuthor = events.filter((e) => e.from === author);
          const deleted = byAuthor.some((e) => e.action.type === 'delete' && e.ts - original.ts <= DELETE_WINDOW_MS);
          if (deleted) {
            expect(one).toMatchObject({ deleted: true, text: '' });
          } else {
            const edits = byAuthor.filter((e) => e.action.type === 'edit');
            const last = edits.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1)).at(-1);
            expect(one.text).toBe(last && last.action.type === 'edit' ? last.action.text : 'original');
            expect(one.reactions?.some((r) => r.from === outsider) ?? false).toBe(false);
          }
        },
      ),
      { numRuns: 1_000 },
    );
  });
});
