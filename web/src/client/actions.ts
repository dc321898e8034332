// Actions (issue #15): what a person does to a conversation rather than write in it — react, edit, delete for
// everyone, set the disappearing timer. They travel like messages (see Outbound.queueAction) and arrive here, after
// decryption, with the authenticated sender (`from`) and the conversation they belong to. The rules (who may do
// what, which of two actions wins) are pure and live in action-state.ts; this part stores, keeps actions that
// arrived before their message, and does our own actions.

import { z } from 'zod';
import {
  DELETE_WINDOW_MS,
  applyAction,
  authorOf,
  type Audience,
  type Stamp,
  type TargetedAction,
} from './action-state';
import { previewText } from './attachment-names';
import type { ConvState, EngineContext } from './context';
import { ClientError } from './errors';
import { MAX_TEXT_BYTES, encodedTextBytes } from './message-limits';
import { actionPayloadSchema, emojiSchema, relayIdSchema, type ActionPayload, type ChatPayload } from './schemas';
import { WriteBatch } from './store';
import type { ChatMessage } from './types';

/** A received action: who sent it (authenticated by its session or sender key), where, under which id and when. */
export interface ArrivedAction {
  conv: string;
  from: string;
  id: string;
  ts: number;
  action: ActionPayload;
}

/** Actions kept per conversation while their message has not arrived (the oldest go first beyond this). */
export const PENDING_MAX = 200;
/** A kept action is dropped after this long without its message. */
export const PENDING_TTL_MS = 7 * 86_400_000;

const pendingSchema = z.object({
  actions: z
    .array(
      z.object({
        from: relayIdSchema,
        id: relayIdSchema,
        ts: z.number(),
        /** When this device kept it (for the expiry). */
        at: z.number(),
        action: actionPayloadSchema,
      }),
    )
    .max(PENDING_MAX),
});
type Pending = z.infer<typeof pendingSchema>['actions'][number];

/** The sealed record of actions waiting for their message, one per conversation. */
const pendingKey = (conv: string) => ['pending-actions', conv] as const;

/** The parts of a chat payload a stored message keeps, besides its text. */
export function richFields(p: ChatPayload): Pick<ChatMessage, 'reply' | 'attachments' | 'expireSeconds'> {
  return {
    ...(p.reply ? { reply: p.reply } : {}),
    ...(p.attachments ? { attachments: p.attachments } : {}),
    ...(p.expire ? { expireSeconds: p.expire } : {}),
  };
}

export class Actions {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  #audience(conv: string): Audience {
    const group = this.#ctx.convs.get(conv)?.group;
    return { me: this.#ctx.me.userId, ...(group ? { members: group.members.map((m) => m.userId) } : {}) };
  }

  /**
   * Applies one received action and commits `batch` (which marks its id seen), whatever the outcome: an action that
   * is not allowed (an edit from someone who did not write the message) is dropped without a trace. One whose
   * message is not here yet is kept (sealed, bounded, for a week) and applied when the message arrives.
   */
  async receive(batch: WriteBatch, arrived: ArrivedAction): Promise<void> {
    const ctx = this.#ctx;
    const { action } = arrived;
    if (action.type === 'timer') return ctx.parts.disappearing.receive(batch, arrived);
    if (!ctx.convs.has(arrived.conv)) {
      await ctx.store.commit(batch);
      return;
    }
    await ctx.store.changeMessages(async () => {
      const found = await ctx.store.message(action.target);
      if (!found) {
        await this.#keep(batch, arrived, action);
        await ctx.store.commit(batch);
        return;
      }
      if (found.message.conv !== arrived.conv) {
        await ctx.store.commit(batch); // aimed at a message of another conversation: never across conversations
        return;
      }
      const updated = applyAction(found.message, action, arrived.from, arrived, this.#audience(arrived.conv));
      await this.#store(batch, found.message, updated, found.sort);
    });
  }

  async #keep(batch: WriteBatch, arrived: ArrivedAction, action: TargetedAction): Promise<void> {
    const ctx = this.#ctx;
    const now = ctx.now();
    const kept = (await this.#pending(arrived.conv, now)).filter((p) => p.id !== arrived.id);
    kept.push({ from: arrived.from, id: arrived.id, ts: arrived.ts, at: now, action });
    await ctx.store.stage(batch, 'secrets', pendingKey(arrived.conv), { actions: kept.slice(-PENDING_MAX) });
  }

  /** The actions kept for a conversation that have not expired. */
  async #pending(conv: string, now: number): Promise<Pending[]> {
    const record = await this.#ctx.store.read('secrets', pendingKey(conv), pendingSchema);
    return (record?.actions ?? []).filter((p) => p.at > now - PENDING_TTL_MS);
  }

  /**
   * Called where a message is stored (before it is staged): applies the actions that arrived before it, in stamp
   * order, each checked as if it arrived now (an edit from someone who did not write it is dropped), and stages
   * the kept record without them. Returns the message to store.
   */
  async applyPending(batch: WriteBatch, message: ChatMessage): Promise<ChatMessage> {
    const ctx = this.#ctx;
    const now = ctx.now();
    const all = await this.#pending(message.conv, now);
    const mine = all.filter((p) => p.action.type !== 'timer' && p.action.target === message.id);
    if (mine.length === 0) return message;
    const rest = all.filter((p) => !mine.includes(p));
    if (rest.length > 0) await ctx.store.stage(batch, 'secrets', pendingKey(message.conv), { actions: rest });
    else ctx.store.stageDelete(batch, 'secrets', pendingKey(message.conv));
    const audience = this.#audience(message.conv);
    let out = message;
    for (const p of mine.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1))) {
      if (p.action.type === 'timer') continue;
      out = applyAction(out, p.action, p.from, p, audience) ?? out;
    }
    return out;
  }

  /**
   * Stages and commits `updated` (when it changed anything), the conversation's last line if it was the latest.
   * Inside `changeMessages`, with `before` read there.
   */
  async #store(batch: WriteBatch, before: ChatMessage, updated: ChatMessage | null, sort: number): Promise<void> {
    const ctx = this.#ctx;
    if (!updated) {
      await ctx.store.commit(batch);
      return;
    }
    const staged = await ctx.store.stageMessageUpdate(batch, updated, sort);
    const c = ctx.convs.get(before.conv);
    // The last line changes only with the message: one that disappeared meanwhile must not come back there either.
    const line =
      c && showsLine(c, updated.id, sort)
        ? await ctx.stageConvChange(
            batch,
            c,
            (was) =>
              showsLine(was, updated.id, sort) ? { ...was, lastText: lastTextOf(updated), lastId: updated.id } : was,
            staged,
          )
        : null;
    await ctx.store.commit(batch);
    if (!staged.applied) return;
    if (line) {
      line.settle();
      ctx.publishConvs();
    }
    ctx.emitMessages(before.conv, [updated]);
  }

  // ── our own actions ──────────────────────────────────────────────────────────────────────────────────────

  /** A message of ours (or anyone's, for `any`) in `conv` that actions may target; throws a clear error otherwise. */
  async #target(conv: string, messageId: string, own: boolean): Promise<{ message: ChatMessage; sort: number }> {
    const found = await this.#ctx.store.message(messageId);
    const m = found?.message;
    if (!found || !m || m.conv !== conv || m.kind !== undefined || m.failure) {
      throw new ClientError('invalid_input', 'That message cannot be changed.');
    }
    if (m.deleted) throw new ClientError('invalid_input', 'That message was deleted.');
    if (own && authorOf(m, this.#ctx.me.userId) !== this.#ctx.me.userId) {
      throw new ClientError('invalid_input', 'Only your own messages can be changed.');
    }
    return found;
  }

  /** Queues `action` to the conversation, then applies it here at once (stamped with the queue's id and now). */
  async #act(conv: string, action: TargetedAction): Promise<void> {
    const ctx = this.#ctx;
    const id = await ctx.parts.outbound.queueAction(conv, action);
    const stamp: Stamp = { ts: await ctx.stamp(), id };
    await ctx.store.changeMessages(async () => {
      // Read again after queueing: an action that arrived meanwhile is taken into account.
      const found = await ctx.store.message(action.target);
      if (!found) return;
      const updated = applyAction(found.message, action, ctx.me.userId, stamp, this.#audience(conv));
      await this.#store(new WriteBatch(), found.message, updated, found.sort);
    });
  }

  /** Reacts to a message with one emoji (replacing our earlier reaction to it). */
  async react(conv: string, messageId: string, emoji: string): Promise<void> {
    const checked = emojiSchema.safeParse(emoji);
    if (!checked.success) throw new ClientError('invalid_input', 'A reaction is one emoji.');
    await this.#target(conv, messageId, false);
    await this.#act(conv, { v: 1, type: 'react', target: messageId, emoji: checked.data });
  }

  /** Takes our reaction to a message back. */
  async unreact(conv: string, messageId: string): Promise<void> {
    const { message } = await this.#target(conv, messageId, false);
    const mine = message.reactions?.find((r) => r.from === this.#ctx.me.userId);
    if (!mine) return;
    await this.#act(conv, { v: 1, type: 'react', target: messageId, emoji: mine.emoji, remove: true });
  }

  /** Replaces the text of one of our messages for everyone. */
  async edit(conv: string, messageId: string, text: string): Promise<void> {
    if (text.trim().length === 0) throw new ClientError('invalid_input', 'The message is empty.');
    if (encodedTextBytes(text) > MAX_TEXT_BYTES) {
      throw new ClientError('invalid_input', `Messages are at most ${MAX_TEXT_BYTES} bytes.`);
    }
    await this.#target(conv, messageId, true);
    await this.#act(conv, { v: 1, type: 'edit', target: messageId, text });
  }

  /** Deletes one of our messages for everyone: only within `DELETE_WINDOW_MS` of sending it. */
  async deleteForEveryone(conv: string, messageId: string): Promise<void> {
    const { message } = await this.#target(conv, messageId, true);
    if (this.#ctx.now() - message.ts > DELETE_WINDOW_MS) {
      throw new ClientError('invalid_input', 'Messages can be deleted for everyone only within 24 hours.');
    }
    await this.#act(conv, { v: 1, type: 'delete', target: messageId });
  }

  /**
   * Removes a message from this device only (a failed send, or anything in the conversation): the row goes, and a
   * send still waiting in the outbox is not sent. Our other devices are not told: "for me" means this device's view.
   */
  async deleteForMe(conv: string, messageId: string): Promise<void> {
    const ctx = this.#ctx;
    const found = await ctx.store.message(messageId);
    if (!found || found.message.conv !== conv) return;
    const batch = new WriteBatch();
    batch.add('messages', (tx) => tx.objectStore('messages').delete(messageId));
    batch.add('outbox', (tx) => tx.objectStore('outbox').delete(messageId));
    const c = ctx.convs.get(conv);
    let line = null;
    if (c && showsLine(c, messageId, found.sort)) {
      const { rows } = await ctx.store.page(conv, found.sort, 1);
      const previous = rows[0] ? await ctx.store.openMessage(rows[0]) : null;
      const lastText = previous ? lastTextOf(previous) : '';
      const lastId = previous?.id;
      // Only while it is still the latest: a message that came in meanwhile keeps its line.
      line = await ctx.stageConvChange(batch, c, (was) =>
        showsLine(was, messageId, found.sort) ? { ...was, lastText, lastId } : was,
      );
    }
    await ctx.store.commit(batch);
    if (line) {
      line.settle();
      ctx.publishConvs();
    }
  }

  /** Sends a failed message of ours again (a new send with the same text, quote and attachments), then drops it. */
  async retry(conv: string, messageId: string): Promise<string> {
    const found = await this.#ctx.store.message(messageId);
    const m = found?.message;
    if (!m || m.conv !== conv || !m.mine || !m.failure) {
      throw new ClientError('invalid_input', 'Only a message that failed to send can be retried.');
    }
    const id = await this.#ctx.parts.outbound.send(conv, m.text, {
      ...(m.reply ? { reply: m.reply } : {}),
      ...(m.attachments ? { attachments: m.attachments } : {}),
    });
    await this.deleteForMe(conv, messageId);
    return id;
  }
}

/**
 * Whether the conversation's last line comes from message `id` (at `sort`). By its id; a state stored before the id
 * was kept (or one whose line is from no message) tells by time: the line is the message's if nothing came after it.
 * Time alone is not enough: group info without a notice moves a group up the list (its `lastTs`) and keeps the line.
 */
function showsLine(c: ConvState, id: string, sort: number): boolean {
  return c.lastId === undefined ? sort >= c.lastTs : c.lastId === id;
}

/** The conversation list's line for a message. */
export function lastTextOf(m: Pick<ChatMessage, 'text' | 'attachments' | 'deleted' | 'failure'>): string {
  if (m.failure) return 'Message could not be decrypted';
  return m.deleted ? 'This message was deleted' : previewText(m.text, m.attachments);
}
