// Inbound: the receive pipeline for pairwise mailbox entries — batches in order, dedupe by id, open the sealed
// envelope, decrypt on the sender's queue, store, and only then ack. Group entries go to GroupMessaging.

import type { Envelope } from '@weconnect/crypto';
import { TYPING_SHOW_MS, hasCode, parseJson, type ConvState, type EngineContext } from './context';
import { ClientError, describeError } from './errors';
import { groupPayloadSchema, type GroupPayload } from './groups';
import { deliveredMessageSchema, type ReceivedMessage } from '@weconnect/relay/protocol';
import { lastTextOf, richFields } from './actions';
import { actionPayloadSchema, chatPayloadSchema, controlPayloadSchema, resentCopySchema } from './schemas';
import { WriteBatch } from './store';
import type { ChatMessage } from './types';
import { z } from 'zod';

/** Undecryptable messages from one contact within this long share one history entry (and one notice). */
export const FAILURE_COALESCE_MS = 10 * 60_000;

/**
 * Key transparency with a required witness (issue #16): entries whose sender's newest log entry is not cosigned yet
 * (kt_unwitnessed) are kept here (secrets 'kt-deferred-inbound', at most KT_DEFERRED_MAX) and handled again later,
 * with a backoff of 1 s doubling to 30 s; beyond the bound, or after KT_DEFERRED_MAX_TRIES, they fail as before.
 */
export const KT_DEFERRED_MAX = 20;
const KT_DEFERRED_MAX_TRIES = 40;
const KT_DEFERRED_KEY = 'kt-deferred-inbound';
const ktDeferredSchema = z
  .array(
    z.object({
      id: z.string(),
      seq: z.number(),
      ts: z.number(),
      body: z.string(),
      tries: z.number().int().min(0),
    }),
  )
  .max(KT_DEFERRED_MAX);

/** A stored chat message that should get a delivery receipt: where it is, and who wrote it (the receipt's addressee). */
export type Delivered = { conv: string; id: string; from: string } | null;

export class Inbound {
  readonly #ctx: EngineContext;
  #chain: Promise<void> = Promise.resolve();
  duplicatesDropped = 0;
  /** How many ephemeral entries (seq 0: typing, receipts) the relay delivered here, counted once handled (tests). */
  ephemeralReceived = 0;
  /**
   * Per conversation, the failed entry that later failures within `FAILURE_COALESCE_MS` join (in memory: after a
   * reload the next failure starts a new entry), and when the last "could not be decrypted" notice showed.
   */
  readonly #lastFailure = new Map<string, { id: string; at: number }>();
  readonly #lastFailureNotice = new Map<string, number>();
  /** Deferred entries (kt_unwitnessed) deferred again in the current retry round. */
  readonly #redeferred = new Set<string>();
  #deferredRetry: ReturnType<typeof setTimeout> | null = null;
  #deferredRound = 0;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /** Resolves when every batch handed over so far is handled. */
  get idle(): Promise<void> {
    return this.#chain;
  }

  onMessages(batch: unknown[], ack: () => void): void {
    const ctx = this.#ctx;
    // Batches are handled strictly in order; the ack goes back only after every entry is stored.
    this.#chain = this.#chain.then(async () => {
      const receipts = new Map<string, { id: string; from: string }[]>();
      try {
        for (const raw of batch) {
          const parsed = deliveredMessageSchema.safeParse(raw);
          if (!parsed.success) {
            ctx.notice('error', 'The relay delivered a malformed message; it was dropped.');
            continue;
          }
          const delivered = await this.#receive(parsed.data);
          if (parsed.data.seq === 0) this.ephemeralReceived++; // counted once handled
          if (delivered) receipts.set(delivered.conv, [...(receipts.get(delivered.conv) ?? []), delivered]);
        }
      } catch (e) {
        // Storage failed: do not ack, so the relay delivers these entries again.
        ctx.notice('error', `Incoming messages could not be stored: ${describeError(e)}`);
        return;
      }
      if (!ctx.deps.dangerousTestOnlySkipInboundAcks) ack();
      for (const [conv, messages] of receipts) {
        void ctx.parts.receipts
          .send(conv, 'delivered', messages)
          .catch((e: unknown) => console.warn('delivery receipt not sent:', describeError(e)));
      }
    });
  }

  /** Handles one mailbox entry; returns the chat message it stored, if any. Throws only when storage fails. */
  async #receive(entry: ReceivedMessage): Promise<Delivered> {
    const ctx = this.#ctx;
    if (await ctx.store.seen(entry.id)) {
      this.duplicatesDropped++;
      return null;
    }
    if (entry.group !== undefined) {
      const groupId = entry.group;
      return ctx.queue.run(`group:${groupId}`, () => ctx.parts.groupMessages.receive(groupId, entry));
    }
    let env: Envelope;
    try {
      env = await ctx.c.openEnvelope(ctx.keys.identity, entry.body);
      if (env.messageId !== entry.id) throw new ClientError('decrypt_failed', 'message id mismatch');
    } catch {
      ctx.notice('error', 'A message could not be decrypted (its envelope did not open) and was dropped.');
      const batch = new WriteBatch();
      ctx.store.stageSeen(batch, entry.id, ctx.now());
      await ctx.store.commit(batch);
      return null;
    }
    if (ctx.blocked.has(env.senderUserId) && env.senderUserId !== ctx.me.userId) {
      // Blocked: not opened at all — no message, no session start, no resend request, no group invitation.
      const batch = new WriteBatch();
      ctx.store.stageSeen(batch, entry.id, ctx.now());
      await ctx.store.commit(batch);
      return null;
    }
    // Group info waits for the group's queue, and a group send holds that queue while it waits for this peer's:
    // it is therefore handled after the peer's queue is released (still before the next entry of the batch).
    let groupInfo: GroupPayload | null = null;
    const delivered = await ctx.queue.run(env.senderUserId, () =>
      this.#receiveFrom(env, entry, (info) => {
        groupInfo = info;
      }),
    );
    const info: GroupPayload | null = groupInfo;
    if (info) await ctx.parts.membership.onGroupPayload(env.senderUserId, info, { id: entry.id, ts: entry.ts });
    return delivered;
  }

  async #receiveFrom(
    env: Envelope,
    entry: ReceivedMessage,
    onGroupInfo: (info: GroupPayload) => void,
  ): Promise<Delivered> {
    const ctx = this.#ctx;
    const batch = new WriteBatch();
    ctx.store.stageSeen(batch, entry.id, ctx.now());
    let out;
    try {
      out = await ctx.sessions.decrypt(env, batch);
    } catch (e) {
      if (e instanceof ClientError && e.code === 'relay_unreachable') throw e;
      if (e instanceof ClientError && e.code === 'kt_unwitnessed' && (await this.#defer(entry, e.message))) return null;
      const clean = new WriteBatch();
      ctx.store.stageSeen(clean, entry.id, ctx.now());
      if (hasCode(e, 'duplicate_message') && entry.seq !== 0) {
        // A new id whose message key was already used: a replay from before the dedupe window, or a sender that
        // encrypted two messages with one key (a bug, fixed once: outbound.ts #inPeerAndOwnQueues). Dropped as a
        // replay, and said in the console, where someone looking for a missing message looks.
        console.warn('A stored message reused a message key that was already used; it was dropped as a replay.');
      } else if (entry.seq !== 0) {
        // A stored (non-ephemeral) message failed: say so rather than losing it silently (see #undecryptable).
        await this.#undecryptable(clean, env, entry, describeError(e));
        return null;
      }
      await ctx.store.commit(clean);
      return null;
    }
    const { content, session } = out;
    const from = env.senderUserId;
    if (content.kind === 'chat') {
      const json = parseJson(content.body);
      const info = groupPayloadSchema.safeParse(json);
      if (info.success) {
        await ctx.store.commit(batch);
        onGroupInfo(info.data);
        return null;
      }
      return this.#chat(batch, entry, from, out.contact.username, json);
    }
    if (content.kind === 'control') {
      const parsed = controlPayloadSchema.safeParse(parseJson(content.body));
      if (!parsed.success) {
        await ctx.store.commit(batch);
        return null;
      }
      const control = parsed.data;
      if (from === ctx.me.userId) {
        if (control.type === 'read') await ctx.parts.receipts.applyReadSync(batch, control.conv, control.ids);
        else await ctx.store.commit(batch);
      } else if (control.type === 'read') {
        await ctx.store.commit(batch); // only our own devices may say what we read
      } else if (control.type === 'typing') {
        await ctx.store.commit(batch);
        // Typing indicators off: none go out, and none show (reciprocal).
        if (ctx.snapshot.preferences.typingIndicators)
          ctx.set({ typingUntil: { ...ctx.snapshot.typingUntil, [from]: ctx.now() + TYPING_SHOW_MS } });
      } else if (control.type === 'profile-key') {
        await ctx.store.commit(batch);
        await ctx.parts.profiles.onProfileKey(from, control);
      } else if (control.type === 'resend') {
        await ctx.store.commit(batch);
        // The asking device and its key are those of the session the request decrypted on (authenticated).
        await ctx.parts.outbound.queueResend(from, env.senderDeviceId, session.peerIdentityKey, control.ids);
      } else if (control.group === undefined) {
        await ctx.parts.receipts.applyReceipt(batch, from, control.status, control.ids);
      } else if (ctx.convs.get(control.group)?.group?.members.some((m) => m.userId === from)) {
        // A group member's receipt, sent to us alone as the author (applyReceipt ticks only our messages there).
        await ctx.parts.receipts.applyReceipt(batch, control.group, control.status, control.ids);
      } else {
        await ctx.store.commit(batch); // not a member of that group (or no such group here): it ticks nothing
      }
      return null;
    }
    if (content.kind === 'sender_key') {
      await ctx.parts.groupMessages.acceptDistribution(batch, session, content.body);
    }
    await ctx.store.commit(batch);
    return null;
  }

  /**
   * A stored message whose envelope opened but did not decrypt. Its sender is only what the envelope claims (anyone
   * can seal an envelope to us), so it creates nothing: with no one-to-one conversation with that user, the user
   * sees a notice that names no one; in an existing conversation, one "could not be decrypted" entry, which
   * further failures within `FAILURE_COALESCE_MS` join (their ids are asked for together). Fetches nothing.
   * Commits `clean` (the id marked seen).
   */
  /** Keeps an entry whose sender awaits the log's witness; false when the bound is reached (it then fails). */
  async #defer(entry: ReceivedMessage, reason: string): Promise<boolean> {
    const ctx = this.#ctx;
    const list = (await ctx.store.read('secrets', KT_DEFERRED_KEY, ktDeferredSchema)) ?? [];
    const known = list.find((d) => d.id === entry.id);
    if (known) {
      if (known.tries + 1 >= KT_DEFERRED_MAX_TRIES) return false;
      known.tries += 1;
      this.#redeferred.add(entry.id);
    } else {
      if (list.length >= KT_DEFERRED_MAX || entry.seq === 0) return false;
      list.push({ id: entry.id, seq: entry.seq, ts: entry.ts, body: ctx.c.toBase64Url(entry.body), tries: 0 });
      ctx.notice('info', reason);
    }
    await ctx.store.write('secrets', KT_DEFERRED_KEY, list);
    this.#scheduleDeferred();
    return true;
  }

  #scheduleDeferred(): void {
    if (this.#deferredRetry || this.#ctx.closed) return;
    const delay = Math.min(1_000 * 2 ** this.#deferredRound, 30_000);
    this.#deferredRound += 1;
    this.#deferredRetry = setTimeout(() => {
      this.#deferredRetry = null;
      if (!this.#ctx.closed) void this.resumeDeferred();
    }, delay);
  }

  /** Handles the deferred entries again (after the backoff, and on each connect); in the batch order. */
  resumeDeferred(): Promise<void> {
    const ctx = this.#ctx;
    this.#chain = this.#chain.then(async () => {
      const list = (await ctx.store.read('secrets', KT_DEFERRED_KEY, ktDeferredSchema)) ?? [];
      if (list.length === 0) return;
      this.#redeferred.clear();
      const done = new Set<string>();
      for (const d of list) {
        const entry: ReceivedMessage = {
          id: d.id,
          seq: d.seq,
          ts: d.ts,
          body: new Uint8Array(ctx.c.fromBase64Url(d.body)),
        };
        try {
          const delivered = await this.#receive(entry);
          if (!this.#redeferred.has(d.id)) done.add(d.id);
          if (delivered) void ctx.parts.receipts.send(delivered.conv, 'delivered', [delivered]).catch(() => undefined);
        } catch {
          return; // storage or the relay failed: kept, tried again on the next connect
        }
      }
      const left = ((await ctx.store.read('secrets', KT_DEFERRED_KEY, ktDeferredSchema)) ?? []).filter(
        (d) => !done.has(d.id),
      );
      await ctx.store.write('secrets', KT_DEFERRED_KEY, left);
      if (left.length === 0) this.#deferredRound = 0;
    });
    return this.#chain;
  }

  async #undecryptable(clean: WriteBatch, env: Envelope, entry: ReceivedMessage, reason: string): Promise<void> {
    const ctx = this.#ctx;
    const conv = env.senderUserId;
    const existing = ctx.convs.get(conv);
    const now = ctx.now();
    if (!existing || existing.group || conv === ctx.me.userId) {
      await ctx.store.commit(clean);
      this.#failureNotice('', now, 'A message could not be decrypted.');
      return;
    }
    const last = this.#lastFailure.get(conv);
    const joinedIt = await ctx.store.changeMessages(async () => {
      const joined = last && now - last.at < FAILURE_COALESCE_MS ? await ctx.store.message(last.id) : null;
      if (!joined?.message.failure || joined.message.mine || joined.message.conv !== conv) return false;
      const ids = joined.message.failedIds ?? [joined.message.id];
      if (ids.length < 50 && !ids.includes(entry.id)) {
        const { senderDevice, ...rest } = joined.message;
        const updated: ChatMessage = {
          ...rest,
          failedIds: [...ids, entry.id],
          ...(senderDevice === env.senderDeviceId ? { senderDevice } : {}),
        };
        const staged = await ctx.store.stageMessageUpdate(clean, updated, joined.sort);
        await ctx.store.commit(clean);
        if (staged.applied) ctx.emitMessages(conv, [updated]);
      } else {
        await ctx.store.commit(clean);
      }
      return true;
    });
    if (joinedIt) return;
    await ctx.storeIncoming(clean, conv, existing.username, {
      id: entry.id,
      conv,
      mine: false,
      text: '',
      ts: entry.ts,
      status: 'delivered',
      failure: `This message could not be decrypted (${reason}).`,
      senderDevice: env.senderDeviceId,
    });
    this.#lastFailure.set(conv, { id: entry.id, at: now });
    this.#failureNotice(conv, now, `A message from ${existing.username} could not be decrypted.`);
  }

  /** One notice per conversation ('' for senders we have none with) per `FAILURE_COALESCE_MS`. */
  #failureNotice(key: string, now: number, text: string): void {
    if (now - (this.#lastFailureNotice.get(key) ?? -Infinity) < FAILURE_COALESCE_MS) return;
    this.#lastFailureNotice.set(key, now);
    this.#ctx.notice('error', text);
  }

  /** A decrypted `chat` payload: a copy of our own other device's message, or a message to us. */
  async #chat(
    batch: WriteBatch,
    entry: ReceivedMessage,
    from: string,
    username: string,
    json: unknown,
  ): Promise<Delivered> {
    const ctx = this.#ctx;
    let id = entry.id;
    const copy = resentCopySchema.safeParse(json);
    if (copy.success) {
      // A copy sent again because the relay refused the first send for this device: filed under the first id, and
      // dropped when that first send was already handled here (a relay that lied "refused" delivered both), or when
      // a message has that id (a contact naming one of ours, which it received, must not replace it).
      if ((await ctx.store.seen(copy.data.orig)) || (await ctx.store.message(copy.data.orig))) {
        this.duplicatesDropped++;
        await ctx.store.commit(batch);
        return null;
      }
      id = copy.data.orig;
      ctx.store.stageSeen(batch, id, ctx.now());
      if (copy.data.group !== undefined) return this.#groupCopy(batch, entry, from, id, copy.data.group, json);
    }
    const action = actionPayloadSchema.safeParse(json);
    if (action.success) {
      // Ours from another device names its conversation; a peer's belongs to the conversation with the peer.
      const conv = from === ctx.me.userId ? action.data.to : from;
      if (conv === undefined) await ctx.store.commit(batch);
      else await ctx.parts.actions.receive(batch, { conv, from, id, ts: entry.ts, action: action.data });
      return null;
    }
    const parsed = chatPayloadSchema.safeParse(json);
    if (from === ctx.me.userId) {
      // Our own other device sent this to `to`: file it there as ours.
      if (!parsed.success || !parsed.data.to) {
        await ctx.store.commit(batch);
        return null;
      }
      await this.#storeOwnCopy(
        batch,
        parsed.data.to,
        {
          id,
          text: parsed.data.text,
          ts: entry.ts,
          ...richFields(parsed.data),
        },
        parsed.data.sentAt,
      );
      return null;
    }
    if (parsed.success && parsed.data.kt !== undefined) ctx.ktGossip?.received(from, parsed.data.kt);
    const message: ChatMessage = parsed.success
      ? {
          id,
          conv: from,
          mine: false,
          text: parsed.data.text,
          ts: entry.ts,
          status: 'delivered',
          ...richFields(parsed.data),
        }
      : {
          id,
          conv: from,
          mine: false,
          text: '',
          ts: entry.ts,
          status: 'delivered',
          failure: 'This message has an unsupported format.',
        };
    await ctx.storeIncoming(batch, from, username, message);
    ctx.clearTyping(from);
    return { conv: from, id, from };
  }

  /**
   * A copy of a group message (or action), sent pairwise because the relay refused the group send for this device:
   * taken only from a current member of a group we are in (or from our own other device), filed in the group as the
   * group send would have been, under the first id (`id`).
   */
  async #groupCopy(
    batch: WriteBatch,
    entry: ReceivedMessage,
    from: string,
    id: string,
    groupId: string,
    json: unknown,
  ): Promise<Delivered> {
    const ctx = this.#ctx;
    const conv = ctx.convs.get(groupId);
    const group = conv?.group;
    const mine = from === ctx.me.userId;
    if (!conv || !group || group.left || (!mine && !group.members.some((m) => m.userId === from))) {
      await ctx.store.commit(batch); // not a member (or no such group here): nothing
      return null;
    }
    const action = actionPayloadSchema.safeParse(json);
    if (action.success) {
      await ctx.parts.actions.receive(batch, { conv: groupId, from, id, ts: entry.ts, action: action.data });
      return null;
    }
    const parsed = chatPayloadSchema.safeParse(json);
    if (!parsed.success) {
      await ctx.store.commit(batch);
      return null;
    }
    const fields = { text: parsed.data.text, ts: entry.ts, ...richFields(parsed.data) };
    if (mine) {
      await this.#storeOwnCopy(batch, groupId, { id, ...fields }, parsed.data.sentAt);
      return null;
    }
    const senderName = group.members.find((m) => m.userId === from)?.username ?? 'member';
    await ctx.storeIncoming(batch, groupId, conv.username, {
      id,
      conv: groupId,
      mine: false,
      status: 'delivered',
      sender: from,
      senderName,
      ...fields,
    });
    ctx.clearTyping(groupId);
    return { conv: groupId, id, from };
  }

  /** A copy of a message our other device sent: stored as ours in its conversation (created if new). */
  async #storeOwnCopy(
    batch: WriteBatch,
    conv: string,
    m: Pick<ChatMessage, 'id' | 'text' | 'ts' | 'reply' | 'attachments' | 'expireSeconds'>,
    sentAt: number,
  ): Promise<void> {
    const ctx = this.#ctx;
    // A conversation we have not had yet starts here; one in memory when the copy is stored is changed instead.
    const start: ConvState = ctx.convs.get(conv) ?? {
      conv,
      username: (await ctx.sessions.contact(conv)).username,
      lastText: '',
      lastTs: 0,
      unread: 0,
      unreadIds: [],
    };
    const ts = ctx.arrivalTs(conv, m.ts);
    const pending = await ctx.parts.actions.applyPending(batch, { ...m, conv, mine: true, ts, status: 'sent' });
    // Ours: a disappearing copy expires counted from when our other device sent it (its clock, never later than now).
    const message = await ctx.parts.disappearing.stage(batch, pending, Math.min(sentAt, ctx.now()));
    await ctx.store.stageMessage(batch, message, ts);
    const { settle } = await ctx.stageConvChange(batch, start, (c) => ({
      ...c,
      lastText: lastTextOf(message),
      lastId: message.id,
      lastTs: Math.max(c.lastTs, ts),
      lastArrival: ts,
    }));
    await ctx.store.commit(batch);
    settle();
    ctx.publishConvs();
    ctx.emitMessages(conv, [message]);
  }
}
