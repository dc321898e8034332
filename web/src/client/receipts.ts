// Receipts: typing indicators, read state and ticks — what we tell peers (typing, delivered, read) and what their
// receipts change on our messages. Ticks only move forward, and only the conversation's peer (or a group member)
// can move them.

import { RANK, type ConvState, type EngineContext } from './context';
import { describeError } from './errors';
import { WriteBatch, type StagedUpdate } from './store';
import type { ChatMessage } from './types';

/** A message changed in a batch, and what its commit found. */
type Changed = [ChatMessage, StagedUpdate];

/** The changed messages whose rows were still there (one the sweep deleted meanwhile is not shown again). */
function stillThere(changed: readonly Changed[]): ChatMessage[] {
  return changed.filter(([, staged]) => staged.applied).map(([m]) => m);
}

const TYPING_SEND_EVERY_MS = 3_000;
/** Message ids per receipt (the schema's bound). */
const IDS_PER_RECEIPT = 500;

export class Receipts {
  readonly #ctx: EngineContext;
  readonly #lastTypingSent = new Map<string, number>();

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /** We sent a message in `conv`: the peer cleared "typing" on it, so the next keystroke says so again. */
  sentMessage(conv: string): void {
    this.#lastTypingSent.delete(conv);
  }

  notifyTyping(conv: string): void {
    if (!this.#ctx.snapshot.preferences.typingIndicators) return; // the user chose to send none
    const now = this.#ctx.now();
    if (now - (this.#lastTypingSent.get(conv) ?? 0) < TYPING_SEND_EVERY_MS) return;
    this.#lastTypingSent.set(conv, now);
    void this.#ctx.parts.outbound
      .sendControl(conv, { v: 1, type: 'typing' })
      .catch((e: unknown) => console.warn('typing indicator not sent:', describeError(e)));
  }

  /**
   * Tells who wrote `messages` (in `conv`) that we got or read them. One-to-one, the peer. In a group, each
   * message's author alone, pairwise, naming the group: the other members learn nothing of when we got or read it,
   * and a message costs the relay one receipt per member for its author's devices, not one for every member device.
   */
  async send(
    conv: string,
    status: 'delivered' | 'read',
    messages: readonly { id: string; from?: string | undefined }[],
  ): Promise<void> {
    const ctx = this.#ctx;
    const g = ctx.convs.get(conv)?.group;
    if (g?.left) return; // a group we left: its members hear nothing more from us (and would not take it)
    const group = g !== undefined;
    const byAuthor = new Map<string, string[]>();
    for (const { id, from } of messages) {
      const author = group ? from : conv;
      // A group message with no author known here (one that did not decrypt), or ours from our other device.
      if (author === undefined || author === ctx.me.userId) continue;
      const ids = byAuthor.get(author);
      if (ids) ids.push(id);
      else byAuthor.set(author, [id]);
    }
    for (const [author, ids] of byAuthor) {
      for (let i = 0; i < ids.length; i += IDS_PER_RECEIPT) {
        const chunk = ids.slice(i, i + IDS_PER_RECEIPT);
        await ctx.parts.outbound.sendControl(author, {
          v: 1,
          type: 'receipt',
          status,
          ids: chunk,
          ...(group ? { group: conv } : {}),
        });
      }
    }
  }

  async markRead(conv: string): Promise<void> {
    const ctx = this.#ctx;
    const c = ctx.convs.get(conv);
    if (!c || (c.unread === 0 && c.unreadIds.length === 0)) return;
    const ids = c.unreadIds;
    const next: ConvState = { ...c, unread: 0, unreadIds: [] };
    ctx.convs.set(conv, next);
    ctx.publishConvs();
    // The messages read, with their authors in a group: the read receipts go to them (none for a notice line).
    const read: { id: string; from?: string | undefined }[] = [];
    await ctx.store.changeMessages(async () => {
      const batch = new WriteBatch();
      const changed: Changed[] = [];
      for (const id of ids) {
        const found = await ctx.store.message(id);
        if (!found || found.message.mine) continue;
        if (found.message.kind !== 'notice') read.push({ id, from: found.message.sender });
        if (found.message.status !== 'read') {
          const m: ChatMessage = { ...found.message, status: 'read' };
          changed.push([m, await ctx.store.stageMessageUpdate(batch, m, found.sort)]);
        }
      }
      await ctx.stageConv(batch, next);
      await ctx.store.commit(batch);
      ctx.emitMessages(conv, stillThere(changed));
    });
    // Our other devices clear the same messages (stored, so an offline one catches up); then the authors' ticks.
    for (let i = 0; i < ids.length; i += IDS_PER_RECEIPT) {
      await ctx.parts.outbound.queueOwnControl({ v: 1, type: 'read', conv, ids: ids.slice(i, i + IDS_PER_RECEIPT) });
    }
    // Read receipts off: the authors' ticks stay at delivered.
    if (ctx.snapshot.preferences.readReceipts) await this.send(conv, 'read', read);
  }

  /** Our other device read `ids` in `conv`: they are no longer unread here (no receipt goes out: it sent one). */
  async applyReadSync(batch: WriteBatch, conv: string, ids: readonly string[]): Promise<void> {
    const ctx = this.#ctx;
    const c = ctx.convs.get(conv);
    if (!c) {
      await ctx.store.commit(batch);
      return;
    }
    const read = new Set(ids);
    const change = (was: ConvState): ConvState => {
      const unreadIds = was.unreadIds.filter((id) => !read.has(id));
      return { ...was, unread: Math.max(0, was.unread - (was.unreadIds.length - unreadIds.length)), unreadIds };
    };
    await ctx.store.changeMessages(async () => {
      const changed: Changed[] = [];
      for (const id of ids) {
        const found = await ctx.store.message(id);
        if (!found || found.message.mine || found.message.conv !== conv || found.message.status === 'read') continue;
        const m: ChatMessage = { ...found.message, status: 'read' };
        changed.push([m, await ctx.store.stageMessageUpdate(batch, m, found.sort)]);
      }
      const { settle } = await ctx.stageConvChange(batch, c, change);
      await ctx.store.commit(batch);
      settle();
      ctx.publishConvs();
      ctx.emitMessages(conv, stillThere(changed));
    });
  }

  /** Ticks my messages in `conv`; callers pass only receipts from the conversation's peer or group members. */
  async applyReceipt(batch: WriteBatch, conv: string, sent: 'delivered' | 'read', ids: string[]): Promise<void> {
    const ctx = this.#ctx;
    // Read receipts off (reciprocal, as in Signal): others' "read" counts only as delivered here.
    const status = sent === 'read' && !ctx.snapshot.preferences.readReceipts ? 'delivered' : sent;
    await ctx.store.changeMessages(async () => {
      const changed: Changed[] = [];
      for (const id of ids) {
        const found = await ctx.store.message(id);
        if (!found || !found.message.mine || found.message.conv !== conv) continue;
        if (RANK[found.message.status] >= RANK[status]) continue;
        const m: ChatMessage = { ...found.message, status };
        changed.push([m, await ctx.store.stageMessageUpdate(batch, m, found.sort)]);
      }
      await ctx.store.commit(batch);
      ctx.emitMessages(conv, stillThere(changed));
    });
  }
}
