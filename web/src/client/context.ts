// EngineContext: what every part of the chat engine shares — its dependencies (crypto, store, relay API, keys,
// sessions, transport, the per-peer queue), the in-memory conversations and the snapshot the UI reads. The parts
// (outbound, inbound, receipts, group membership and messaging, trust) each hold one concern and reach the others
// through `parts`, wired once by the ChatClient facade.

import { z } from 'zod';
import { lastTextOf, type Actions } from './actions';
import type { RelayApi } from './api';
import type { Crypto } from './crypto-loader';
import type { Disappearing } from './disappearing';
import { GroupKeys } from './groups';
import type { GroupMembership } from './group-membership';
import type { GroupMessaging } from './group-messaging';
import type { Inbound } from './inbound';
import type { Outbound } from './outbound';
import type { Profiles } from './profiles';
import type { OwnKeys } from './own-keys';
import { DEFAULT_PREFERENCES, type PreferenceStore } from './preferences';
import type { Receipts } from './receipts';
import { conversationSummarySchema, type Contact } from './schemas';
import { KeyedSerialQueue } from './serial-queue';
import { describeError } from './errors';
import type { Sessions } from './sessions';
import { WriteBatch, type LocalStore, type StagedUpdate } from './store';
import type { Transport } from './transport';
import type { Trust } from './trust';
import type {
  ChatMessage,
  ContactTrust,
  Conversation,
  EngineSnapshot,
  Me,
  MessageListener,
  MessageStatus,
  Notice,
} from './types';

export const RANK: Record<MessageStatus, number> = { pending: 0, sent: 1, delivered: 2, read: 3 };
export const TYPING_SHOW_MS = 6_000;
export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

/** A conversation as the engine keeps it: the summary plus the ids still unread (for read receipts). */
export interface ConvState extends Conversation {
  unreadIds: string[];
  /** The sort key of the last message that arrived from the relay (see arrivalTs); kept across app sessions. */
  lastArrival?: number;
  /** Disappearing messages: the conversation's timer in seconds (absent: off). */
  expireSeconds?: number;
  /**
   * The id of the message (or notice) the last line shows; absent when it shows none, and in states stored before it
   * was kept. An edit, a delete or the disappearing sweep changes the line only when it comes from their message
   * (without an id: the sweep always, the others when nothing came after the message).
   */
  lastId?: string;
}

export const convRecordSchema = conversationSummarySchema.extend({
  unreadIds: z.array(z.string()).max(1000),
  lastArrival: z.number().optional(),
  expireSeconds: z.number().int().positive().optional(),
  lastId: z.string().optional(),
});

export interface EngineDeps {
  crypto: Crypto;
  store: LocalStore;
  api: RelayApi;
  me: Me;
  keys: OwnKeys;
  now: () => number;
  /** Test-only: ignore relay acks for sends (simulates an ack lost on the way back). */
  dangerousTestOnlyDropSendAcks?: boolean;
  /** Test-only: store inbound messages but never ack them (simulates a crash before the ack). */
  dangerousTestOnlySkipInboundAcks?: boolean;
}

/** The engine's parts, each named after what it holds. */
export interface EngineParts {
  outbound: Outbound;
  inbound: Inbound;
  receipts: Receipts;
  membership: GroupMembership;
  groupMessages: GroupMessaging;
  trust: Trust;
  profiles: Profiles;
  actions: Actions;
  disappearing: Disappearing;
  preferences: PreferenceStore;
}

export class EngineContext {
  /**
   * Key transparency gossip (issue #16): the checkpoint outgoing chat payloads carry, and where a peer's goes. Set by
   * the composition root; null in engines built without it.
   */
  ktGossip: { outgoing(): Promise<string | null>; received(from: string, note: string): void } | null = null;
  /**
   * Key transparency with a required witness (issue #16): whether the user's latest log entry is cosigned yet (a
   * probe; see KeyTransparency.witnessed). Set by the composition root; null: always.
   */
  ktWitnessed: ((userId: string) => Promise<boolean>) | null = null;
  readonly c: Crypto;
  readonly store: LocalStore;
  readonly api: RelayApi;
  readonly keys: OwnKeys;
  readonly me: Me;
  readonly now: () => number;
  readonly deps: EngineDeps;
  readonly queue = new KeyedSerialQueue();
  readonly groupKeys: GroupKeys;
  readonly convs = new Map<string, ConvState>();
  /** The users this account blocks (BlockList keeps it): nothing from them is opened, nothing ephemeral goes to them. */
  readonly blocked = new Set<string>();
  #snapshot: EngineSnapshot;
  #noticeId = 0;
  /** Per conversation, the sort key of the last message that arrived from the relay in this app session. */
  readonly #lastArrivalSort = new Map<string, number>();
  /** The last stamp() handed out, and the outbox's newest row it starts after (read once). */
  #lastStamp = 0;
  #stampFloor: Promise<number> | null = null;
  readonly #listeners = new Set<() => void>();
  readonly #messageListeners = new Set<MessageListener>();
  #sessions: Sessions | null = null;
  #transport: Transport | null = null;
  #parts: EngineParts | null = null;
  closed = false;

  constructor(deps: EngineDeps) {
    this.deps = deps;
    this.c = deps.crypto;
    this.store = deps.store;
    this.api = deps.api;
    this.keys = deps.keys;
    this.me = deps.me;
    this.now = deps.now;
    this.groupKeys = new GroupKeys(this.c, this.store, deps.me);
    this.#snapshot = {
      me: deps.me,
      connection: 'connecting',
      conversations: [],
      presence: {},
      typingUntil: {},
      typingName: {},
      trust: {},
      sharePresence: true,
      notices: [],
      profiles: {},
      blocked: [],
      sessionEnded: false,
      preferences: DEFAULT_PREFERENCES,
    };
  }

  /** Called once by the facade after every part exists (they refer to each other). */
  wire(sessions: Sessions, transport: Transport, parts: EngineParts): void {
    this.#sessions = sessions;
    this.#transport = transport;
    this.#parts = parts;
  }

  get sessions(): Sessions {
    if (!this.#sessions) throw new Error('EngineContext used before wire()');
    return this.#sessions;
  }

  get transport(): Transport {
    if (!this.#transport) throw new Error('EngineContext used before wire()');
    return this.#transport;
  }

  get parts(): EngineParts {
    if (!this.#parts) throw new Error('EngineContext used before wire()');
    return this.#parts;
  }

  // ── snapshot ─────────────────────────────────────────────────────────────────────────────────────────────

  get snapshot(): EngineSnapshot {
    return this.#snapshot;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onMessages(listener: MessageListener): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  set(patch: Partial<EngineSnapshot>, publish = true): void {
    this.#snapshot = { ...this.#snapshot, ...patch };
    if (publish) for (const l of this.#listeners) l();
  }

  emitMessages(conv: string, messages: ChatMessage[]): void {
    if (messages.length === 0) return;
    for (const l of this.#messageListeners) l(conv, messages);
  }

  setTrust(contact: Contact, publish = true): void {
    const trust: ContactTrust = {
      verified: contact.verified,
      keyChanged: contact.keyChanged ?? false,
      blocked: contact.pendingIdentityKey !== undefined,
      ...(contact.deleted ? { deleted: true } : {}),
      ...(contact.transparencyAlarm ? { transparency: contact.transparencyAlarm } : {}),
    };
    this.set({ trust: { ...this.#snapshot.trust, [contact.userId]: trust } }, publish);
  }

  notice(kind: Notice['kind'], text: string): void {
    const notices = [...this.#snapshot.notices, { id: ++this.#noticeId, kind, text }].slice(-5);
    this.set({ notices });
  }

  clearTyping(conv: string): void {
    if (!this.#snapshot.typingUntil[conv]) return;
    const { [conv]: _gone, ...rest } = this.#snapshot.typingUntil;
    this.set({ typingUntil: rest });
  }

  // ── conversations ────────────────────────────────────────────────────────────────────────────────────────

  sortedConvs(): Conversation[] {
    return [...this.convs.values()]
      .sort((a, b) => b.lastTs - a.lastTs)
      .map(({ unreadIds: _unreadIds, lastArrival: _lastArrival, lastId: _lastId, ...c }) => c);
  }

  /**
   * Stages the conversation's state; with `onlyWith`, only if that message update finds its row at commit.
   *
   * The state in memory (`convs`) is the newest; each writer derives its state from it, then seals and commits, and
   * writers interleave. One that derived its state before another's commit (a read mark while the disappearing
   * sweep runs) would leave its older state on disk: after a reload the list would show a vanished message's text
   * as the last line again. So once a commit that wrote a conversation is done, and its writer has updated memory
   * (it does so at once after the commit, or before staging), memory is written again if it holds another state.
   */
  async stageConv(batch: WriteBatch, c: ConvState, onlyWith?: StagedUpdate): Promise<void> {
    const { conv, ...rest } = c;
    const sealed = await this.store.vault.seal(`conversations/${conv}`, rest);
    let written = false;
    batch.add('conversations', async (tx) => {
      if (onlyWith && !(await onlyWith.found)) return;
      written = true;
      await tx.objectStore('conversations').put({ conv, sealed });
    });
    // A timer, not a microtask: the writer's own continuation after commit() (which updates memory) runs first.
    batch.afterCommit(() => {
      if (written) setTimeout(() => this.#rewriteIfNewer(conv, c), 0);
    });
  }

  /**
   * Changes one conversation's state: stages `change` applied to memory's state now (to `start`, the state of a
   * conversation that memory does not hold yet; with `onlyWith`, only if that message update finds its row), and
   * returns `settle`, to call once the batch has committed. A writer derives its state, then seals and commits;
   * another writer may set memory in between (a timer that arrives while we send, a read mark while a message is
   * stored). Setting the state derived before would drop that change in memory, and then on disk too: a disappearing
   * timer set while a message was sent came back off. So `settle` applies `change` to memory's newest state when it
   * is not the one derived from; stageConv's rewrite then puts that on disk.
   */
  async stageConvChange(
    batch: WriteBatch,
    start: ConvState,
    change: (c: ConvState) => ConvState,
    onlyWith?: StagedUpdate,
  ): Promise<{ next: ConvState; settle: () => ConvState }> {
    const base = this.convs.get(start.conv);
    const next = change(base ?? start);
    await this.stageConv(batch, next, onlyWith);
    return {
      next,
      settle: () => {
        const newest = this.convs.get(start.conv);
        const settled = newest === base ? next : change(newest ?? start);
        this.convs.set(start.conv, settled);
        return settled;
      },
    };
  }

  #rewriteIfNewer(conv: string, written: ConvState): void {
    const newest = this.convs.get(conv);
    if (this.closed || newest === undefined || newest === written) return;
    const batch = new WriteBatch();
    this.stageConv(batch, newest)
      .then(() => this.store.commit(batch))
      .catch((e: unknown) => {
        if (!this.closed) console.warn('conversation state not written again:', describeError(e));
      });
  }

  publishConvs(): void {
    this.set({ conversations: this.sortedConvs() });
  }

  /** Asks the relay for the presence of every one-to-one peer we have a conversation with. */
  watchPresence(): void {
    this.transport.watch([...this.convs.values()].filter((c) => !c.group).map((c) => c.conv));
  }

  /**
   * The timestamp (and history sort key) of a message that arrived from the relay: its relay timestamp, except
   * that the messages the relay commits in one batch share a timestamp and arrive in the relay's (seq) order, so
   * each one after the first of the same millisecond in a conversation gets 1/1024 ms more than the one before.
   * History and the UI sort by it; without this they broke the tie by the random message id. The last key is also
   * stored with the conversation, so the order holds across a reload between two such messages.
   */
  arrivalTs(conv: string, ts: number): number {
    const last = this.#lastArrivalSort.get(conv) ?? this.convs.get(conv)?.lastArrival;
    const sort = last !== undefined && ts <= last && ts > last - 1 ? last + 1 / 1024 : ts;
    this.#lastArrivalSort.set(conv, sort);
    return sort;
  }

  /**
   * The local time for something we create and queue (a message, a control): now, or just after the last stamp
   * when the clock has not moved on (or went back), so every stamp is distinct and increasing. The outbox sends in
   * `created` order and history sorts by ts; with ties, both fell back to the random id, and a burst of messages
   * went out, and showed, out of order. Starts after the newest row already in the outbox (a reload, or the clock
   * set back).
   */
  async stamp(): Promise<number> {
    const floor = await (this.#stampFloor ??= this.store.newestOutboxCreated());
    const last = Math.max(this.#lastStamp, floor);
    const now = this.now();
    this.#lastStamp = now > last ? now : last + 1 / 1024;
    return this.#lastStamp;
  }

  /** Stores a message from someone else (or one that failed to decrypt) and counts it as unread; commits. */
  async storeIncoming(batch: WriteBatch, conv: string, username: string, arrived: ChatMessage): Promise<void> {
    const ts = this.arrivalTs(conv, arrived.ts);
    // Actions that arrived before this message (an edit, a reaction) apply now.
    const pending = await this.parts.actions.applyPending(batch, { ...arrived, ts });
    // A disappearing message from someone else expires counted from when it arrived on this device.
    const message = await this.parts.disappearing.stage(batch, pending, this.now());
    const existing = this.convs.get(conv);
    await this.store.stageMessage(batch, message, message.ts);
    const start: ConvState = { conv, username, lastText: '', lastTs: 0, unread: 0, unreadIds: [] };
    const { settle } = await this.stageConvChange(batch, start, (c) => ({
      ...c,
      username,
      lastText: lastTextOf(message),
      lastId: message.id,
      lastTs: Math.max(c.lastTs, message.ts),
      unread: c.unread + 1,
      unreadIds: [...c.unreadIds, message.id].slice(-1000),
      lastArrival: message.ts,
    }));
    await this.store.commit(batch);
    settle();
    this.publishConvs();
    this.emitMessages(conv, [message]);
    if (!message.failure) this.parts.preferences.arrived(conv, message);
    if (!existing) this.watchPresence();
  }
}

/** Parses decrypted JSON; anything that is not JSON becomes null (and then fails its schema). */
export function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return null;
  }
}

/** Test hooks throw outside Vitest / NODE_ENV=test. */
export function assertTest(): void {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (!env || (env.VITEST === undefined && env.NODE_ENV !== 'test')) throw new Error('test hooks are disabled');
}

/** True for a crypto or client error with this code. */
export function hasCode(e: unknown, code: string): boolean {
  return e instanceof Error && 'code' in e && e.code === code;
}
