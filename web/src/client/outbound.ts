// Outbound: everything that leaves this device pairwise — the outbox (queued, encrypted once, resent byte for byte
// until the relay acknowledges), stored sends made now (group info, sender keys), ephemeral controls, resends.

import type { Content } from '@weconnect/crypto';
import { z } from 'zod';
import { newMessageId } from './bytes';
import { RANK, encoder, type EngineContext } from './context';
import { ClientError, describeError } from './errors';
import {
  KT_GOSSIP_MAX_BYTES,
  MAX_TEXT_BYTES,
  WORST_PAYLOAD_WITHOUT_TEXT,
  encodedTextBytes,
  payloadFits,
} from './message-limits';
import {
  MAX_ATTACHMENTS,
  attachmentSchema,
  replySchema,
  type ActionPayload,
  type ChatPayload,
  type ControlPayload,
  type OutboxEntry,
} from './schemas';
import { WriteBatch } from './store';
import type { ChatMessage, SendExtra } from './types';
import { lastTextOf } from './actions';

/** What `send` takes besides the text, parsed before anything is stored. */
const sendExtraSchema = z.object({
  reply: replySchema.optional(),
  attachments: z.array(attachmentSchema).max(MAX_ATTACHMENTS).optional(),
});

/** How long the outbox waits after the relay answered `rate_limited`. */
const RATE_LIMIT_RETRY_MS = 1_000;
/** The first retry of a send that waits for the log's witness (kt_unwitnessed); it doubles up to the maximum. */
const WITNESS_RETRY_MS = 1_000;
const WITNESS_RETRY_MAX_MS = 30_000;

/** A `resend` request is honoured only for messages sent this recently (the send log keeps no more). */
export const SEND_LOG_MS = 24 * 3_600_000;
/** The send log's bound in records, whatever their age. */
export const SEND_LOG_MAX = 5_000;
/** At most this many re-sends per contact per `RESEND_WINDOW_MS` (counted in memory: a reload starts afresh). */
export const RESEND_LIMIT = 20;
export const RESEND_WINDOW_MS = 3_600_000;
/** A copy the relay refused (the device's mailbox was full) goes again after this, doubling up to the maximum. */
export const REFUSED_RETRY_MS = 60_000;
export const REFUSED_RETRY_MAX_MS = 15 * 60_000;
/** Refused copies waiting at most at once; one more is given up at once (and the user told). */
export const REFUSED_MAX = 1_000;
/** The user is told of refused copies at most once per conversation in this time (and once more on giving up). */
const REFUSED_NOTICE_MS = 3_600_000;

type RefusedCopy = NonNullable<OutboxEntry['refused']>;
type OutboxRowKey = { id: string; conv: string; created: number };

export class Outbound {
  readonly #ctx: EngineContext;
  #flushing: Promise<void> | null = null;
  #flushAgain = false;
  #retry: ReturnType<typeof setTimeout> | null = null;
  /** Conversations whose send waits for the log's witness (issue #16), with how many retries so far. */
  readonly #witnessWait = new Map<string, number>();
  #witnessRetry: ReturnType<typeof setTimeout> | null = null;
  /** Per contact, when each re-send of the current window was queued (the per-contact rate limit). */
  readonly #resent = new Map<string, number[]>();
  /** The next try of a refused copy (one timer, for the earliest), and when it fires (Date.now() time). */
  #refusedTimer: ReturnType<typeof setTimeout> | null = null;
  #refusedAt = 0;
  /** Refused copies in the outbox, as the last flush counted them (and those queued since). */
  #refusedWaiting = 0;
  /** Per conversation and kind of notice, when the user was last told of refused copies. */
  readonly #refusedTold = new Map<string, number>();

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  async send(conv: string, text: string, extra: SendExtra = {}): Promise<string> {
    const ctx = this.#ctx;
    const parsed = sendExtraSchema.safeParse(extra);
    // Checked before anything is stored: a message that cannot be sent, or read back, never enters history.
    if (!parsed.success) throw new ClientError('invalid_input', 'The reply or the attachments are not valid.');
    const attachments = parsed.data.attachments?.length ? parsed.data.attachments : undefined;
    if (text.trim().length === 0 && !attachments) throw new ClientError('invalid_input', 'The message is empty.');
    if (encodedTextBytes(text) > MAX_TEXT_BYTES) {
      throw new ClientError('invalid_input', `Messages are at most ${MAX_TEXT_BYTES} bytes.`);
    }
    if (attachments && !payloadFits({ ...WORST_PAYLOAD_WITHOUT_TEXT, text, attachments })) {
      throw new ClientError('invalid_input', 'The message and its attachment previews are too large to send together.');
    }
    const c = ctx.convs.get(conv);
    if (!c) throw new ClientError('invalid_input', 'Open the conversation first.');
    if (ctx.snapshot.trust[conv]?.deleted) {
      throw new ClientError('account_deleted', `${c.username}'s account was deleted. Messages can no longer be sent.`);
    }
    const transparency = ctx.snapshot.trust[conv]?.transparency;
    if (transparency) throw new ClientError('transparency_failed', transparency);
    if (ctx.snapshot.trust[conv]?.blocked) {
      throw new ClientError('identity_changed', `${c.username}'s security key changed. Accept the new key to send.`);
    }
    const id = newMessageId();
    const now = await ctx.stamp();
    const batch = new WriteBatch();
    // Written under the conversation's disappearing timer: it travels with the message, and our copy expires from now.
    const timer = (ctx.convs.get(conv) ?? c).expireSeconds;
    const draft: ChatMessage = {
      id,
      conv,
      mine: true,
      text,
      ts: now,
      status: 'pending',
      ...(parsed.data.reply ? { reply: parsed.data.reply } : {}),
      ...(attachments ? { attachments } : {}),
      ...(timer ? { expireSeconds: timer } : {}),
    };
    const message = await ctx.parts.disappearing.stage(batch, draft, now);
    await ctx.store.stageMessage(batch, message, now);
    const { settle } = await ctx.stageConvChange(batch, c, (latest) => ({
      ...latest,
      lastText: lastTextOf(message),
      lastId: message.id,
      lastTs: now,
    }));
    await ctx.store.stageOutbox(batch, id, conv, now, { envelopes: null });
    await ctx.store.commit(batch);
    settle();
    ctx.parts.receipts.sentMessage(conv);
    ctx.publishConvs();
    ctx.emitMessages(conv, [message]);
    void this.flushOutbox();
    return id;
  }

  /** The relay asked us to slow down: flush again after a pause (nothing else would until the next send). */
  retryLater(): void {
    if (this.#retry || this.#ctx.closed) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (!this.#ctx.closed) void this.flushOutbox();
    }, RATE_LIMIT_RETRY_MS);
  }

  /** Stops the retry timer (the engine is closing). */
  stop(): void {
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
    if (this.#witnessRetry) clearTimeout(this.#witnessRetry);
    this.#witnessRetry = null;
    if (this.#refusedTimer) clearTimeout(this.#refusedTimer);
    this.#refusedTimer = null;
  }

  /**
   * The contact's newest keys are not cosigned by the log's witness yet (kt_unwitnessed): the message stays queued
   * and the flush is retried with a bounded backoff (1 s doubling to at most WITNESS_RETRY_MAX_MS) for as long as it
   * takes; the user is told once per wait. Never a failed message, never a blocked contact.
   */
  #waitForWitness(conv: string, reason: string): void {
    const tries = this.#witnessWait.get(conv);
    if (tries === undefined) this.#ctx.notice('info', reason);
    this.#witnessWait.set(conv, (tries ?? 0) + 1);
    if (this.#witnessRetry || this.#ctx.closed) return;
    const worst = Math.max(...this.#witnessWait.values());
    const delay = Math.min(WITNESS_RETRY_MS * 2 ** (worst - 1), WITNESS_RETRY_MAX_MS);
    this.#witnessRetry = setTimeout(() => {
      this.#witnessRetry = null;
      if (!this.#ctx.closed) void this.flushOutbox();
    }, delay);
  }

  /** Whether a conversation's queued send may be encrypted now: not while its contact's keys await the witness. */
  async #witnessReady(conv: string): Promise<boolean> {
    if (!this.#witnessWait.has(conv) || !this.#ctx.ktWitnessed) return true;
    return this.#ctx.ktWitnessed(conv).catch(() => false);
  }

  /** Sends what the outbox holds, oldest first, until it is empty or the relay is unreachable. */
  flushOutbox(): Promise<void> {
    if (this.#flushing) {
      this.#flushAgain = true;
      return this.#flushing;
    }
    this.#flushing = (async () => {
      do {
        this.#flushAgain = false;
        await this.#flushOnce();
      } while (this.#flushAgain && this.#ctx.transport.connected);
    })()
      .catch((e: unknown) => this.#ctx.notice('error', `Sending failed: ${describeError(e)}`))
      .finally(() => {
        this.#flushing = null;
      });
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    const ctx = this.#ctx;
    /** Conversations waiting for the witness in this flush: their later messages wait too (order is kept). */
    const waiting = new Set<string>();
    /** Devices whose mailbox was full for a refused copy in this flush: their later copies wait without trying. */
    const full = new Set<string>();
    const rows = await ctx.store.outbox();
    this.#refusedWaiting = rows.filter(({ entry }) => entry.refused).length;
    for (const { row, entry } of rows) {
      if (!ctx.transport.connected || ctx.closed) return;
      if (entry.refused) {
        if ((await this.#flushRefused(row, entry, entry.refused, full)) === 'stop') return;
        continue;
      }
      if (waiting.has(row.conv)) continue;
      if (entry.control) {
        if ((await this.#flushOwnControl(row, entry.control, entry.envelopes)) === 'stop') return;
        continue;
      }
      const group = ctx.convs.get(row.conv)?.group;
      if (group) {
        if ((await ctx.parts.groupMessages.flushRow(row, entry.groupBody, group, entry.action)) === 'stop') return;
        continue;
      }
      let sent = entry;
      let envelopes = entry.envelopes;
      if (!envelopes) {
        try {
          if (!(await this.#witnessReady(row.conv))) {
            throw new ClientError('kt_unwitnessed', 'still waiting for the witness');
          }
          const made = await this.#inPeerAndOwnQueues(row.conv, () => this.#encryptOneToOne(row, entry));
          sent = made ?? entry;
          envelopes = made && made.envelopes;
          this.#witnessWait.delete(row.conv);
        } catch (e) {
          if (e instanceof ClientError && e.code === 'relay_unreachable') return;
          if (e instanceof ClientError && e.code === 'kt_unwitnessed') {
            waiting.add(row.conv);
            this.#waitForWitness(row.conv, e.message);
            continue;
          }
          this.#witnessWait.delete(row.conv);
          if (entry.resendOf !== undefined) {
            console.warn('a re-send was dropped:', describeError(e));
            await this.#drop(row.id);
            continue;
          }
          const keyChanged = e instanceof ClientError && e.code === 'identity_changed';
          await this.failOutgoing(row.id, row.conv, describeError(e), !keyChanged);
          continue;
        }
        if (envelopes === null) {
          await this.#drop(row.id); // a re-send that may no longer go out (see #encryptOneToOne)
          continue;
        }
      }
      let ack;
      try {
        const blobs = entry.action || entry.resendOf ? undefined : await this.blobsOf(row.id);
        ack = await ctx.transport.send({ id: row.id, envelopes: envelopes ?? [], ...(blobs ? { blobs } : {}) });
      } catch {
        return; // offline or no ack in time: the entry stays and goes out again, with the same id, on reconnect
      }
      if (ctx.deps.dangerousTestOnlyDropSendAcks) continue;
      if (ack.ok) {
        const refused = ack.refused?.map((r) => r.to) ?? [];
        const stage =
          refused.length > 0 && !entry.resendOf
            ? (batch: WriteBatch) => this.stageRefused(batch, row, sent, refused)
            : undefined;
        await this.acknowledged(row.id, row.conv, stage);
      } else if (ack.error.code === 'unknown_recipient') {
        // A device of the peer is gone: check the device list again and re-encrypt, same id.
        await ctx.queue.run(row.conv, async () => {
          const batch = new WriteBatch();
          ctx.sessions.recheckDevices(row.conv);
          ctx.sessions.recheckDevices(ctx.me.userId);
          await ctx.store.stageOutbox(batch, row.id, row.conv, row.created, { ...entry, envelopes: null });
          await ctx.store.commit(batch);
        });
        this.#flushAgain = true;
        return; // start over from the oldest row, so later messages never overtake this one
      } else if (ack.error.code === 'rate_limited') {
        this.retryLater();
        return;
      } else {
        await this.failOutgoing(row.id, row.conv, ack.error.message);
      }
    }
  }

  /**
   * Runs `task` holding our own queue, then the peer's. A one-to-one send also encrypts to our own other devices, and
   * the sessions with them are shared by every conversation: a message from one of them (decrypted in our own queue)
   * or a send to another peer must not read the same session state meanwhile, or one of the two messages reuses a
   * message key and the other device drops it as a duplicate, silently. Our own queue is always taken first; nothing
   * that holds a peer's queue waits for ours.
   */
  #inPeerAndOwnQueues<T>(peer: string, task: () => Promise<T>): Promise<T> {
    const { queue, me } = this.#ctx;
    return queue.run(me.userId, () => (peer === me.userId ? task() : queue.run(peer, task)));
  }

  /**
   * Encrypts a queued one-to-one message (inside our own queue and the peer's): to every device of the peer and our
   * own other devices, or, for a re-send, to the asking device alone. Records the send in the send log and stores the
   * envelopes in the outbox entry, in one commit; returns that entry. Null for a re-send that may no longer go out:
   * its send log record is gone (older than a day), the peer's key is no longer the one the original went to, or the
   * device has no session.
   */
  async #encryptOneToOne(
    row: { id: string; conv: string; created: number },
    entry: OutboxEntry,
  ): Promise<OutboxEntry | null> {
    const ctx = this.#ctx;
    const batch = new WriteBatch();
    let at = ctx.now();
    let original: string | undefined;
    let textId = row.id;
    if (entry.resendOf !== undefined) {
      const logged = await ctx.store.sendLog(entry.resendOf);
      const device = entry.onlyDevices?.[0];
      if (!logged || logged.at < ctx.now() - SEND_LOG_MS || device === undefined) return null;
      const then = logged.entry.devices.find((d) => d.deviceId === device)?.identityKey;
      if (then === undefined || then !== (await ctx.store.contact(row.conv))?.identityKey) return null;
      at = logged.at; // a re-send ages with its original: asking again cannot extend the day
      original = logged.entry.original ?? entry.resendOf;
      textId = original;
    }
    const payload = entry.action
      ? { ...entry.action, to: row.conv }
      : { ...(await this.chatPayloadOf(textId, row.created)), to: row.conv };
    const content = { kind: 'chat', body: encoder.encode(JSON.stringify(payload)) } as const;
    const toPeer = await ctx.sessions.encrypt(row.conv, row.id, content, batch, false, entry.onlyDevices);
    if (entry.onlyDevices && toPeer.length === 0) return null;
    // Our own other devices get a copy (so each shows the whole conversation); never a re-send.
    const toOwn = entry.resendOf ? [] : await ctx.sessions.encrypt(ctx.me.userId, row.id, content, batch);
    const identityKey = (await ctx.store.contact(row.conv))?.identityKey;
    if (identityKey !== undefined && toPeer.length > 0 && !entry.action) {
      await ctx.store.stageSendLog(batch, row.id, at, {
        conv: row.conv,
        ...(original !== undefined ? { original } : {}),
        devices: toPeer.map((e) => ({ deviceId: e.to, identityKey })),
      });
    }
    const ownDevices = toOwn.length > 0 ? { ownDevices: toOwn.map((e) => e.to) } : {};
    const made: OutboxEntry = { ...entry, envelopes: [...toPeer, ...toOwn], ...ownDevices };
    await ctx.store.stageOutbox(batch, row.id, row.conv, row.created, made);
    await ctx.store.commit(batch);
    return made;
  }

  /**
   * The relay stored a send (one-to-one or to a group) for some devices and refused it for these (their mailboxes
   * were full): queues a copy for each, in the commit that closes the send. Each goes alone, later, pairwise, naming
   * the first send (see `#flushRefused`). A group's devices are known by the slots our sender key went to.
   */
  async stageRefused(batch: WriteBatch, row: OutboxRowKey, entry: OutboxEntry, devices: string[]): Promise<void> {
    const ctx = this.#ctx;
    const now = ctx.now();
    const me = ctx.me.userId;
    const owners = new Map<string, string>((entry.ownDevices ?? []).map((d) => [d, me]));
    if (ctx.convs.get(row.conv)?.group) {
      for (const slot of (await ctx.groupKeys.peekOwn(row.conv))?.devices ?? []) {
        const [user, device] = slot.split('/');
        if (user && device) owners.set(device, user);
      }
    }
    for (const device of devices) {
      const user = owners.get(device) ?? (ctx.convs.get(row.conv)?.group ? undefined : row.conv);
      const identityKey = user && user !== me ? (await ctx.store.contact(user))?.identityKey : undefined;
      if (this.#refusedWaiting >= REFUSED_MAX || !user || (user !== me && identityKey === undefined)) {
        this.#tellRefused(row.conv, user, true);
        continue;
      }
      this.#refusedWaiting++;
      const refused: RefusedCopy = {
        original: row.id,
        device,
        user,
        ...(identityKey !== undefined ? { identityKey } : {}),
        tries: 0,
        notBefore: now + REFUSED_RETRY_MS,
        until: now + SEND_LOG_MS,
      };
      // Filed at the first send's time: the copies of one device go in the order of their messages.
      await ctx.store.stageOutbox(batch, newMessageId(), row.conv, row.created, {
        envelopes: null,
        ...(entry.action ? { action: entry.action } : {}),
        refused,
      });
      this.#tellRefused(row.conv, user, false);
    }
    this.#armRefused(REFUSED_RETRY_MS);
  }

  /**
   * One copy for a device the relay refused: it waits for its time, is encrypted once for that device alone, and
   * goes again with a backoff while the device's mailbox is still full, until its day is over. Dropped when its
   * message is gone (deleted, expired), the device is, its owner left the group, or the owner's key is no longer
   * the one the first send went to.
   */
  async #flushRefused(
    row: OutboxRowKey,
    entry: OutboxEntry,
    refused: RefusedCopy,
    full: Set<string>,
  ): Promise<'next' | 'stop'> {
    const ctx = this.#ctx;
    const now = ctx.now();
    if (now > refused.until) {
      await this.#drop(row.id);
      this.#tellRefused(row.conv, refused.user, true);
      return 'next';
    }
    if (refused.notBefore > now) {
      this.#armRefused(refused.notBefore - now);
      return 'next';
    }
    if (full.has(refused.device)) {
      await this.#refusedAgain(row, entry, refused);
      return 'next';
    }
    let envelopes = entry.envelopes;
    if (!envelopes) {
      try {
        envelopes = await this.#inPeerAndOwnQueues(refused.user, () => this.#encryptRefused(row, entry, refused));
      } catch (e) {
        if (e instanceof ClientError && e.code === 'relay_unreachable') return 'stop';
        console.warn('a copy for a refused device was dropped:', describeError(e));
        envelopes = null;
      }
      if (!envelopes) {
        await this.#drop(row.id);
        return 'next';
      }
    }
    let ack;
    try {
      ack = await ctx.transport.send({ id: row.id, envelopes });
    } catch {
      return 'stop';
    }
    if (ack.ok) {
      await this.#drop(row.id);
    } else if (ack.error.code === 'mailbox_full') {
      // Still full: the same envelope and id go again later (the relay stored nothing under the id).
      full.add(refused.device);
      await this.#refusedAgain(row, { ...entry, envelopes }, refused);
    } else if (ack.error.code === 'rate_limited') {
      this.retryLater();
      return 'stop';
    } else {
      console.warn('a copy for a refused device was dropped:', ack.error.code);
      await this.#drop(row.id);
    }
    return 'next';
  }

  /** Encrypts a refused copy for its device alone (inside our own queue and its owner's); null: nothing to send. */
  async #encryptRefused(
    row: OutboxRowKey,
    entry: OutboxEntry,
    refused: RefusedCopy,
  ): Promise<{ to: string; body: Uint8Array }[] | null> {
    const ctx = this.#ctx;
    const own = refused.user === ctx.me.userId;
    if (!own && refused.identityKey !== (await ctx.store.contact(refused.user))?.identityKey) return null;
    const group = ctx.convs.get(row.conv)?.group;
    if (group && (group.left || (!own && !group.members.some((m) => m.userId === refused.user)))) return null;
    const where = { ...(group ? { group: row.conv } : { to: row.conv }), orig: refused.original };
    let payload: object;
    if (entry.action) {
      payload = { ...entry.action, ...where };
    } else {
      const m = (await ctx.store.message(refused.original))?.message;
      if (!m || !m.mine || m.conv !== row.conv || m.failure || m.deleted) return null;
      payload = { ...(await this.chatPayloadOf(refused.original, row.created)), ...where };
    }
    const content = { kind: 'chat', body: encoder.encode(JSON.stringify(payload)) } as const;
    const batch = new WriteBatch();
    const made = await ctx.sessions.encrypt(refused.user, row.id, content, batch, false, [refused.device]);
    if (made.length === 0) return null;
    await ctx.store.stageOutbox(batch, row.id, row.conv, row.created, { ...entry, envelopes: made });
    await ctx.store.commit(batch);
    return made;
  }

  /** A refused copy's device is still full: the copy waits twice as long as before (at most the maximum). */
  async #refusedAgain(row: OutboxRowKey, entry: OutboxEntry, refused: RefusedCopy): Promise<void> {
    const ctx = this.#ctx;
    const delay = Math.min(REFUSED_RETRY_MS * 2 ** (refused.tries + 1), REFUSED_RETRY_MAX_MS);
    const next: RefusedCopy = { ...refused, tries: refused.tries + 1, notBefore: ctx.now() + delay };
    const batch = new WriteBatch();
    await ctx.store.stageOutbox(batch, row.id, row.conv, row.created, { ...entry, refused: next });
    await ctx.store.commit(batch);
    this.#armRefused(delay);
  }

  /** Flushes the outbox again in `delay` ms, unless a flush is already due sooner. */
  #armRefused(delay: number): void {
    if (this.#ctx.closed) return;
    const at = Date.now() + delay;
    if (this.#refusedTimer && this.#refusedAt <= at) return;
    if (this.#refusedTimer) clearTimeout(this.#refusedTimer);
    this.#refusedAt = at;
    this.#refusedTimer = setTimeout(() => {
      this.#refusedTimer = null;
      if (!this.#ctx.closed) void this.flushOutbox();
    }, delay);
  }

  /**
   * Tells the user that a message has not reached a device of `user` yet (or, `gaveUp`, never will; `user` unknown: a
   * device of the group's): once an hour per conversation.
   */
  #tellRefused(conv: string, user: string | undefined, gaveUp: boolean): void {
    const ctx = this.#ctx;
    const key = `${gaveUp ? 'gave-up' : 'waiting'}:${conv}`;
    const now = ctx.now();
    if (now - (this.#refusedTold.get(key) ?? -Infinity) < REFUSED_NOTICE_MS) return;
    this.#refusedTold.set(key, now);
    const c = ctx.convs.get(conv);
    const where = c?.group ? ` in ${c.username}` : '';
    const name = c?.group?.members.find((m) => m.userId === user)?.username ?? (c?.group ? undefined : c?.username);
    const device =
      user === ctx.me.userId ? 'one of your other devices' : name ? `one of ${name}’s devices` : 'a device';
    if (gaveUp) {
      ctx.notice('error', `A message${where} never reached ${device}: its mailbox on the relay stayed full.`);
    } else {
      ctx.notice(
        'info',
        `A message${where} has not reached ${device} yet: its mailbox on the relay is full (the device has been away a long time). It is sent again when there is room, for up to a day.`,
      );
    }
  }

  async #drop(id: string): Promise<void> {
    const batch = new WriteBatch();
    batch.add('outbox', (tx) => tx.objectStore('outbox').delete(id));
    await this.#ctx.store.commit(batch);
  }

  /** Queues a stored control for our own other devices (read state); it waits in the outbox while offline. */
  async queueOwnControl(payload: ControlPayload): Promise<void> {
    const ctx = this.#ctx;
    const batch = new WriteBatch();
    await ctx.store.stageOutbox(batch, newMessageId(), ctx.me.userId, await ctx.stamp(), {
      envelopes: null,
      control: payload,
    });
    await ctx.store.commit(batch);
    void this.flushOutbox();
  }

  /** One queued own-device control: encrypt once to our other devices, send, drop from the outbox. */
  async #flushOwnControl(
    row: { id: string; conv: string; created: number },
    control: ControlPayload,
    made: OutboxEntry['envelopes'],
  ): Promise<'next' | 'stop'> {
    const ctx = this.#ctx;
    const me = ctx.me.userId;
    let envelopes = made;
    if (!envelopes) {
      try {
        envelopes = await ctx.queue.run(me, async () => {
          const batch = new WriteBatch();
          const content = { kind: 'control', body: encoder.encode(JSON.stringify(control)) } as const;
          const out = await ctx.sessions.encrypt(me, row.id, content, batch);
          await ctx.store.stageOutbox(batch, row.id, row.conv, row.created, { envelopes: out, control });
          await ctx.store.commit(batch);
          return out;
        });
      } catch (e) {
        if (e instanceof ClientError && e.code === 'relay_unreachable') return 'stop';
        console.warn('read state not synced to our other devices:', describeError(e));
        await this.#drop(row.id);
        return 'next';
      }
    }
    if (envelopes.length === 0) {
      await this.#drop(row.id); // no other device of ours
      return 'next';
    }
    let ack;
    try {
      ack = await ctx.transport.send({ id: row.id, envelopes });
    } catch {
      return 'stop';
    }
    if (ack.ok) {
      await this.#drop(row.id);
    } else if (ack.error.code === 'unknown_recipient') {
      await ctx.queue.run(me, async () => {
        const batch = new WriteBatch();
        ctx.sessions.recheckDevices(me);
        await ctx.store.stageOutbox(batch, row.id, row.conv, row.created, { envelopes: null, control });
        await ctx.store.commit(batch);
      });
      this.#flushAgain = true;
    } else if (ack.error.code === 'rate_limited') {
      this.retryLater();
      return 'stop';
    } else {
      console.warn('read state not synced to our other devices:', ack.error.code);
      await this.#drop(row.id);
    }
    return 'next';
  }

  /**
   * What a queued message sends, made from history (so a re-send repeats it): its text, the message it answers,
   * its attachments and the disappearing timer it was written under. Without `to`: the group form.
   */
  async chatPayloadOf(id: string, created: number): Promise<ChatPayload> {
    const found = await this.#ctx.store.message(id);
    if (!found) throw new ClientError('corrupt_store', 'The queued message is missing from history');
    const m = found.message;
    const note = await this.#ctx.ktGossip?.outgoing();
    const kt = note && encodedTextBytes(note) <= KT_GOSSIP_MAX_BYTES ? note : null;
    return {
      v: 1,
      text: m.text,
      sentAt: Math.floor(created),
      ...(kt ? { kt } : {}),
      ...(m.reply ? { reply: m.reply } : {}),
      ...(m.attachments?.length ? { attachments: m.attachments } : {}),
      ...(m.expireSeconds ? { expire: m.expireSeconds } : {}),
    };
  }

  /** The blobs a queued message refers to (named in its send, so the relay can expire them once delivered). */
  async blobsOf(id: string): Promise<string[] | undefined> {
    const found = await this.#ctx.store.message(id);
    const ids = found?.message.attachments?.map((a) => a.blobId) ?? [];
    return ids.length > 0 ? ids : undefined;
  }

  /**
   * Queues an action on a conversation (react, edit, delete, timer): encrypted when it goes out, to the peer's
   * devices and our own other devices, or to the group; it waits in the outbox while offline, in order with the
   * messages. Nothing of its own enters history (its effect is applied by the caller).
   */
  async queueAction(conv: string, action: ActionPayload): Promise<string> {
    const ctx = this.#ctx;
    if (!ctx.convs.has(conv)) throw new ClientError('invalid_input', 'Open the conversation first.');
    const id = newMessageId();
    const batch = new WriteBatch();
    await ctx.store.stageOutbox(batch, id, conv, await ctx.stamp(), { envelopes: null, action });
    await ctx.store.commit(batch);
    void this.flushOutbox();
    return id;
  }

  /** The relay stored the send: drop it from the outbox and tick it `sent`. */
  acknowledged(id: string, conv: string, stage?: (batch: WriteBatch) => Promise<void>): Promise<void> {
    return this.#closeSend(id, conv, (m) => (RANK[m.status] < RANK.sent ? { ...m, status: 'sent' } : null), stage);
  }

  /** The send cannot succeed: drop it from the outbox and show why on the message. */
  async failOutgoing(id: string, conv: string, reason: string, notify = true): Promise<void> {
    await this.#closeSend(id, conv, (m) => ({ ...m, failure: `Not sent: ${reason}` }));
    if (notify) this.#ctx.notice('error', `A message could not be sent: ${reason}`);
  }

  /**
   * Drops send `id` from the outbox and, in the same commit, changes its message (`change` null: as it is) and stages
   * what `stage` adds.
   */
  async #closeSend(
    id: string,
    conv: string,
    change: (m: ChatMessage) => ChatMessage | null,
    stage?: (batch: WriteBatch) => Promise<void>,
  ): Promise<void> {
    const ctx = this.#ctx;
    await ctx.store.changeMessages(async () => {
      const found = await ctx.store.message(id);
      const batch = new WriteBatch();
      batch.add('outbox', (tx) => tx.objectStore('outbox').delete(id));
      await stage?.(batch);
      const updated = found ? change(found.message) : null;
      const staged = found && updated ? await ctx.store.stageMessageUpdate(batch, updated, found.sort) : null;
      await ctx.store.commit(batch);
      if (updated && staged?.applied) ctx.emitMessages(conv, [updated]);
    });
  }

  /** Encrypted control message (typing, receipts) to connected devices only; never stored, never retried. */
  async sendControl(conv: string, payload: ControlPayload): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx.transport.connected) return;
    if (ctx.blocked.has(conv)) return; // no typing, delivery or read receipts to someone we block
    if (ctx.convs.get(conv)?.group) return ctx.parts.groupMessages.sendControl(conv, payload);
    await ctx.queue.run(conv, async () => {
      const id = newMessageId();
      const batch = new WriteBatch();
      const envelopes = await ctx.sessions.encrypt(
        conv,
        id,
        { kind: 'control', body: encoder.encode(JSON.stringify(payload)) },
        batch,
        true,
      );
      if (envelopes.length === 0) return;
      await ctx.store.commit(batch);
      await ctx.transport.send({ id, envelopes, ephemeral: true }).catch(() => undefined);
    });
  }

  /**
   * A stored pairwise send made and emitted now (group info, sender keys); throws when it did not go out. With
   * `onlyDevices`, only those devices of the peer get it. Returns the devices the relay stored it for (`to`) and
   * those whose mailboxes were full (`refused`: all of them when it stored it for none). Nothing is sent again.
   */
  async sendPairwiseNow(
    peer: string,
    content: Content,
    onlyDevices?: readonly string[],
  ): Promise<{ to: string[]; refused: string[] }> {
    const ctx = this.#ctx;
    for (let attempt = 0; ; attempt++) {
      const id = newMessageId();
      const envelopes = await ctx.queue.run(peer, async () => {
        const batch = new WriteBatch();
        const made = await ctx.sessions.encrypt(peer, id, content, batch, false, onlyDevices);
        await ctx.store.commit(batch);
        return made;
      });
      if (envelopes.length === 0) return { to: [], refused: [] }; // our own account with no other device
      const ack = await ctx.transport.send({ id, envelopes });
      if (ack.ok) {
        const refused = new Set(ack.refused?.map((r) => r.to));
        return { to: envelopes.map((e) => e.to).filter((d) => !refused.has(d)), refused: [...refused] };
      }
      if (ack.error.code === 'mailbox_full') return { to: [], refused: envelopes.map((e) => e.to) };
      if (ack.error.code !== 'unknown_recipient' || attempt > 0) {
        throw new ClientError('relay_error', ack.error.message);
      }
      ctx.sessions.recheckDevices(peer);
    }
  }

  /**
   * A device of the peer could not decrypt some of our messages and asks for them again. Honoured only for what
   * the send log holds (sent to this peer within a day), only if that very device got the original under the
   * identity key the request came with (`askerIdentityKey`: the key of the session the request decrypted on), and
   * at most `RESEND_LIMIT` per contact per hour. Each is queued under a new id for that device alone; the outbox
   * entry names the original, so a reload loses nothing. Runs inside the peer's queue: never queue on it again.
   */
  async queueResend(
    from: string,
    fromDevice: string,
    askerIdentityKey: Uint8Array,
    ids: readonly string[],
  ): Promise<void> {
    const ctx = this.#ctx;
    const asker = ctx.c.toBase64Url(askerIdentityKey);
    const now = ctx.now();
    let queued = 0;
    let refused = 0;
    let limited = 0;
    for (const original of new Set(ids)) {
      const logged = await ctx.store.sendLog(original);
      const sentThere =
        logged !== null &&
        logged.at >= now - SEND_LOG_MS &&
        logged.entry.conv === from &&
        logged.entry.devices.some((d) => d.deviceId === fromDevice && d.identityKey === asker);
      const found = sentThere ? await ctx.store.message(logged.entry.original ?? original) : null;
      if (!found || !found.message.mine || found.message.conv !== from || found.message.failure) {
        refused++;
        continue;
      }
      if (!this.#takeResend(from, now)) {
        limited++;
        continue;
      }
      const batch = new WriteBatch();
      await ctx.store.stageOutbox(batch, newMessageId(), from, await ctx.stamp(), {
        envelopes: null,
        resendOf: original,
        onlyDevices: [fromDevice],
      });
      await ctx.store.commit(batch);
      queued++;
    }
    if (refused > 0 || limited > 0) {
      console.warn(
        `resend request: ${queued} re-sent, ${refused} not sent to that device and key within a day, ${limited} over the per-contact limit`,
      );
    }
    if (queued > 0) void this.flushOutbox();
  }

  /** Counts one re-send to `peer` against the hourly limit; false when the limit is reached. */
  #takeResend(peer: string, now: number): boolean {
    const recent = (this.#resent.get(peer) ?? []).filter((t) => t > now - RESEND_WINDOW_MS);
    const ok = recent.length < RESEND_LIMIT;
    if (ok) recent.push(now);
    this.#resent.set(peer, recent);
    return ok;
  }

  /** Forgets send log records older than a day, then the oldest beyond the bound (on start and hourly). */
  pruneSendLog(): Promise<void> {
    return this.#ctx.store.pruneSendLog(this.#ctx.now(), SEND_LOG_MS, SEND_LOG_MAX);
  }

  /**
   * Asks the sender of a message (or several, coalesced) we could not decrypt to send it again: over the sessions
   * we have, to the device the envelope named when known. The sessions stay: the envelope's sender is only a claim,
   * and deleting working sessions on its word would let whoever forged it break the conversation.
   */
  async requestResend(conv: string, messageId: string): Promise<void> {
    const ctx = this.#ctx;
    const found = await ctx.store.message(messageId);
    if (!found || found.message.mine || !found.message.failure) return;
    const peer = found.message.sender ?? conv;
    ctx.parts.membership.requireOnline();
    const payload: ControlPayload = { v: 1, type: 'resend', ids: found.message.failedIds ?? [messageId] };
    const content = { kind: 'control', body: encoder.encode(JSON.stringify(payload)) } as const;
    const device = found.message.senderDevice;
    const to = device === undefined ? [] : (await this.sendPairwiseNow(peer, content, [device])).to;
    if (to.length === 0) await this.sendPairwiseNow(peer, content);
    await ctx.store.changeMessages(async () => {
      // Read again: the row may have changed (or gone) while the request was sent.
      const now = await ctx.store.message(messageId);
      if (!now?.message.failure) return;
      const updated: ChatMessage = { ...now.message, failure: 'Could not be decrypted. Asked the sender to resend.' };
      const batch = new WriteBatch();
      const staged = await ctx.store.stageMessageUpdate(batch, updated, now.sort);
      await ctx.store.commit(batch);
      if (staged.applied) ctx.emitMessages(conv, [updated]);
    });
  }
}
