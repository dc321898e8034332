// ChatClient: the chat engine facade the UI talks to. Wires the parts (outbound, inbound, receipts, group
// membership and messaging, trust) around one shared EngineContext; owns connection, presence, settings, key
// maintenance and sign-out. It never renders. See web/README.md for the data path.

import type { AccountControl, PasswordProgress } from './account';
import type { RelayApi } from './api';
import { BlockList, readStoredBlocks } from './blocks';
import { EngineContext, assertTest, convRecordSchema, decoder, encoder, type ConvState } from './context';
import type { Crypto } from './crypto-loader';
import { wipeEngineDB } from './db';
import { Actions } from './actions';
import { Attachments } from './attachments';
import { newMessageId } from './bytes';
import { Devices } from './devices';
import { Disappearing } from './disappearing';
import { checkRelease, checkReleaseBytes } from './release-log';
import { KeyTransparency, type TransparencyOptions } from './transparency';
import { ClientError, describeError } from './errors';
import { GroupMembership } from './group-membership';
import { GroupMessaging } from './group-messaging';
import { Inbound } from './inbound';
import { Outbound } from './outbound';
import { Profiles } from './profiles';
import { PreferenceStore, type Preferences } from './preferences';
import type { OwnKeys } from './own-keys';
import { Receipts } from './receipts';
import {
  bundleAnswerSchema,
  prekeyCountAnswerSchema,
  presenceUpdateSchema,
  userSearchAnswerSchema,
  type PrekeyCountAnswer,
} from '@weconnect/relay/protocol';
import { type ActionPayload, type Contact, type ControlPayload, settingsSchema } from './schemas';
import { DEVICE_CHECK_MS, Sessions } from './sessions';
import { WriteBatch, type LocalStore } from './store';
import { Transport } from './transport';
import { Trust } from './trust';
import type {
  ChatEngineApi,
  ChatMessage,
  EngineSnapshot,
  HistoryPage,
  Me,
  MessageListener,
  Person,
  SafetyNumberView,
  SendExtra,
  KeyTransparencyStatus,
  ReleaseLogCheck,
} from './types';

const MAINTENANCE_EVERY_MS = 60 * 60_000;
/** The engine queue's key for reading and changing the relay's presence-sharing setting. */
const PRESENCE_SETTING = 'settings:presence';

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
  /**
   * The password's wrap key, after an unlock or sign-in that may need it for the key backup (learn a re-keyed backup
   * key, migrate a format-1 backup). The engine owns it from here: its first backup sync wipes it.
   */
  backupWrapKey?: Uint8Array | null;
  /** Password change and account deletion (made by the boot, which knows the password's derivation). */
  account?: AccountControl;
  /** Called once after sign-out or when the session ended (release the tab lock, go back to the first screen). */
  onClosed: () => void;
  /** Key transparency (issue #16): a configured relay key instead of trust on first use; required witnesses. */
  transparency?: TransparencyOptions;
  /** Test-only: ignore relay acks for sends (simulates an ack lost on the way back). */
  dangerousTestOnlyDropSendAcks?: boolean;
  /** Test-only: store inbound messages but never ack them (simulates a crash before the ack). */
  dangerousTestOnlySkipInboundAcks?: boolean;
}

export class ChatClient implements ChatEngineApi {
  readonly #ctx: EngineContext;
  readonly #options: ChatClientOptions;
  readonly #outbound: Outbound;
  readonly #actions: Actions;
  readonly #inbound: Inbound;
  readonly #receipts: Receipts;
  readonly #membership: GroupMembership;
  readonly #groupMessages: GroupMessaging;
  readonly #trust: Trust;
  readonly #profiles: Profiles;
  readonly #transport: Transport;
  readonly #sessions: Sessions;
  /** This account's devices, and new devices of ours and of contacts (issue #14). */
  readonly devices: Devices;
  /** Attachments (issue #15): seal and upload a file, download and open one. */
  readonly attachments: Attachments;
  readonly #blocks: BlockList;
  readonly #disappearing: Disappearing;
  readonly #preferences: PreferenceStore;
  /** Checks bundles and our own account against the relay's key transparency log (issue #16). */
  readonly transparency: KeyTransparency;
  #timer: ReturnType<typeof setInterval> | null = null;
  #releaseChecked = false;

  private constructor(options: ChatClientOptions) {
    if (options.dangerousTestOnlyDropSendAcks || options.dangerousTestOnlySkipInboundAcks) assertTest();
    this.#options = options;
    const now = options.now ?? Date.now;
    const ctx = new EngineContext({
      crypto: options.crypto,
      store: options.store,
      api: options.api,
      me: options.me,
      keys: options.keys,
      now,
      dangerousTestOnlyDropSendAcks: options.dangerousTestOnlyDropSendAcks,
      dangerousTestOnlySkipInboundAcks: options.dangerousTestOnlySkipInboundAcks,
    });
    this.#ctx = ctx;
    this.transparency = new KeyTransparency({
      crypto: options.crypto,
      api: options.api,
      store: options.store,
      me: options.me,
      ownIdentityKey: options.crypto.identityKeyToWire(options.keys.identity),
      ...(options.transparency ? { options: options.transparency } : {}),
      events: {
        contactFailed: async (bundle, reason) => {
          const known = await options.store.contact(bundle.userId);
          const contact: Contact = known
            ? { ...known, transparencyAlarm: reason }
            : {
                userId: bundle.userId,
                username: bundle.username,
                identityKey: bundle.identityKey,
                verified: false,
                transparencyAlarm: reason,
              };
          await options.store.write('contacts', bundle.userId, contact);
          ctx.setTrust(contact);
        },
        alarm: (text) => ctx.notice('error', text),
        contactPassed: async (userId) => {
          const known = await options.store.contact(userId);
          if (!known?.transparencyAlarm) return;
          const { transparencyAlarm: _cleared, ...contact } = known;
          await options.store.write('contacts', userId, contact);
          ctx.setTrust(contact);
        },
      },
    });
    ctx.ktGossip = {
      outgoing: () => this.transparency.latestCheckpoint(),
      received: (from, note) => void this.transparency.compareGossip(from, note),
    };
    ctx.ktWitnessed = (userId) => this.transparency.witnessed(userId);
    this.#sessions = new Sessions(
      options.crypto,
      options.store,
      options.keys,
      options.api,
      options.me,
      {
        // The conversation's banner says it (and offers the safety number); no floating notice on top of it.
        identityChanged: (contact) => ctx.setTrust(contact),
        accountDeleted: (contact) => ctx.setTrust(contact),
        deviceAdded: (userId, deviceId) => {
          this.#groupMessages.deviceAdded(userId, deviceId);
          this.#profiles.deviceAdded(userId, deviceId);
          void this.devices.contactDeviceSeen(userId, deviceId).catch(() => undefined);
        },
        devicesListed: (contact, deviceIds) =>
          this.devices.contactDevicesListed(contact, deviceIds).catch(() => undefined),
        bundleReceived: (bundle) => this.transparency.verifyBundle(bundle),
      },
      { now, deviceCheckMs: options.deviceCheckMs ?? DEVICE_CHECK_MS },
    );
    this.#outbound = new Outbound(ctx);
    this.#actions = new Actions(ctx);
    this.attachments = new Attachments({ crypto: options.crypto, api: options.api });
    this.#inbound = new Inbound(ctx);
    this.#receipts = new Receipts(ctx);
    this.#membership = new GroupMembership(ctx);
    this.#groupMessages = new GroupMessaging(ctx);
    this.#trust = new Trust(ctx, options.backupWrapKey ?? null);
    this.#profiles = new Profiles(ctx);
    this.#disappearing = new Disappearing(ctx);
    this.#preferences = new PreferenceStore(ctx);
    this.devices = new Devices({
      crypto: options.crypto,
      store: options.store,
      api: options.api,
      me: options.me,
      now,
      notice: (text) => ctx.notice('info', text),
      logNotice: (conv, text) => this.#logNotice(conv, text),
      // Only compares the device list: a changed identity key is left to the send path and its banner, as before.
      fetchDeviceList: async (userId) => {
        const bundle = await options.api.call(
          'GET',
          `/api/users/${encodeURIComponent(userId)}/bundle?devices=`,
          bundleAnswerSchema,
        );
        const contact = await options.store.contact(userId);
        if (bundle.userId !== userId || !contact || contact.restored) return;
        await this.transparency.verifyBundle(bundle);
        if (contact.identityKey !== bundle.identityKey || contact.pendingIdentityKey !== undefined) return;
        await this.devices.contactDevicesListed(
          contact,
          bundle.devices.map((d) => d.deviceId),
        );
      },
      removed: () => void this.#deviceRemoved(),
    });
    options.api.onDeviceRemoved = () => void this.#deviceRemoved();
    this.#blocks = new BlockList(
      options.api,
      options.store,
      { blocked: ctx.blocked, publish: (people) => ctx.set({ blocked: people }) },
      ctx.queue,
    );
    this.#transport = new Transport(options.relayUrl, options.api.tokens, {
      state: (connection) => ctx.set({ connection }),
      messages: (batch, ack) => this.#inbound.onMessages(batch, ack),
      presence: (update) => this.#onPresence(update),
      connected: () => this.#onConnected(),
      sessionEnded: () => {
        void this.devices.probeRemoved(options.api.tokens.current).then((removed) => {
          // The UI offers "Sign in again": signOut(true) and an unlock on the same device, which keeps everything.
          if (!removed) ctx.set({ sessionEnded: true });
        });
      },
      deviceRemoved: () => void this.#deviceRemoved(),
      devicesChanged: () => {
        void this.devices.check();
        this.#checkOwnLog();
      },
      // A removed device that missed `device:removed` learns it from its next request (`device_removed`).
      serverDisconnected: () => void this.devices.list().catch(() => undefined),
    });
    ctx.wire(this.#sessions, this.#transport, {
      outbound: this.#outbound,
      inbound: this.#inbound,
      receipts: this.#receipts,
      membership: this.#membership,
      groupMessages: this.#groupMessages,
      trust: this.#trust,
      profiles: this.#profiles,
      actions: this.#actions,
      disappearing: this.#disappearing,
      preferences: this.#preferences,
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
    const ctx = this.#ctx;
    await this.#sessions.migrateLegacy();
    for (const row of await ctx.store.db.getAll('conversations')) {
      const s = await ctx.store.vault.open(`conversations/${row.conv}`, row.sealed, convRecordSchema);
      ctx.convs.set(row.conv, { conv: row.conv, ...s });
    }
    for (const key of await ctx.store.keys('contacts', '')) {
      const contact = await ctx.store.contact(key);
      if (contact) ctx.setTrust(contact, false);
    }
    await this.#profiles.load();
    await this.#blocks.load();
    await this.#preferences.load();
    await this.#disappearing.sweep();
    const settings = await ctx.store.read('secrets', 'settings', settingsSchema);
    ctx.set({ conversations: ctx.sortedConvs(), sharePresence: settings?.sharePresence ?? true });
  }

  // ── snapshot ─────────────────────────────────────────────────────────────────────────────────────────────

  subscribe(listener: () => void): () => void {
    return this.#ctx.subscribe(listener);
  }

  getSnapshot(): EngineSnapshot {
    return this.#ctx.snapshot;
  }

  onMessages(listener: MessageListener): () => void {
    return this.#ctx.onMessages(listener);
  }

  dismissNotice(id: number): void {
    this.#ctx.set({ notices: this.#ctx.snapshot.notices.filter((n) => n.id !== id) });
  }

  // ── people, conversations, messages ──────────────────────────────────────────────────────────────────────

  async searchPeople(query: string): Promise<Person[]> {
    const q = query.trim();
    if (!/^[A-Za-z0-9_]{1,32}$/.test(q)) return [];
    const answer = await this.#ctx.api.call('GET', `/api/users?query=${encodeURIComponent(q)}`, userSearchAnswerSchema);
    return answer.users;
  }

  async openConversation(person: Person): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.convs.has(person.userId)) return;
    const c = {
      conv: person.userId,
      username: person.username,
      lastText: '',
      lastTs: ctx.now(),
      unread: 0,
      unreadIds: [],
    };
    const batch = new WriteBatch();
    // A message from that person stored meanwhile has started the conversation already: it stays as it is.
    const { settle } = await ctx.stageConvChange(batch, c, (was) => was);
    await ctx.store.commit(batch);
    settle();
    ctx.publishConvs();
    ctx.watchPresence();
    // Meet the contact now (the device list; no one-time prekeys taken): a username registered again under a new
    // key shows its warning before anything is written, and a deleted account shows as deleted.
    void this.#sessions
      .contact(person.userId)
      .then((contact) => ctx.setTrust(contact))
      .catch(() => undefined);
  }

  async loadHistory(conv: string, before: number | null, limit = 50): Promise<HistoryPage> {
    const { rows, more } = await this.#ctx.store.page(conv, before, limit);
    const messages: ChatMessage[] = [];
    for (const row of rows) messages.push(await this.#ctx.store.openMessage(row));
    return { messages, cursor: more && rows[0] ? rows[0].sort : null };
  }

  // ── message actions (issue #15; see actions.ts) ──

  react(conv: string, messageId: string, emoji: string): Promise<void> {
    return this.#actions.react(conv, messageId, emoji);
  }

  unreact(conv: string, messageId: string): Promise<void> {
    return this.#actions.unreact(conv, messageId);
  }

  edit(conv: string, messageId: string, text: string): Promise<void> {
    return this.#actions.edit(conv, messageId, text);
  }

  deleteForEveryone(conv: string, messageId: string): Promise<void> {
    return this.#actions.deleteForEveryone(conv, messageId);
  }

  deleteForMe(conv: string, messageId: string): Promise<void> {
    return this.#actions.deleteForMe(conv, messageId);
  }

  retry(conv: string, messageId: string): Promise<string> {
    return this.#actions.retry(conv, messageId);
  }

  send(conv: string, text: string, extra?: SendExtra): Promise<string> {
    void this.#profiles.shareBeforeSending(conv);
    return this.#outbound.send(conv, text, extra);
  }

  saveProfile(name: string, picture: Uint8Array | null): Promise<void> {
    return this.#profiles.save(name, picture);
  }

  /** Sends what the outbox holds, oldest first, until it is empty or the relay is unreachable. */
  flushOutbox(): Promise<void> {
    return this.#outbound.flushOutbox();
  }

  requestResend(conv: string, messageId: string): Promise<void> {
    return this.#outbound.requestResend(conv, messageId);
  }

  notifyTyping(conv: string): void {
    this.#receipts.notifyTyping(conv);
  }

  markRead(conv: string): Promise<void> {
    return this.#receipts.markRead(conv);
  }

  // ── groups and trust ─────────────────────────────────────────────────────────────────────────────────────

  createGroup(name: string, members: readonly Person[]): Promise<string> {
    return this.#membership.createGroup(name, members);
  }

  addGroupMembers(conv: string, people: readonly Person[]): Promise<void> {
    return this.#membership.addGroupMembers(conv, people);
  }

  removeGroupMember(conv: string, userId: string): Promise<void> {
    return this.#membership.removeGroupMember(conv, userId);
  }

  leaveGroup(conv: string): Promise<void> {
    return this.#membership.leaveGroup(conv);
  }

  renameGroup(conv: string, name: string): Promise<void> {
    return this.#membership.renameGroup(conv, name);
  }

  setGroupPicture(conv: string, picture: Uint8Array | null): Promise<void> {
    return this.#membership.setGroupPicture(conv, picture);
  }

  setGroupAdmin(conv: string, userId: string, admin: boolean): Promise<void> {
    return this.#membership.setGroupAdmin(conv, userId, admin);
  }

  safetyNumber(conv: string): Promise<SafetyNumberView> {
    return this.#trust.safetyNumber(conv);
  }

  markVerified(conv: string, identityKey: string): Promise<void> {
    return this.#trust.markVerified(conv, identityKey);
  }

  acceptIdentityChange(conv: string): Promise<void> {
    return this.#trust.acceptIdentityChange(conv);
  }

  // ── blocks ───────────────────────────────────────────────────────────────────────────────────────────────

  async block(person: Person): Promise<void> {
    await this.#blocks.block(person);
    this.#ctx.clearTyping(person.userId);
  }

  unblock(userId: string): Promise<void> {
    return this.#blocks.unblock(userId);
  }

  // ── notifications, privacy, disappearing messages (issue #15) ────────────────────────────────────────────

  setPreferences(patch: Partial<Preferences>): Promise<void> {
    return this.#preferences.set(patch);
  }

  setMuted(conv: string, muted: boolean): Promise<void> {
    return this.#preferences.setMuted(conv, muted);
  }

  setDisappearing(conv: string, seconds: number): Promise<void> {
    return this.#disappearing.set(conv, seconds);
  }

  onArrival(listener: (conv: string, message: ChatMessage) => void): () => void {
    return this.#preferences.onArrival(listener);
  }

  onMessagesRemoved(listener: (conv: string, ids: readonly string[]) => void): () => void {
    return this.#disappearing.onRemoved(listener);
  }

  // ── connection, presence, settings, maintenance ─────────────────────────────────────────────────────────

  /** Self-monitoring (issue #16): our account's new log entries; alarms become notices, other failures wait. */
  #checkOwnLog(): void {
    void this.transparency.checkOwnAccount().catch((e: unknown) => {
      if (e instanceof ClientError && e.code === 'transparency_failed') this.#ctx.notice('error', e.message);
    });
  }

  /**
   * Issue #16: once per sign-in or unlock, in the background, whether the release manifest the relay serves is in
   * its log; a relay that serves one it did not log (or a log that does not verify) becomes an error notice.
   */
  #checkReleaseOnce(): void {
    if (this.#releaseChecked) return;
    this.#releaseChecked = true;
    void checkRelease(this.transparency, this.#options.relayUrl).then((result) => {
      if (result.kind === 'failed') this.#ctx.notice('error', result.reason);
    });
  }

  verifyRelease(manifestBytes: Uint8Array): Promise<ReleaseLogCheck> {
    return checkReleaseBytes(this.transparency, manifestBytes);
  }

  #onConnected(): void {
    this.#checkReleaseOnce();
    this.#checkOwnLog();
    void this.#inbound.resumeDeferred();
    this.#ctx.watchPresence();
    void this.flushOutbox();
    void this.#maintain();
    void this.#trust.syncBackup().then(() => {
      void this.#profiles.refreshOwn().catch(() => undefined);
      return this.devices.check();
    });
    void this.#membership.syncGroupsIfNewDevice().catch((e: unknown) => {
      if (!(e instanceof ClientError && e.code === 'relay_unreachable')) {
        console.warn('group list not synced:', describeError(e));
      }
    });
    void this.#blocks.sync().catch((e: unknown) => console.warn('block list not synced:', describeError(e)));
    void this.#ctx.queue
      .run(PRESENCE_SETTING, async () => {
        const s = await this.#ctx.api.call('GET', '/api/settings', settingsSchema);
        this.#ctx.set({ sharePresence: s.sharePresence });
      })
      .catch(() => undefined); // an optional extension of the protocol; the local choice stays
  }

  #onPresence(update: unknown): void {
    const parsed = presenceUpdateSchema.safeParse(update);
    if (!parsed.success) return;
    const { userId, online, lastSeen } = parsed.data;
    this.#ctx.set({ presence: { ...this.#ctx.snapshot.presence, [userId]: { online, lastSeen } } });
  }

  /**
   * One change at a time, each sent once the one before was answered (and after the relay's value was read at start):
   * two requests in flight could reach the relay in either order, and it would keep sharing while the switch shows off.
   */
  setSharePresence(on: boolean): Promise<void> {
    return this.#ctx.queue.run(PRESENCE_SETTING, async () => {
      await this.#ctx.api.call('PUT', '/api/settings', null, { sharePresence: on });
      await this.#ctx.store.write('secrets', 'settings', { sharePresence: on });
      this.#ctx.set({ sharePresence: on });
    });
  }

  /** Refills one-time prekeys below 20 and rotates the signed prekey weekly; prunes old dedupe ids and sends. */
  async #maintain(): Promise<void> {
    try {
      await this.#ctx.keys.maintain(this.#ctx.api, this.#ctx.now());
      await this.#ctx.store.pruneSeen(this.#ctx.now(), await this.#ctx.keys.oldestSignedPrekeyCreated());
      await this.#outbound.pruneSendLog();
      await this.#disappearing.sweep();
    } catch (e) {
      if (!(e instanceof ClientError && e.code === 'relay_unreachable')) {
        console.warn('key maintenance failed:', describeError(e));
      }
    }
  }

  /** Puts a system line (not a message anyone wrote) in an existing conversation's log. */
  async #logNotice(conv: string, text: string): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx.convs.has(conv) || ctx.closed) return;
    const message: ChatMessage = {
      id: newMessageId(),
      conv,
      mine: false,
      text,
      ts: await ctx.stamp(),
      status: 'read',
      kind: 'notice',
    };
    const batch = new WriteBatch();
    await ctx.store.stageMessage(batch, message, message.ts);
    await ctx.store.commit(batch);
    ctx.emitMessages(conv, [message]);
  }

  #removing: Promise<void> | null = null;

  /**
   * This device was removed from the account by another of its devices: the relay already deleted its keys and
   * mailbox; here its local keys and history are wiped, and the UI says what happened.
   */
  #deviceRemoved(): Promise<void> {
    this.#removing ??= (async () => {
      if (this.#ctx.closed) return;
      this.#transport.stop();
      await this.#inbound.idle.catch(() => undefined);
      this.#ctx.store.retire('this device was removed');
      await wipeEngineDB(this.#ctx.store.db);
      this.#ctx.set({ deviceRemoved: true });
      this.close();
    })();
    return this.#removing;
  }

  /** Disconnects and stops timers; local data stays. Releases the one-writer lock (as closing the tab does). */
  close(): void {
    if (this.#ctx.closed) return;
    this.#ctx.closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#trust.close();
    this.#outbound.stop();
    this.#disappearing.stop();
    this.#transport.stop();
    this.#ctx.store.db.close();
    // The seal epochs' keys stay in memory no longer than the account is open in this page.
    this.#options.crypto.forgetSealEpochs();
    this.#options.onClosed();
  }

  /**
   * Revokes this device's relay session (its refresh family and access tokens: DELETE /api/sessions/current, with
   * one token refresh if the access token expired), then wipes the local database unless `keepLocalData`.
   * Offline, the relay call fails and the device is still cleared; the refresh token is gone with it.
   */
  async signOut(keepLocalData: boolean): Promise<void> {
    await this.#ctx.api.call('DELETE', '/api/sessions/current', null).catch((e: unknown) => {
      console.warn('the relay session was not revoked:', describeError(e));
    });
    this.#transport.stop();
    await this.#inbound.idle.catch(() => undefined);
    if (keepLocalData) {
      // The revoked refresh token stays (harmless): unlocking signs in afresh, and offline the history still opens.
      await this.#ctx.store.db.delete('devicekeys', 'unlock-key');
    } else {
      this.#ctx.store.retire('signed out');
      await wipeEngineDB(this.#ctx.store.db);
    }
    this.close();
  }

  async changePassword(current: string, next: string, progress?: PasswordProgress): Promise<void> {
    if (!this.#options.account) throw new ClientError('invalid_input', 'This engine cannot change the password.');
    await this.#options.account.changePassword(current, next, progress);
  }

  /** Erases the account on the relay (proved with the password), then everything of it in this browser. */
  async deleteAccount(password: string): Promise<void> {
    if (!this.#options.account) throw new ClientError('invalid_input', 'This engine cannot delete the account.');
    await this.#options.account.deleteAccount(password);
    this.#transport.stop();
    await this.#inbound.idle.catch(() => undefined);
    this.#ctx.store.retire('the account was deleted');
    await wipeEngineDB(this.#ctx.store.db);
    this.close();
  }

  // ── test hooks ───────────────────────────────────────────────────────────────────────────────────────────

  async keyTransparencyStatus(): Promise<KeyTransparencyStatus | null> {
    const pinned = await this.transparency.pinnedKey();
    if (!pinned) return null;
    const note = await this.transparency.latestCheckpoint();
    // A checkpoint note's body is "<origin>\n<size>\n<root>\n"; this one was verified before it was kept.
    const size = note === null ? Number.NaN : Number(note.split('\n')[1]);
    const witnesses = await this.transparency.witnessKeys();
    return {
      ...pinned,
      treeSize: Number.isSafeInteger(size) ? size : null,
      witnessKeys: witnesses.configured,
      deploymentWitnessKeys: witnesses.deployment,
    };
  }

  /** Key transparency (issue #16): re-runs a contact's failed check; the block lifts only if it now passes. */
  recheckContact(userId: string): Promise<void> {
    return this.transparency.recheck(userId);
  }

  configureLogKey(key: string, replace = false): Promise<'saved' | 'mismatch'> {
    return this.transparency.configureLogKey(key, replace);
  }

  configureWitnesses(keys: string[]): Promise<void> {
    return this.transparency.configureWitnesses(keys);
  }

  /** Test-only: drop the socket (as a network loss would) or bring it back. */
  dangerousTestOnlySetOnline(online: boolean): void {
    assertTest();
    if (online) this.#transport.start();
    else this.#transport.stop();
  }

  /** Test-only: how many redelivered entries were dropped because their id was already handled. */
  dangerousTestOnlyDuplicatesDropped(): number {
    assertTest();
    return this.#inbound.duplicatesDropped;
  }

  /** Test-only: run the key check now (it runs on every connect and hourly). */
  dangerousTestOnlyMaintain(): Promise<void> {
    assertTest();
    return this.#maintain();
  }

  /** Test-only: what the relay holds for this device (one-time prekey count, signed prekey id). */
  dangerousTestOnlyPrekeyStatus(): Promise<PrekeyCountAnswer> {
    assertTest();
    return this.#ctx.api.call('GET', '/api/devices/self/prekeys', prekeyCountAnswerSchema);
  }

  /** Test-only: per device of a peer, whether each stored session state is post-quantum (newest first). */
  dangerousTestOnlyPostQuantum(userId: string): Promise<Map<string, boolean[]>> {
    assertTest();
    return this.#sessions.postQuantumStates(userId);
  }

  /** Test-only: the token keeper's refresh token and a way to spoil the access token. */
  dangerousTestOnlyTokens() {
    assertTest();
    return { access: this.#ctx.api.tokens.current, ...this.#ctx.api.tokens.dangerousTestOnlyPeek() };
  }

  /** Test-only: lose every session with a user (as a damaged or restored profile would). */
  async dangerousTestOnlyForgetSessions(userId: string): Promise<void> {
    assertTest();
    // Through the peer's queue, like every session change: a decrypt already under way must not write back
    // the session after it was forgotten.
    await this.#ctx.queue.run(userId, async () => {
      const batch = new WriteBatch();
      await this.#sessions.forget(userId, batch);
      await this.#ctx.store.commit(batch);
    });
  }

  /** Test-only: every group ciphertext this engine sent, oldest first. */
  dangerousTestOnlySentGroupBodies(): readonly Uint8Array[] {
    assertTest();
    return this.#groupMessages.sentBodies;
  }

  /** Test-only: try to decrypt a group body with the sender-key records this device holds (nothing is stored). */
  async dangerousTestOnlyOpenGroupBody(groupId: string, body: Uint8Array): Promise<string> {
    assertTest();
    const c = this.#ctx.c;
    const header = c.readGroupMessageHeader(body);
    const record = await this.#ctx.groupKeys.record(groupId, header);
    if (!record) throw new ClientError('decrypt_failed', 'no sender key for this message');
    return decoder.decode(
      c.decryptGroupMessage(record, { groupId, messageId: header.messageId, body }).message.content.body,
    );
  }

  /** Test-only: wait until the key backup holds this device's verification state. */
  dangerousTestOnlySyncBackup(): Promise<void> {
    assertTest();
    return this.#trust.syncBackup();
  }

  /** Test-only: which devices (`userId/deviceId`) hold our current sender key for a group. */
  async dangerousTestOnlyGroupKeyDevices(groupId: string): Promise<string[]> {
    assertTest();
    return (await this.#ctx.groupKeys.peekOwn(groupId))?.devices ?? [];
  }

  /** Test-only: a stored pairwise control to every device of `userId` (to act as a misbehaving client). */
  async dangerousTestOnlySendControl(userId: string, payload: ControlPayload): Promise<void> {
    assertTest();
    await this.#outbound.sendPairwiseNow(userId, { kind: 'control', body: encoder.encode(JSON.stringify(payload)) });
  }

  /** Test-only: a stored pairwise `chat` payload (any JSON) to every device of `userId` (a misbehaving client). */
  async dangerousTestOnlySendPairwiseJson(userId: string, payload: unknown): Promise<void> {
    assertTest();
    await this.#outbound.sendPairwiseNow(userId, { kind: 'chat', body: encoder.encode(JSON.stringify(payload)) });
  }

  /** Test-only: how many ephemeral entries (typing indicators, receipts) the relay delivered to this device. */
  dangerousTestOnlyEphemeralReceived(): number {
    assertTest();
    return this.#inbound.ephemeralReceived;
  }

  /** Test-only: queue any action in a conversation, unchecked (to act as a misbehaving client). */
  dangerousTestOnlyQueueAction(conv: string, action: ActionPayload): Promise<string> {
    assertTest();
    return this.#outbound.queueAction(conv, action);
  }

  /** Test-only: delete the messages whose disappearing timer ran out by the engine's clock, now. */
  dangerousTestOnlyExpireNow(): Promise<void> {
    assertTest();
    return this.#disappearing.sweep();
  }

  /** Test-only: `around` runs each IndexedDB commit of this engine (null: none), e.g. to hold one back. */
  dangerousTestOnlyAroundCommit(around: LocalStore['dangerousTestOnlyAroundCommit']): void {
    assertTest();
    this.#ctx.store.dangerousTestOnlyAroundCommit = around;
  }

  /** Test-only: the block list as sealed in IndexedDB (what the next start reads first). */
  async dangerousTestOnlyStoredBlocks(): Promise<Person[] | undefined> {
    assertTest();
    return (await readStoredBlocks(this.#ctx.store))?.people;
  }

  /** Test-only: how many presence-sharing changes wait for the one in flight (setSharePresence). */
  dangerousTestOnlyPresenceSettingWaiting(): number {
    assertTest();
    return this.#ctx.queue.waiting(PRESENCE_SETTING);
  }

  /** Test-only: how many tasks wait for a group's queue (a send, a key share) behind the running one. */
  dangerousTestOnlyGroupQueueWaiting(groupId: string): number {
    assertTest();
    return this.#ctx.queue.waiting(`group:${groupId}`);
  }

  /** Test-only: how many changes to stored messages wait for the running one (LocalStore.changeMessages). */
  dangerousTestOnlyMessageChangesWaiting(): number {
    assertTest();
    return this.#ctx.store.dangerousTestOnlyChangesWaiting;
  }

  /** Test-only: a conversation's state as stored in IndexedDB, read as a reload reads it (#load). */
  async dangerousTestOnlyStoredConversation(conv: string): Promise<ConvState | undefined> {
    assertTest();
    const row = await this.#ctx.store.db.get('conversations', conv);
    if (!row) return undefined;
    return { conv, ...(await this.#ctx.store.vault.open(`conversations/${conv}`, row.sealed, convRecordSchema)) };
  }

  /**
   * Test-only: stores the conversation's state, and keeps it in memory, without the id of its last line's message, as
   * a version before `lastId` left it.
   */
  async dangerousTestOnlyKeepConversationAsBeforeLastId(conv: string): Promise<void> {
    assertTest();
    const current = this.#ctx.convs.get(conv);
    if (!current) throw new Error('no such conversation');
    const { lastId: _lastId, ...before } = current;
    const batch = new WriteBatch();
    await this.#ctx.stageConv(batch, before);
    await this.#ctx.store.commit(batch);
    this.#ctx.convs.set(conv, before);
  }

  /** Test-only: how many messages wait in the outbox. */
  async dangerousTestOnlyOutboxSize(): Promise<number> {
    assertTest();
    return this.#ctx.store.db.count('outbox');
  }
}
