// ChatClient: the chat engine facade the UI talks to. Owns the transport, the per-peer queue, the outbox, local
// history and the snapshot; it never renders. See web/README.md for the data path.

import type { Content, Envelope } from '@weconnect/crypto';
import { z } from 'zod';
import type { RelayApi } from './api';
import { newMessageId } from './bytes';
import type { Crypto } from './crypto-loader';
import { wipeEngineDB } from './db';
import { ClientError, describeError } from './errors';
import { GroupKeys, groupInfoPayloadSchema, type GroupInfoPayload } from './groups';
import type { OwnKeys } from './own-keys';
import {
  chatPayloadSchema,
  controlPayloadSchema,
  conversationSummarySchema,
  groupAnswerSchema,
  groupListSchema,
  inboundEntrySchema,
  MAX_TEXT,
  presenceEventSchema,
  prekeyCountSchema,
  settingsSchema,
  usersAnswerSchema,
  type Contact,
  type ControlPayload,
  type InboundEntry,
} from './schemas';
import { KeyedSerialQueue } from './serial-queue';
import { DEVICE_CHECK_MS, Sessions } from './sessions';
import { WriteBatch, type LocalStore } from './store';
import { Transport } from './transport';
import type {
  ChatEngineApi,
  ChatMessage,
  ContactTrust,
  Conversation,
  EngineSnapshot,
  GroupInfo,
  HistoryPage,
  Me,
  MessageListener,
  MessageStatus,
  SafetyNumberView,
  Notice,
  Person,
} from './types';

const RANK: Record<MessageStatus, number> = { pending: 0, sent: 1, delivered: 2, read: 3 };
const TYPING_SHOW_MS = 6_000;
const TYPING_SEND_EVERY_MS = 3_000;
const MAINTENANCE_EVERY_MS = 60 * 60_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface ConvState extends Conversation {
  unreadIds: string[];
}

const convRecordSchema = conversationSummarySchema.extend({ unreadIds: z.array(z.string()).max(1000) });

export interface ChatClientOptions {
  crypto: Crypto;
  store: LocalStore;
  api: RelayApi;
  relayUrl: string;
  me: Me;
  keys: OwnKeys;
  /** The clock (ms since the epoch) for every time the engine records or compares; tests move it. */
  now?: () => number;
  /** How stale a user's device list may get before a send fetches it again (default 10 minutes). */
  deviceCheckMs?: number;
  /** Called once after sign-out or when the session ended (release the tab lock, go back to the first screen). */
  onClosed: () => void;
  /** Test-only: ignore relay acks for sends (simulates an ack lost on the way back). */
  dangerousTestOnlyDropSendAcks?: boolean;
  /** Test-only: store inbound messages but never ack them (simulates a crash before the ack). */
  dangerousTestOnlySkipInboundAcks?: boolean;
}

export class ChatClient implements ChatEngineApi {
  readonly #c: Crypto;
  readonly #store: LocalStore;
  readonly #api: RelayApi;
  readonly #keys: OwnKeys;
  readonly #sessions: Sessions;
  readonly #transport: Transport;
  readonly #queue = new KeyedSerialQueue();
  readonly #options: ChatClientOptions;
  readonly #listeners = new Set<() => void>();
  readonly #messageListeners = new Set<MessageListener>();
  readonly #convs = new Map<string, ConvState>();
  readonly #lastTypingSent = new Map<string, number>();
  #snapshot: EngineSnapshot;
  #noticeId = 0;
  #inbound: Promise<void> = Promise.resolve();
  #flushing: Promise<void> | null = null;
  #flushAgain = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  #closed = false;
  #duplicatesDropped = 0;
  readonly #now: () => number;
  readonly #groups: GroupKeys;
  readonly #sentGroupBodies: Uint8Array[] = [];
  /** Outbox ids of re-sends (a peer could not decrypt) → the original message they repeat. */
  readonly #resendOf = new Map<string, string>();

  private constructor(options: ChatClientOptions) {
    if (options.dangerousTestOnlyDropSendAcks || options.dangerousTestOnlySkipInboundAcks) assertTest();
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#c = options.crypto;
    this.#store = options.store;
    this.#api = options.api;
    this.#keys = options.keys;
    this.#groups = new GroupKeys(this.#c, this.#store);
    this.#sessions = new Sessions(
      this.#c,
      this.#store,
      this.#keys,
      this.#api,
      options.me,
      {
        // The conversation's banner says it (and offers the safety number); no floating notice on top of it.
        identityChanged: (contact) => this.#setTrust(contact),
      },
      { now: this.#now, deviceCheckMs: options.deviceCheckMs ?? DEVICE_CHECK_MS },
    );
    this.#snapshot = {
      me: options.me,
      connection: 'connecting',
      conversations: [],
      presence: {},
      typingUntil: {},
      typingName: {},
      trust: {},
      sharePresence: true,
      notices: [],
    };
    this.#transport = new Transport(options.relayUrl, this.#api.tokens, {
      state: (connection) => this.#set({ connection }),
      messages: (batch, ack) => this.#onMessages(batch, ack),
      presence: (update) => this.#onPresence(update),
      connected: () => this.#onConnected(),
      sessionEnded: () => {
        this.#notice('error', 'Your session on the relay ended. Sign out and sign in again with your password.');
      },
    });
  }

  /** Loads conversations and settings from IndexedDB, then connects. */
  static async open(options: ChatClientOptions): Promise<ChatClient> {
    const client = new ChatClient(options);
    await client.#load();
    client.#transport.start();
    client.#timer = setInterval(() => void client.#maintain(), MAINTENANCE_EVERY_MS);
    return client;
  }

  async #load(): Promise<void> {
    for (const row of await this.#store.db.getAll('conversations')) {
      const s = await this.#store.vault.open(`conversations/${row.conv}`, row.sealed, convRecordSchema);
      this.#convs.set(row.conv, { conv: row.conv, ...s });
    }
    for (const key of await this.#store.keys('contacts', '')) {
      const contact = await this.#store.contact(key);
      if (contact) this.#setTrust(contact, false);
    }
    const settings = await this.#store.read('secrets', 'settings', settingsSchema);
    this.#set({ conversations: this.#sortedConvs(), sharePresence: settings?.sharePresence ?? true });
  }

  // ── snapshot plumbing ────────────────────────────────────────────────────────────────────────────────────

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  getSnapshot(): EngineSnapshot {
    return this.#snapshot;
  }

  onMessages(listener: MessageListener): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  #set(patch: Partial<EngineSnapshot>): void {
    this.#snapshot = { ...this.#snapshot, ...patch };
    for (const l of this.#listeners) l();
  }

  #emitMessages(conv: string, messages: ChatMessage[]): void {
    if (messages.length === 0) return;
    for (const l of this.#messageListeners) l(conv, messages);
  }

  #setTrust(contact: Contact, publish = true): void {
    const trust: ContactTrust = {
      verified: contact.verified,
      keyChanged: contact.keyChanged ?? false,
      blocked: contact.pendingIdentityKey !== undefined,
    };
    const next = { ...this.#snapshot.trust, [contact.userId]: trust };
    if (publish) this.#set({ trust: next });
    else this.#snapshot = { ...this.#snapshot, trust: next };
  }

  #notice(kind: Notice['kind'], text: string): void {
    const notices = [...this.#snapshot.notices, { id: ++this.#noticeId, kind, text }].slice(-5);
    this.#set({ notices });
  }

  dismissNotice(id: number): void {
    this.#set({ notices: this.#snapshot.notices.filter((n) => n.id !== id) });
  }

  #sortedConvs(): Conversation[] {
    return [...this.#convs.values()].sort((a, b) => b.lastTs - a.lastTs).map(({ unreadIds: _unreadIds, ...c }) => c);
  }

  async #stageConv(batch: WriteBatch, c: ConvState): Promise<void> {
    const { conv, ...rest } = c;
    const sealed = await this.#store.vault.seal(`conversations/${conv}`, rest);
    batch.add('conversations', (tx) => tx.objectStore('conversations').put({ conv, sealed }));
  }

  #publishConvs(): void {
    this.#set({ conversations: this.#sortedConvs() });
  }

  // ── people and conversations ─────────────────────────────────────────────────────────────────────────────

  async searchPeople(query: string): Promise<Person[]> {
    const q = query.trim();
    if (!/^[A-Za-z0-9_]{1,32}$/.test(q)) return [];
    const answer = await this.#api.call('GET', `/api/users?query=${encodeURIComponent(q)}`, usersAnswerSchema);
    return answer.users;
  }

  async openConversation(person: Person): Promise<void> {
    if (this.#convs.has(person.userId)) return;
    const c: ConvState = {
      conv: person.userId,
      username: person.username,
      lastText: '',
      lastTs: this.#now(),
      unread: 0,
      unreadIds: [],
    };
    const batch = new WriteBatch();
    await this.#stageConv(batch, c);
    await this.#store.commit(batch);
    this.#convs.set(c.conv, c);
    this.#publishConvs();
    this.#watchPresence();
  }

  async loadHistory(conv: string, before: number | null, limit = 50): Promise<HistoryPage> {
    const { rows, more } = await this.#store.page(conv, before, limit);
    const messages: ChatMessage[] = [];
    for (const row of rows) messages.push(await this.#store.openMessage(row));
    return { messages, cursor: more && rows[0] ? rows[0].sort : null };
  }

  // ── sending ──────────────────────────────────────────────────────────────────────────────────────────────

  async send(conv: string, text: string): Promise<string> {
    if (text.trim().length === 0) throw new ClientError('invalid_input', 'The message is empty.');
    if (text.length > MAX_TEXT) throw new ClientError('invalid_input', `Messages are at most ${MAX_TEXT} characters.`);
    const c = this.#convs.get(conv);
    if (!c) throw new ClientError('invalid_input', 'Open the conversation first.');
    if (this.#snapshot.trust[conv]?.blocked) {
      throw new ClientError('identity_changed', `${c.username}'s security key changed. Accept the new key to send.`);
    }
    const id = newMessageId();
    const now = this.#now();
    const message: ChatMessage = { id, conv, mine: true, text, ts: now, status: 'pending' };
    const next: ConvState = { ...c, lastText: text.slice(0, 200), lastTs: now };
    const batch = new WriteBatch();
    await this.#store.stageMessage(batch, message, now);
    await this.#stageConv(batch, next);
    await this.#store.stageOutbox(batch, id, conv, now, { envelopes: null });
    await this.#store.commit(batch);
    this.#convs.set(conv, next);
    this.#lastTypingSent.delete(conv); // the peer cleared "typing" on this message: the next keystroke says so again
    this.#publishConvs();
    this.#emitMessages(conv, [message]);
    void this.flushOutbox();
    return id;
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
      } while (this.#flushAgain && this.#transport.connected);
    })()
      .catch((e: unknown) => this.#notice('error', `Sending failed: ${describeError(e)}`))
      .finally(() => {
        this.#flushing = null;
      });
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    for (const { row, entry } of await this.#store.outbox()) {
      if (!this.#transport.connected || this.#closed) return;
      const group = this.#convs.get(row.conv)?.group;
      if (group) {
        if ((await this.#flushGroupRow(row, entry.groupBody, group)) === 'stop') return;
        continue;
      }
      let envelopes = entry.envelopes;
      if (!envelopes) {
        try {
          envelopes = await this.#queue.run(row.conv, async () => {
            const batch = new WriteBatch();
            const chat = { v: 1, text: await this.#outgoingText(row.id), sentAt: row.created, to: row.conv };
            const content = { kind: 'chat', body: encoder.encode(JSON.stringify(chat)) } as const;
            // The peer's devices and our own other devices (so each of them shows the whole conversation).
            const made = [
              ...(await this.#sessions.encrypt(row.conv, row.id, content, batch)),
              ...(await this.#sessions.encrypt(this.#options.me.userId, row.id, content, batch)),
            ];
            await this.#store.stageOutbox(batch, row.id, row.conv, row.created, { envelopes: made });
            await this.#store.commit(batch);
            return made;
          });
        } catch (e) {
          if (e instanceof ClientError && e.code === 'relay_unreachable') return;
          const keyChanged = e instanceof ClientError && e.code === 'identity_changed';
          await this.#failOutgoing(row.id, row.conv, describeError(e), !keyChanged);
          continue;
        }
      }
      let ack;
      try {
        ack = await this.#transport.send({ id: row.id, envelopes: envelopes ?? [] });
      } catch {
        return; // offline or no ack in time: the entry stays and goes out again, with the same id, on reconnect
      }
      if (this.#options.dangerousTestOnlyDropSendAcks) continue;
      if (ack.ok) {
        await this.#acknowledged(row.id, row.conv);
      } else if (ack.error.code === 'unknown_recipient') {
        // A device of the peer is gone: forget the sessions and encrypt again from a fresh bundle, same id.
        await this.#queue.run(row.conv, async () => {
          const batch = new WriteBatch();
          await this.#sessions.forget(row.conv, batch);
          await this.#store.stageOutbox(batch, row.id, row.conv, row.created, { envelopes: null });
          await this.#store.commit(batch);
        });
        this.#flushAgain = true;
      } else if (ack.error.code === 'rate_limited') {
        return;
      } else {
        await this.#failOutgoing(row.id, row.conv, ack.error.message);
      }
    }
  }

  async #outgoingText(id: string): Promise<string> {
    const found = await this.#store.message(this.#resendOf.get(id) ?? id);
    if (!found) throw new ClientError('corrupt_store', 'The queued message is missing from history');
    return found.message.text;
  }

  async #acknowledged(id: string, conv: string): Promise<void> {
    const found = await this.#store.message(id);
    const batch = new WriteBatch();
    batch.add('outbox', (tx) => tx.objectStore('outbox').delete(id));
    let updated: ChatMessage | null = null;
    if (found && RANK[found.message.status] < RANK.sent) {
      updated = { ...found.message, status: 'sent' };
      await this.#store.stageMessage(batch, updated, found.sort);
    }
    await this.#store.commit(batch);
    if (updated) this.#emitMessages(conv, [updated]);
  }

  async #failOutgoing(id: string, conv: string, reason: string, notify = true): Promise<void> {
    const found = await this.#store.message(id);
    const batch = new WriteBatch();
    batch.add('outbox', (tx) => tx.objectStore('outbox').delete(id));
    let updated: ChatMessage | null = null;
    if (found) {
      updated = { ...found.message, failure: `Not sent: ${reason}` };
      await this.#store.stageMessage(batch, updated, found.sort);
    }
    await this.#store.commit(batch);
    if (updated) this.#emitMessages(conv, [updated]);
    if (notify) this.#notice('error', `A message could not be sent: ${reason}`);
  }

  /** Encrypted control message (typing, receipts) to connected devices only; never stored, never retried. */
  async #sendControl(conv: string, payload: ControlPayload): Promise<void> {
    if (!this.#transport.connected) return;
    if (this.#convs.get(conv)?.group) return this.#sendGroupControl(conv, payload);
    await this.#queue.run(conv, async () => {
      const id = newMessageId();
      const batch = new WriteBatch();
      const envelopes = await this.#sessions.encrypt(
        conv,
        id,
        { kind: 'control', body: encoder.encode(JSON.stringify(payload)) },
        batch,
        true,
      );
      if (envelopes.length === 0) return;
      await this.#store.commit(batch);
      await this.#transport.send({ id, envelopes, ephemeral: true }).catch(() => undefined);
    });
  }

  notifyTyping(conv: string): void {
    const now = this.#now();
    if (now - (this.#lastTypingSent.get(conv) ?? 0) < TYPING_SEND_EVERY_MS) return;
    this.#lastTypingSent.set(conv, now);
    void this.#sendControl(conv, { v: 1, type: 'typing' }).catch((e: unknown) =>
      console.warn('typing indicator not sent', e),
    );
  }

  async markRead(conv: string): Promise<void> {
    const c = this.#convs.get(conv);
    if (!c || (c.unread === 0 && c.unreadIds.length === 0)) return;
    const ids = c.unreadIds;
    const next: ConvState = { ...c, unread: 0, unreadIds: [] };
    this.#convs.set(conv, next);
    this.#publishConvs();
    const batch = new WriteBatch();
    const changed: ChatMessage[] = [];
    for (const id of ids) {
      const found = await this.#store.message(id);
      if (found && !found.message.mine && found.message.status !== 'read') {
        const m: ChatMessage = { ...found.message, status: 'read' };
        await this.#store.stageMessage(batch, m, found.sort);
        changed.push(m);
      }
    }
    await this.#stageConv(batch, next);
    await this.#store.commit(batch);
    this.#emitMessages(conv, changed);
    for (let i = 0; i < ids.length; i += 500) {
      await this.#sendControl(conv, { v: 1, type: 'receipt', status: 'read', ids: ids.slice(i, i + 500) });
    }
  }

  // ── receiving ────────────────────────────────────────────────────────────────────────────────────────────

  #onMessages(batch: unknown[], ack: () => void): void {
    // Batches are handled strictly in order; the ack goes back only after every entry is stored.
    this.#inbound = this.#inbound.then(async () => {
      const receipts = new Map<string, string[]>();
      try {
        for (const raw of batch) {
          const parsed = inboundEntrySchema.safeParse(raw);
          if (!parsed.success) {
            this.#notice('error', 'The relay delivered a malformed message; it was dropped.');
            continue;
          }
          const delivered = await this.#receive(parsed.data);
          if (delivered) receipts.set(delivered.conv, [...(receipts.get(delivered.conv) ?? []), delivered.id]);
        }
      } catch (e) {
        // Storage failed: do not ack, so the relay delivers these entries again.
        this.#notice('error', `Incoming messages could not be stored: ${describeError(e)}`);
        return;
      }
      if (!this.#options.dangerousTestOnlySkipInboundAcks) ack();
      for (const [conv, ids] of receipts) {
        void this.#sendControl(conv, { v: 1, type: 'receipt', status: 'delivered', ids }).catch((e: unknown) =>
          console.warn('delivery receipt not sent', e),
        );
      }
    });
  }

  /** Handles one mailbox entry; returns the chat message it stored, if any. Throws only when storage fails. */
  async #receive(entry: InboundEntry): Promise<{ conv: string; id: string } | null> {
    if (await this.#store.seen(entry.id)) {
      this.#duplicatesDropped++;
      return null;
    }
    const markSeen = async () => {
      const batch = new WriteBatch();
      this.#store.stageSeen(batch, entry.id, this.#now());
      await this.#store.commit(batch);
    };
    if (entry.group !== undefined) {
      const groupId = entry.group;
      return this.#queue.run(`group:${groupId}`, () => this.#receiveGroup(groupId, entry));
    }
    let env: Envelope;
    try {
      env = this.#c.openEnvelope(this.#keys.identity, entry.body);
      if (env.messageId !== entry.id) throw new ClientError('decrypt_failed', 'message id mismatch');
    } catch {
      this.#notice('error', 'A message could not be decrypted (its envelope did not open) and was dropped.');
      await markSeen();
      return null;
    }
    return this.#queue.run(env.senderUserId, () => this.#receiveFrom(env, entry));
  }

  async #receiveFrom(env: Envelope, entry: InboundEntry): Promise<{ conv: string; id: string } | null> {
    const batch = new WriteBatch();
    this.#store.stageSeen(batch, entry.id, this.#now());
    let content;
    let username: string;
    let session;
    try {
      const out = await this.#sessions.decrypt(env, batch);
      content = out.content;
      username = out.contact.username;
      session = out.session;
    } catch (e) {
      if (e instanceof ClientError && e.code === 'relay_unreachable') throw e;
      const dup = e instanceof Error && 'code' in e && e.code === 'duplicate_message';
      const clean = new WriteBatch();
      this.#store.stageSeen(clean, entry.id, this.#now());
      if (!dup && entry.seq !== 0) {
        // A stored (non-ephemeral) message failed: show it in the conversation rather than losing it silently.
        const contact = await this.#store.contact(env.senderUserId);
        await this.#storeIncoming(clean, env.senderUserId, contact?.username ?? 'Unknown sender', {
          id: entry.id,
          conv: env.senderUserId,
          mine: false,
          text: '',
          ts: entry.ts,
          status: 'delivered',
          failure: `This message could not be decrypted (${describeError(e)}).`,
        });
        this.#notice('error', `A message from ${contact?.username ?? 'an unknown sender'} could not be decrypted.`);
        return null;
      }
      await this.#store.commit(clean);
      return null;
    }
    const from = env.senderUserId;
    if (content.kind === 'chat') {
      const json = parseJson(content.body);
      const info = groupInfoPayloadSchema.safeParse(json);
      if (info.success) {
        await this.#store.commit(batch);
        await this.#onGroupInfo(from, info.data);
        return null;
      }
      const parsed = chatPayloadSchema.safeParse(json);
      if (from === this.#options.me.userId) {
        // Our own other device sent this to `to`: file it there as ours.
        if (!parsed.success || !parsed.data.to) {
          await this.#store.commit(batch);
          return null;
        }
        await this.#storeOwnCopy(batch, parsed.data.to, { id: entry.id, text: parsed.data.text, ts: entry.ts });
        return null;
      }
      const message: ChatMessage = parsed.success
        ? { id: entry.id, conv: from, mine: false, text: parsed.data.text, ts: entry.ts, status: 'delivered' }
        : {
            id: entry.id,
            conv: from,
            mine: false,
            text: '',
            ts: entry.ts,
            status: 'delivered',
            failure: 'This message has an unsupported format.',
          };
      await this.#storeIncoming(batch, from, username, message);
      if (this.#snapshot.typingUntil[from]) {
        const { [from]: _gone, ...rest } = this.#snapshot.typingUntil;
        this.#set({ typingUntil: rest });
      }
      return { conv: from, id: entry.id };
    }
    if (content.kind === 'control') {
      const parsed = controlPayloadSchema.safeParse(parseJson(content.body));
      if (!parsed.success) {
        await this.#store.commit(batch);
        return null;
      }
      if (from === this.#options.me.userId) {
        await this.#store.commit(batch);
      } else if (parsed.data.type === 'typing') {
        await this.#store.commit(batch);
        this.#set({ typingUntil: { ...this.#snapshot.typingUntil, [from]: this.#now() + TYPING_SHOW_MS } });
      } else if (parsed.data.type === 'resend') {
        await this.#store.commit(batch);
        await this.#queueResend(from, parsed.data.ids);
      } else {
        await this.#applyReceipt(batch, from, parsed.data.status, parsed.data.ids);
      }
      return null;
    }
    if (content.kind === 'sender_key') {
      try {
        const record = this.#c.acceptSenderKeyDistribution(session, content.body);
        const g = this.#convs.get(record.groupId)?.group;
        const known = await this.#groups.record(record.groupId, this.#c.toBase64Url(record.distributionId));
        // Only a current member's key is kept; a re-sent distribution never replaces the record we advanced.
        if (g && !g.left && g.members.some((m) => m.userId === from) && !known) {
          await this.#groups.stageRecord(batch, record);
        }
      } catch (e) {
        console.warn('a sender-key distribution was refused', e);
      }
    }
    await this.#store.commit(batch);
    return null;
  }

  async #storeIncoming(batch: WriteBatch, conv: string, username: string, message: ChatMessage): Promise<void> {
    const existing = this.#convs.get(conv);
    const next: ConvState = {
      ...existing,
      conv,
      username,
      lastText: message.failure ? 'Message could not be decrypted' : message.text.slice(0, 200),
      lastTs: Math.max(existing?.lastTs ?? 0, message.ts),
      unread: (existing?.unread ?? 0) + 1,
      unreadIds: [...(existing?.unreadIds ?? []), message.id].slice(-1000),
    };
    await this.#store.stageMessage(batch, message, message.ts);
    await this.#stageConv(batch, next);
    await this.#store.commit(batch);
    this.#convs.set(conv, next);
    this.#publishConvs();
    this.#emitMessages(conv, [message]);
    if (!existing) this.#watchPresence();
  }

  /** Ticks my messages in `conv`; callers pass only receipts from the conversation's peer or group members. */
  async #applyReceipt(batch: WriteBatch, conv: string, status: 'delivered' | 'read', ids: string[]): Promise<void> {
    const from = conv;
    const changed: ChatMessage[] = [];
    for (const id of ids) {
      const found = await this.#store.message(id);
      if (!found || !found.message.mine || found.message.conv !== conv) continue;
      if (RANK[found.message.status] >= RANK[status]) continue;
      const m: ChatMessage = { ...found.message, status };
      await this.#store.stageMessage(batch, m, found.sort);
      changed.push(m);
    }
    await this.#store.commit(batch);
    this.#emitMessages(from, changed);
  }

  /** A copy of a message our other device sent: stored as ours in its conversation (created if new). */
  async #storeOwnCopy(batch: WriteBatch, conv: string, m: { id: string; text: string; ts: number }): Promise<void> {
    let existing = this.#convs.get(conv);
    if (!existing) {
      const contact = await this.#sessions.contact(conv);
      existing = { conv, username: contact.username, lastText: '', lastTs: 0, unread: 0, unreadIds: [] };
    }
    const message: ChatMessage = { id: m.id, conv, mine: true, text: m.text, ts: m.ts, status: 'sent' };
    const next: ConvState = { ...existing, lastText: m.text.slice(0, 200), lastTs: Math.max(existing.lastTs, m.ts) };
    await this.#store.stageMessage(batch, message, m.ts);
    await this.#stageConv(batch, next);
    await this.#store.commit(batch);
    this.#convs.set(conv, next);
    this.#publishConvs();
    this.#emitMessages(conv, [message]);
  }

  /** The peer could not decrypt some of our messages: queue each again under a new id (same text). */
  async #queueResend(from: string, ids: readonly string[]): Promise<void> {
    // No session reset here: the request itself arrived on the fresh session the requester started, which
    // replaced ours, so the re-sends go out on it. (This runs inside the peer's queue: never queue on it again.)
    let queued = 0;
    for (const original of ids) {
      const found = await this.#store.message(original);
      if (!found || !found.message.mine || found.message.conv !== from || found.message.failure) continue;
      const id = newMessageId();
      this.#resendOf.set(id, original);
      const batch = new WriteBatch();
      await this.#store.stageOutbox(batch, id, from, this.#now(), { envelopes: null });
      await this.#store.commit(batch);
      queued++;
    }
    if (queued > 0) void this.flushOutbox();
  }

  /** Asks the sender of a message we could not decrypt to send it again (over a fresh session if need be). */
  async requestResend(conv: string, messageId: string): Promise<void> {
    const found = await this.#store.message(messageId);
    if (!found || found.message.mine || !found.message.failure) return;
    const peer = found.message.sender ?? conv;
    this.#requireOnline();
    await this.#queue.run(peer, async () => {
      const batch = new WriteBatch();
      await this.#sessions.forget(peer, batch); // the session may be what broke: the next message starts afresh
      await this.#store.commit(batch);
    });
    const payload: ControlPayload = { v: 1, type: 'resend', ids: [messageId] };
    await this.#sendPairwiseNow(peer, { kind: 'control', body: encoder.encode(JSON.stringify(payload)) });
    const updated: ChatMessage = { ...found.message, failure: 'Could not be decrypted. Asked the sender to resend.' };
    const batch = new WriteBatch();
    await this.#store.stageMessage(batch, updated, found.sort);
    await this.#store.commit(batch);
    this.#emitMessages(conv, [updated]);
  }

  // ── safety numbers and key changes ───────────────────────────────────────────────────────────────────────

  async safetyNumber(conv: string): Promise<SafetyNumberView> {
    const contact = await this.#sessions.contact(conv);
    const sn = this.#c.safetyNumber({
      localUserId: this.#options.me.userId,
      localIdentityKey: this.#keys.identity.publicKey,
      peerUserId: conv,
      peerIdentityKey: contact.identityKey,
    });
    return {
      digits: sn.digits,
      groups: [...sn.groups],
      qr: sn.qr,
      identityKey: contact.identityKey,
      username: contact.username,
    };
  }

  async markVerified(conv: string, identityKey: string): Promise<void> {
    this.#setTrust(await this.#sessions.markVerified(conv, identityKey));
  }

  async acceptIdentityChange(conv: string): Promise<void> {
    const contact = await this.#queue.run(conv, async () => {
      const batch = new WriteBatch();
      const next = await this.#sessions.acceptIdentityChange(conv, batch);
      await this.#store.commit(batch);
      return next;
    });
    if (contact) this.#setTrust(contact);
  }

  // ── groups ───────────────────────────────────────────────────────────────────────────────────────────────

  /** One queued group message: distribute our sender key to members who lack it, encrypt once, send, tick. */
  async #flushGroupRow(
    row: { id: string; conv: string; created: number },
    queuedBody: Uint8Array | undefined,
    group: GroupInfo,
  ): Promise<'next' | 'stop'> {
    if (group.left) {
      await this.#failOutgoing(row.id, row.conv, 'you are no longer a member of this group');
      return 'next';
    }
    let body = queuedBody;
    if (!body) {
      try {
        body = await this.#queue.run(`group:${row.conv}`, async () => {
          const members = group.members.map((m) => m.userId);
          const { key, sentTo } = await this.#distribute(row.conv, members);
          const chat = { v: 1, text: await this.#outgoingText(row.id), sentAt: row.created };
          const out = this.#c.encryptGroupMessage(key, {
            messageId: row.id,
            content: { kind: 'chat', body: encoder.encode(JSON.stringify(chat)) },
          });
          const batch = new WriteBatch();
          await this.#groups.stageOwn(batch, row.conv, out.senderKey, sentTo);
          await this.#store.stageOutbox(batch, row.id, row.conv, row.created, { envelopes: null, groupBody: out.body });
          await this.#store.commit(batch);
          return out.body;
        });
      } catch (e) {
        if (e instanceof ClientError && e.code === 'relay_unreachable') return 'stop';
        await this.#failOutgoing(row.id, row.conv, describeError(e));
        return 'next';
      }
    }
    this.#sentGroupBodies.push(body);
    let ack;
    try {
      ack = await this.#transport.send({ id: row.id, group: row.conv, body });
    } catch {
      return 'stop';
    }
    if (this.#options.dangerousTestOnlyDropSendAcks) return 'next';
    if (ack.ok) await this.#acknowledged(row.id, row.conv);
    else if (ack.error.code === 'rate_limited') return 'stop';
    else await this.#failOutgoing(row.id, row.conv, ack.error.message);
    return 'next';
  }

  /**
   * Our sender key for the group, after sending it (pairwise, stored sends) to every member who does not have it
   * yet. Runs inside the group's queue; each member is recorded as soon as the relay accepted their copy.
   */
  async #distribute(groupId: string, members: readonly string[]) {
    const own = await this.#groups.own(groupId);
    const sentTo = [...own.sentTo];
    // Our own other devices get it too (the relay fans group messages out to them as well).
    for (const peer of members) {
      if (sentTo.includes(peer)) continue;
      await this.#sendPairwiseNow(peer, { kind: 'sender_key', body: this.#c.senderKeyDistribution(own.key) });
      sentTo.push(peer);
      const batch = new WriteBatch();
      await this.#groups.stageOwn(batch, groupId, own.key, sentTo);
      await this.#store.commit(batch);
    }
    return { key: own.key, sentTo };
  }

  /** A stored pairwise send made and emitted now (group info, sender keys); throws when it did not go out. */
  async #sendPairwiseNow(peer: string, content: Content): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const id = newMessageId();
      const envelopes = await this.#queue.run(peer, async () => {
        const batch = new WriteBatch();
        const made = await this.#sessions.encrypt(peer, id, content, batch);
        await this.#store.commit(batch);
        return made;
      });
      if (envelopes.length === 0) return; // our own account with no other device
      const ack = await this.#transport.send({ id, envelopes });
      if (ack.ok) return;
      if (ack.error.code !== 'unknown_recipient' || attempt > 0)
        throw new ClientError('relay_error', ack.error.message);
      await this.#queue.run(peer, async () => {
        const batch = new WriteBatch();
        await this.#sessions.forget(peer, batch);
        await this.#store.commit(batch);
      });
    }
  }

  async #sendGroupControl(groupId: string, payload: ControlPayload): Promise<void> {
    const group = this.#convs.get(groupId)?.group;
    if (!group || group.left) return;
    await this.#queue.run(`group:${groupId}`, async () => {
      const own = await this.#distribute(
        groupId,
        group.members.map((m) => m.userId),
      );
      const id = newMessageId();
      const out = this.#c.encryptGroupMessage(own.key, {
        messageId: id,
        content: { kind: 'control', body: encoder.encode(JSON.stringify(payload)) },
      });
      const batch = new WriteBatch();
      await this.#groups.stageOwn(batch, groupId, out.senderKey, own.sentTo);
      await this.#store.commit(batch);
      await this.#transport.send({ id, group: groupId, body: out.body, ephemeral: true }).catch(() => undefined);
    });
  }

  #requireOnline(): void {
    if (!this.#transport.connected) {
      throw new ClientError('relay_unreachable', 'You are offline. Group changes need the relay; try again soon.');
    }
  }

  #group(conv: string): GroupInfo {
    const group = this.#convs.get(conv)?.group;
    if (!group || group.left) throw new ClientError('invalid_input', 'This is not a group you are in.');
    return group;
  }

  async #saveGroup(groupId: string, group: GroupInfo, lastText: string): Promise<void> {
    const existing = this.#convs.get(groupId);
    const next: ConvState = {
      conv: groupId,
      username: group.name,
      group,
      lastText,
      lastTs: this.#now(),
      unread: existing?.unread ?? 0,
      unreadIds: existing?.unreadIds ?? [],
    };
    const batch = new WriteBatch();
    await this.#stageConv(batch, next);
    await this.#store.commit(batch);
    this.#convs.set(groupId, next);
    this.#publishConvs();
  }

  /** Sends the group's name and member names, encrypted pairwise, to `to` (the relay only knows member ids). */
  async #announce(groupId: string, group: GroupInfo, to: readonly string[]): Promise<void> {
    const payload: GroupInfoPayload = { v: 1, t: 'group', groupId, name: group.name, members: group.members };
    const body = encoder.encode(JSON.stringify(payload));
    for (const peer of new Set([...to, this.#options.me.userId])) {
      await this.#sendPairwiseNow(peer, { kind: 'chat', body });
    }
  }

  #people(ids: readonly string[], known: readonly Person[]): Person[] {
    return ids.map((userId) => known.find((p) => p.userId === userId) ?? { userId, username: 'member' });
  }

  async createGroup(name: string, members: readonly Person[]): Promise<string> {
    const title = name.trim();
    if (title.length === 0 || title.length > 100) throw new ClientError('invalid_input', 'Give the group a name.');
    if (members.length < 2) throw new ClientError('invalid_input', 'A group needs at least two other people.');
    this.#requireOnline();
    const answer = await this.#api.call('POST', '/api/groups', groupAnswerSchema, {
      members: members.map((m) => m.userId),
    });
    const known = [{ userId: this.#options.me.userId, username: this.#options.me.username }, ...members];
    const group: GroupInfo = {
      name: title,
      members: this.#people(answer.members, known),
      admins: answer.admins,
      left: false,
    };
    await this.#saveGroup(answer.groupId, group, 'You created the group');
    await this.#announce(answer.groupId, group, answer.members);
    return answer.groupId;
  }

  async addGroupMembers(conv: string, people: readonly Person[]): Promise<void> {
    const group = this.#group(conv);
    this.#requireOnline();
    const answer = await this.#api.call('PUT', `/api/groups/${conv}/members`, groupAnswerSchema, {
      add: people.map((p) => p.userId),
    });
    const next: GroupInfo = {
      ...group,
      members: this.#people(answer.members, [...group.members, ...people]),
      admins: answer.admins,
    };
    await this.#saveGroup(conv, next, `You added ${people.map((p) => p.username).join(', ')}`);
    await this.#announce(conv, next, answer.members);
  }

  async removeGroupMember(conv: string, userId: string): Promise<void> {
    const group = this.#group(conv);
    this.#requireOnline();
    const answer = await this.#api.call('PUT', `/api/groups/${conv}/members`, groupAnswerSchema, { remove: [userId] });
    const next: GroupInfo = { ...group, members: this.#people(answer.members, group.members), admins: answer.admins };
    const removed = group.members.find((m) => m.userId === userId)?.username ?? 'a member';
    await this.#queue.run(`group:${conv}`, async () => {
      const batch = new WriteBatch();
      await this.#groups.rotate(batch, conv, [userId]);
      await this.#store.commit(batch);
    });
    await this.#saveGroup(conv, next, `You removed ${removed}`);
    await this.#announce(conv, next, [...answer.members, userId]);
  }

  async leaveGroup(conv: string): Promise<void> {
    const group = this.#group(conv);
    this.#requireOnline();
    await this.#api.call('PUT', `/api/groups/${conv}/members`, null, { remove: [this.#options.me.userId] });
    const me = this.#options.me.userId;
    const next: GroupInfo = { ...group, members: group.members.filter((m) => m.userId !== me), left: true };
    await this.#queue.run(`group:${conv}`, async () => {
      const batch = new WriteBatch();
      await this.#groups.forget(batch, conv);
      await this.#store.commit(batch);
    });
    await this.#saveGroup(conv, next, 'You left the group');
    await this.#announce(
      conv,
      next,
      next.members.map((m) => m.userId),
    );
  }

  /**
   * Group info from `from`. Membership comes from the relay (GET /api/groups: it knows the ids anyway), so a member
   * cannot add or remove anyone by message; the name is taken from an admin only. Someone gone → we rotate.
   */
  async #onGroupInfo(from: string, info: GroupInfoPayload): Promise<void> {
    const { groups } = await this.#api.call('GET', '/api/groups', groupListSchema);
    const current = groups.find((g) => g.groupId === info.groupId);
    const existing = this.#convs.get(info.groupId)?.group;
    await this.#queue.run(`group:${info.groupId}`, async () => {
      if (!current) {
        if (!existing || existing.left) return;
        const batch = new WriteBatch();
        await this.#groups.forget(batch, info.groupId);
        await this.#store.commit(batch);
        await this.#saveGroup(info.groupId, { ...existing, left: true }, 'You are no longer in this group');
        return;
      }
      const fromAdmin = current.admins.includes(from);
      if (!existing && !fromAdmin) return;
      const known = [...info.members, ...(existing?.members ?? [])];
      const next: GroupInfo = {
        name: fromAdmin ? info.name : (existing?.name ?? info.name),
        members: this.#people(current.members, known),
        admins: current.admins,
        left: false,
      };
      const removed = (existing?.members ?? []).map((m) => m.userId).filter((id) => !current.members.includes(id));
      if (removed.length > 0) {
        const batch = new WriteBatch();
        await this.#groups.rotate(batch, info.groupId, removed);
        await this.#store.commit(batch);
      }
      const sender = known.find((p) => p.userId === from)?.username ?? 'Someone';
      await this.#saveGroup(info.groupId, next, existing ? `${sender} updated the group` : `${sender} added you`);
    });
  }

  /** One group mailbox entry: find the sender's record by distribution id, verify and decrypt, store. */
  async #receiveGroup(groupId: string, entry: InboundEntry): Promise<{ conv: string; id: string } | null> {
    const batch = new WriteBatch();
    this.#store.stageSeen(batch, entry.id, this.#now());
    const conv = this.#convs.get(groupId);
    let message;
    try {
      const record = await this.#groups.record(groupId, this.#c.readGroupMessageDistributionId(entry.body));
      if (!record) throw new ClientError('decrypt_failed', 'no sender key from this member');
      if (!conv?.group?.members.some((m) => m.userId === record.senderUserId)) {
        throw new ClientError('decrypt_failed', 'the sender is not a member of this group');
      }
      const out = this.#c.decryptGroupMessage(record, { groupId, body: entry.body });
      await this.#groups.stageRecord(batch, out.record);
      message = out.message;
    } catch (e) {
      if (e instanceof ClientError && e.code === 'relay_unreachable') throw e;
      const dup = e instanceof Error && 'code' in e && e.code === 'duplicate_message';
      if (!dup && entry.seq !== 0 && conv) {
        await this.#storeIncoming(batch, groupId, conv.username, {
          id: entry.id,
          conv: groupId,
          mine: false,
          text: '',
          ts: entry.ts,
          status: 'delivered',
          failure: `This message could not be decrypted (${describeError(e)}).`,
        });
        this.#notice('error', `A message in ${conv.username} could not be decrypted.`);
        return null;
      }
      await this.#store.commit(batch);
      return null;
    }
    const from = message.senderUserId;
    const senderName = conv.group?.members.find((m) => m.userId === from)?.username ?? 'member';
    const { content } = message;
    if (content.kind === 'chat') {
      const parsed = chatPayloadSchema.safeParse(parseJson(content.body));
      await this.#storeIncoming(batch, groupId, conv.username, {
        id: entry.id,
        conv: groupId,
        mine: false,
        text: parsed.success ? parsed.data.text : '',
        ts: entry.ts,
        status: 'delivered',
        sender: from,
        senderName,
        ...(parsed.success ? {} : { failure: 'This message has an unsupported format.' }),
      });
      if (this.#snapshot.typingUntil[groupId]) {
        const { [groupId]: _gone, ...rest } = this.#snapshot.typingUntil;
        this.#set({ typingUntil: rest });
      }
      return { conv: groupId, id: entry.id };
    }
    const parsed = content.kind === 'control' ? controlPayloadSchema.safeParse(parseJson(content.body)) : null;
    if (parsed?.success && parsed.data.type === 'typing') {
      await this.#store.commit(batch);
      this.#set({
        typingUntil: { ...this.#snapshot.typingUntil, [groupId]: this.#now() + TYPING_SHOW_MS },
        typingName: { ...this.#snapshot.typingName, [groupId]: senderName },
      });
    } else if (parsed?.success && parsed.data.type === 'receipt' && from !== this.#options.me.userId) {
      await this.#applyReceipt(batch, groupId, parsed.data.status, parsed.data.ids);
    } else {
      await this.#store.commit(batch);
    }
    return null;
  }

  // ── connection, presence, settings, maintenance ─────────────────────────────────────────────────────────

  #onConnected(): void {
    this.#watchPresence();
    void this.flushOutbox();
    void this.#maintain();
    void this.#api
      .call('GET', '/api/settings', settingsSchema)
      .then((s) => this.#set({ sharePresence: s.sharePresence }))
      .catch(() => undefined); // an optional extension of the protocol; the local choice stays
  }

  #watchPresence(): void {
    this.#transport.watch([...this.#convs.values()].filter((c) => !c.group).map((c) => c.conv));
  }

  #onPresence(update: unknown): void {
    const parsed = presenceEventSchema.safeParse(update);
    if (!parsed.success) return;
    const { userId, online, lastSeen } = parsed.data;
    this.#set({ presence: { ...this.#snapshot.presence, [userId]: { online, lastSeen } } });
  }

  async setSharePresence(on: boolean): Promise<void> {
    await this.#api.call('PUT', '/api/settings', null, { sharePresence: on });
    await this.#store.write('secrets', 'settings', { sharePresence: on });
    this.#set({ sharePresence: on });
  }

  /** Refills one-time prekeys below 20 and rotates the signed prekey weekly; prunes old dedupe ids. */
  async #maintain(): Promise<void> {
    try {
      const count = await this.#api.call('GET', '/api/devices/self/prekeys', prekeyCountSchema);
      const oneTimePrekeys = await this.#keys.refill(count.oneTimePrekeys);
      const signedPrekey = await this.#keys.signedPrekeyToUpload(this.#now(), count.signedPrekeyId ?? null);
      if (oneTimePrekeys || signedPrekey) {
        await this.#api.call('PUT', '/api/devices/self/prekeys', null, {
          ...(oneTimePrekeys ? { oneTimePrekeys } : {}),
          ...(signedPrekey ? { signedPrekey } : {}),
        });
      }
      await this.#store.pruneSeen(this.#now());
    } catch (e) {
      if (!(e instanceof ClientError && e.code === 'relay_unreachable')) console.warn('key maintenance failed', e);
    }
  }

  /** Disconnects and stops timers; local data stays. Releases the one-writer lock (as closing the tab does). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#transport.stop();
    this.#store.db.close();
    this.#options.onClosed();
  }

  /**
   * Revokes this device's relay session (its refresh family and access tokens: DELETE /api/sessions/current, with
   * one token refresh if the access token expired), then wipes the local database unless `keepLocalData`.
   * Offline, the relay call fails and the device is still cleared; the refresh token is gone with it.
   */
  async signOut(keepLocalData: boolean): Promise<void> {
    await this.#api.call('DELETE', '/api/sessions/current', null).catch((e: unknown) => {
      console.warn('the relay session was not revoked', e);
    });
    this.#transport.stop();
    await this.#inbound.catch(() => undefined);
    if (keepLocalData) {
      // The revoked refresh token stays (harmless): unlocking signs in afresh, and offline the history still opens.
      await this.#store.db.delete('devicekeys', 'unlock-key');
    } else {
      await wipeEngineDB(this.#store.db);
    }
    this.close();
  }

  // ── test hooks ───────────────────────────────────────────────────────────────────────────────────────────

  /** Test-only: drop the socket (as a network loss would) or bring it back. */
  dangerousTestOnlySetOnline(online: boolean): void {
    assertTest();
    if (online) this.#transport.start();
    else this.#transport.stop();
  }

  /** Test-only: how many redelivered entries were dropped because their id was already handled. */
  dangerousTestOnlyDuplicatesDropped(): number {
    assertTest();
    return this.#duplicatesDropped;
  }

  /** Test-only: run the key check now (it runs on every connect and hourly). */
  dangerousTestOnlyMaintain(): Promise<void> {
    assertTest();
    return this.#maintain();
  }

  /** Test-only: what the relay holds for this device (one-time prekey count, signed prekey id). */
  dangerousTestOnlyPrekeyStatus(): Promise<{ oneTimePrekeys: number; signedPrekeyId?: number | null | undefined }> {
    assertTest();
    return this.#api.call('GET', '/api/devices/self/prekeys', prekeyCountSchema);
  }

  /** Test-only: the token keeper's refresh token and a way to spoil the access token. */
  dangerousTestOnlyTokens() {
    assertTest();
    return { access: this.#api.tokens.current, ...this.#api.tokens.dangerousTestOnlyPeek() };
  }

  /** Test-only: lose every session with a user (as a damaged or restored profile would). */
  async dangerousTestOnlyForgetSessions(userId: string): Promise<void> {
    assertTest();
    const batch = new WriteBatch();
    await this.#sessions.forget(userId, batch);
    await this.#store.commit(batch);
  }

  /** Test-only: every group ciphertext this engine sent, oldest first. */
  dangerousTestOnlySentGroupBodies(): readonly Uint8Array[] {
    assertTest();
    return this.#sentGroupBodies;
  }

  /** Test-only: try to decrypt a group body with the sender-key records this device holds (nothing is stored). */
  async dangerousTestOnlyOpenGroupBody(groupId: string, body: Uint8Array): Promise<string> {
    assertTest();
    const record = await this.#groups.record(groupId, this.#c.readGroupMessageDistributionId(body));
    if (!record) throw new ClientError('decrypt_failed', 'no sender key for this message');
    return decoder.decode(this.#c.decryptGroupMessage(record, { groupId, body }).message.content.body);
  }

  /** Test-only: how many messages wait in the outbox. */
  async dangerousTestOnlyOutboxSize(): Promise<number> {
    assertTest();
    return this.#store.db.count('outbox');
  }
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return null;
  }
}

function assertTest(): void {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (!env || (env.VITEST === undefined && env.NODE_ENV !== 'test')) throw new Error('test hooks are disabled');
}
