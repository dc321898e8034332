// Disappearing messages (issue #15): a timer per conversation, set by either side of a one-to-one conversation or
// by a group's admins, sent as a `timer` action to every device (peer's, group's and our own), shown as a notice
// line. Each message written under a timer carries it (`expireSeconds`, in the payload as `expire`) and each copy
// gets `expiresAt`: from when it was sent for ours, from when it arrived on this device for others'. When that time
// passes the message row is deleted from IndexedDB (not hidden), the UI is told (onRemoved), the conversation's
// last line is updated, and for our own attachments the relay's blob is deleted (best effort).
//
// Expiry index: one sealed secrets record per expiring message under the array key ['expiry', '<at>:<id>'] (the
// time zero-padded, so the keys sort by time and the next expiry is found without opening any record).

import { z } from 'zod';
import { lastTextOf, type ArrivedAction } from './actions';
import { type ConvState, type EngineContext } from './context';
import { ClientError, describeError } from './errors';
import { DISAPPEARING_TIMERS } from './schemas';
import { WriteBatch } from './store';
import type { ChatMessage } from './types';

const PREFIX = 'expiry';
/** setTimeout's longest delay; a later expiry is re-armed when this one fires (or by the hourly sweep). */
const MAX_DELAY_MS = 2_147_483_647;
/** The timer never fires sooner than this after it is armed (the write it waits for must be committed). */
const MIN_DELAY_MS = 1_000;

const expiryRecordSchema = z.object({ id: z.string(), conv: z.string(), at: z.number() });

export type RemovedListener = (conv: string, ids: readonly string[]) => void;

/** "5 minutes", "1 hour", "1 day", "1 week" (the timers of DISAPPEARING_TIMERS). */
export function timerLabel(seconds: number): string {
  if (seconds % 604_800 === 0) return plural(seconds / 604_800, 'week');
  if (seconds % 86_400 === 0) return plural(seconds / 86_400, 'day');
  if (seconds % 3_600 === 0) return plural(seconds / 3_600, 'hour');
  if (seconds % 60 === 0) return plural(seconds / 60, 'minute');
  return plural(seconds, 'second');
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

function expiryKey(at: number, id: string): string[] {
  return [PREFIX, `${String(Math.max(0, Math.ceil(at))).padStart(16, '0')}:${id}`];
}

function atOf(key: readonly string[]): number {
  return Number(key[1]?.split(':')[0] ?? NaN);
}

export class Disappearing {
  readonly #ctx: EngineContext;
  readonly #listeners = new Set<RemovedListener>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #armedAt = Infinity;
  #sweeping: Promise<void> = Promise.resolve();

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  onRemoved(listener: RemovedListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // ── the timer of a conversation ──────────────────────────────────────────────────────────────────────────

  /** Sets the timer (0: off) for everyone in the conversation; in a group only an admin may. */
  async set(conv: string, seconds: number): Promise<void> {
    const ctx = this.#ctx;
    if (!(DISAPPEARING_TIMERS as readonly number[]).includes(seconds)) {
      throw new ClientError('invalid_input', 'That timer is not offered.');
    }
    const c = ctx.convs.get(conv);
    if (!c) throw new ClientError('invalid_input', 'Open the conversation first.');
    if (c.group && (c.group.left || !c.group.admins.includes(ctx.me.userId))) {
      throw new ClientError('invalid_input', 'Only group admins can change disappearing messages.');
    }
    if ((c.expireSeconds ?? 0) === seconds) return;
    const id = await ctx.parts.outbound.queueAction(conv, {
      v: 1,
      type: 'timer',
      seconds: seconds as (typeof DISAPPEARING_TIMERS)[number],
    });
    await this.#apply(new WriteBatch(), conv, ctx.me.userId, seconds, id, await ctx.stamp());
  }

  /**
   * A `timer` action arrived (authenticated sender `from`): taken from either side of an existing one-to-one
   * conversation (or our own devices), or from an admin of a group we are in; anything else is dropped. Commits.
   */
  async receive(batch: WriteBatch, arrived: ArrivedAction): Promise<void> {
    const ctx = this.#ctx;
    const { conv, from, action } = arrived;
    const c = ctx.convs.get(conv);
    const me = ctx.me.userId;
    const allowed =
      action.type === 'timer' &&
      c !== undefined &&
      (c.group
        ? !c.group.left &&
          c.group.admins.includes(from) &&
          (from === me || c.group.members.some((m) => m.userId === from))
        : from === conv || from === me);
    if (!allowed || action.type !== 'timer') {
      await ctx.store.commit(batch);
      return;
    }
    await this.#apply(batch, conv, from, action.seconds, arrived.id, ctx.arrivalTs(conv, arrived.ts));
  }

  async #apply(batch: WriteBatch, conv: string, from: string, seconds: number, id: string, ts: number) {
    const ctx = this.#ctx;
    const c = ctx.convs.get(conv);
    if (!c || (c.expireSeconds ?? 0) === seconds) {
      await ctx.store.commit(batch);
      return;
    }
    const name =
      from === ctx.me.userId
        ? ctx.me.username
        : c.group
          ? (c.group.members.find((m) => m.userId === from)?.username ?? 'A member')
          : c.username;
    const text =
      seconds > 0
        ? `${name} set disappearing messages to ${timerLabel(seconds)}`
        : `${name} turned off disappearing messages`;
    const notice: ChatMessage = { id, conv, mine: false, text, ts, status: 'read', kind: 'notice' };
    await ctx.store.stageMessage(batch, notice, ts);
    const { settle } = await ctx.stageConvChange(batch, c, (latest) => {
      const { expireSeconds: _old, ...rest } = latest;
      return seconds > 0 ? { ...rest, expireSeconds: seconds } : rest;
    });
    await ctx.store.commit(batch);
    settle();
    ctx.publishConvs();
    ctx.emitMessages(conv, [notice]);
  }

  // ── expiry ───────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * For a message about to be stored (in `batch`): when it carries a timer, its copy expires `expireSeconds` after
   * `from` (sent time for ours, arrival for others'); stages its expiry record and arms the timer. Returns the
   * message with `expiresAt`.
   */
  async stage(batch: WriteBatch, message: ChatMessage, from: number): Promise<ChatMessage> {
    if (!message.expireSeconds || message.kind === 'notice') return message;
    const at = from + message.expireSeconds * 1000;
    const m: ChatMessage = { ...message, expiresAt: at };
    await this.#ctx.store.stage(batch, 'secrets', expiryKey(at, m.id), { id: m.id, conv: m.conv, at });
    this.#arm(at);
    return m;
  }

  #arm(at: number): void {
    const ctx = this.#ctx;
    if (ctx.closed || (this.#timer && at >= this.#armedAt)) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#armedAt = at;
    const delay = Math.min(MAX_DELAY_MS, Math.max(MIN_DELAY_MS, at - ctx.now()));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#armedAt = Infinity;
      void this.sweep();
    }, delay);
  }

  /** Stops the timer (the engine is closing). */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#armedAt = Infinity;
  }

  /** Deletes every message whose time has come (at start-up, on the maintenance interval, when the timer fires). */
  sweep(): Promise<void> {
    this.#sweeping = this.#sweeping
      .then(() => this.#sweepOnce())
      .catch((e: unknown) => {
        if (!this.#ctx.closed) console.warn('disappearing messages not deleted:', describeError(e));
      });
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.closed) return;
    const now = ctx.now();
    const keys = await ctx.store.keysUnder('secrets', [PREFIX]);
    const due = keys.filter((k) => atOf(k) <= now);
    const batch = new WriteBatch();
    const removed = new Map<string, string[]>();
    const blobs: string[] = [];
    for (const key of due) {
      ctx.store.stageDelete(batch, 'secrets', key);
      const record = await ctx.store.read('secrets', key, expiryRecordSchema).catch(() => null);
      if (!record) continue;
      const found = await ctx.store.message(record.id);
      if (!found || found.message.expiresAt === undefined || found.message.expiresAt > now) continue;
      const m = found.message;
      batch.add('messages', (tx) => tx.objectStore('messages').delete(m.id));
      removed.set(m.conv, [...(removed.get(m.conv) ?? []), m.id]);
      if (m.mine) for (const a of m.attachments ?? []) blobs.push(a.blobId);
    }
    const settles: (() => ConvState)[] = [];
    for (const [conv, ids] of removed) {
      const c = ctx.convs.get(conv);
      if (!c) continue;
      const gone = new Set(ids);
      const { rows } = await ctx.store.page(conv, null, ids.length + 1);
      const newest = [...rows].reverse().find((r) => !gone.has(r.id));
      const last = newest ? await ctx.store.openMessage(newest) : null;
      const lastText = last ? lastTextOf(last) : '';
      const change = (was: ConvState): ConvState => {
        const unreadIds = was.unreadIds.filter((id) => !gone.has(id));
        // The line changes only if it comes from a message deleted here: one that arrived (or was sent, or edited)
        // since the rows above were read keeps its line.
        const line = was.lastId === undefined || gone.has(was.lastId) ? { lastText, lastId: last?.id } : {};
        return {
          ...was,
          ...line,
          unread: Math.max(0, was.unread - (was.unreadIds.length - unreadIds.length)),
          unreadIds,
        };
      };
      settles.push((await ctx.stageConvChange(batch, c, change)).settle);
    }
    await ctx.store.commit(batch);
    for (const settle of settles) settle();
    if (settles.length > 0) ctx.publishConvs();
    for (const [conv, ids] of removed) for (const l of this.#listeners) l(conv, ids);
    for (const blobId of blobs) {
      // Best effort: the relay also expires blobs on its own (LIMITS.blobTtlDays).
      void ctx.api.call('DELETE', `/api/blobs/${encodeURIComponent(blobId)}`, null).catch(() => undefined);
    }
    const later = keys.find((k) => atOf(k) > now);
    if (later) this.#arm(atOf(later));
  }
}
