// Sessions: pairwise Double Ratchet sessions with each peer device — start them from relay bundles, accept them
// from prekey messages, encrypt and decrypt. Callers serialize per peer (KeyedSerialQueue) and commit the staged
// writes together with what the message changed.
//
// Trust lives here, in one rule (`usable`, with `decryptable` beside it): a session state may encrypt only while its
// peer identity key is the contact's trusted key, and a verified contact's messages decrypt only on such states.
// Each peer device keeps a few states, newest first (as Signal's Sesame does): a message decrypts with any state the
// rule allows (which then becomes the newest), a send uses the newest usable one, and a new session from a prekey
// message is added in front without destroying the others. So an injected prekey message never replaces a working
// session, and two sides that start sessions at the same moment converge without losing anything.

import type { Content, Envelope, Session } from '@weconnect/crypto';
import type { RelayApi } from './api';
import type { Crypto } from './crypto-loader';
import { ClientError } from './errors';
import type { OwnKeys } from './own-keys';
import { bundleAnswerSchema, type BundleAnswer } from '@weconnect/relay/protocol';
import { isRelayId, knownNameSchema, type Contact } from './schemas';
import { SessionStates } from './session-states';
import { WriteBatch, type LocalStore } from './store';

/** At most one bundle fetch per user per this long is triggered by an inbound prekey message with an unknown key. */
export const INBOUND_FETCH_EVERY_MS = 60_000;

/**
 * The trust rule, the only place it is decided: a session state may be used (to encrypt or to decrypt) only while its
 * peer identity key equals the contact's trusted identity key. A contact's identity change (accepted by the user, or
 * taken for an unverified contact with a banner) therefore retires every state under the old key at once, and a
 * verified contact's pending (unaccepted) key never gets a state used.
 */
export function usable(c: Crypto, state: Session, contact: Contact | null): boolean {
  return contact !== null && c.toBase64Url(state.peerIdentityKey) === contact.identityKey;
}

/**
 * The same rule for reading: a verified contact's messages decrypt only on states under the verified key (a session
 * the relay made before the user compared safety numbers is dropped when they verify, and could not speak for the
 * contact anyway). An unverified contact's held states all decrypt — trust on first use, under the key-change banner
 * — so a prekey message the relay injects under a new key never makes the contact's real messages undecryptable.
 */
export function decryptable(c: Crypto, state: Session, contact: Contact | null): boolean {
  return contact !== null && (usable(c, state, contact) || !contact.verified);
}

/**
 * How a sender learns about a contact's new device (or its own): the device list (the bundle) is fetched again on
 * the first send to that user after start, on a send when the last fetch is older than this, and at once when the
 * relay answers `unknown_recipient` (a device is gone). A new device that sends first is learned from its message.
 */
export const DEVICE_CHECK_MS = 10 * 60_000;

export interface Me {
  userId: string;
  deviceId: string;
}

export interface SessionEvents {
  /** A contact's identity key changed (re-installed, new account key): the UI says so plainly. */
  identityChanged(contact: Contact): void;
  /**
   * A session started with a device we had none with (from its bundle or its first message): a new device of the
   * user, or one we never wrote to. Called before the session is committed; handlers must not wait on the peer.
   */
  deviceAdded?(userId: string, deviceId: string): void;
  /** A user's device list (a bundle) was read, under the contact's trusted key (issue #14: new-device notices). */
  devicesListed?(contact: Contact, deviceIds: string[]): Promise<void>;
  /** The relay no longer knows a contact: the account was deleted. */
  accountDeleted?(contact: Contact): void;
  /** A bundle arrived: key transparency checks it against the relay's log (issue #16); throws to refuse it. */
  bundleReceived?(bundle: BundleAnswer): Promise<void>;
}

export class Sessions {
  readonly #c: Crypto;
  readonly #store: LocalStore;
  readonly #states: SessionStates;
  readonly #keys: OwnKeys;
  readonly #api: RelayApi;
  readonly #me: Me;
  readonly #events: SessionEvents;
  readonly #now: () => number;
  readonly #checkEveryMs: number;
  /** When each peer's device list was last fetched (this run); a first send after start always checks. */
  readonly #checked = new Map<string, number>();
  /** When an inbound prekey message last made us fetch a user's bundle (rate limit: the sender is unauthenticated). */
  readonly #inboundFetch = new Map<string, number>();

  constructor(
    c: Crypto,
    store: LocalStore,
    keys: OwnKeys,
    api: RelayApi,
    me: Me,
    events: SessionEvents,
    clock: { now: () => number; deviceCheckMs: number } = { now: Date.now, deviceCheckMs: DEVICE_CHECK_MS },
  ) {
    this.#now = clock.now;
    this.#checkEveryMs = clock.deviceCheckMs;
    this.#c = c;
    this.#store = store;
    this.#states = new SessionStates(c, store);
    this.#keys = keys;
    this.#api = api;
    this.#me = me;
    this.#events = events;
  }

  /** Moves session records of the old layout to the new one (once, at start). */
  migrateLegacy(): Promise<void> {
    return this.#states.migrateLegacy();
  }

  async hasSessions(peerUserId: string): Promise<boolean> {
    return this.#states.has(peerUserId);
  }

  /** Test hook: per device of a peer, whether each stored session state is post-quantum (newest first). */
  async postQuantumStates(peerUserId: string): Promise<Map<string, boolean[]>> {
    const states = await this.#states.user(peerUserId);
    return new Map([...states].map(([deviceId, list]) => [deviceId, list.map((s) => s.postQuantum === true)]));
  }

  /**
   * The relay says a device of the peer is gone: the next send fetches the device list again. Sessions with the
   * devices it still lists are kept (a relay that answers `unknown_recipient` cannot make us drop working sessions).
   */
  recheckDevices(peerUserId: string): void {
    this.#checked.delete(peerUserId);
  }

  /** Drops every session state with a peer (tests: a damaged or restored profile). */
  async forget(peerUserId: string, batch: WriteBatch): Promise<void> {
    this.#checked.delete(peerUserId);
    await this.#states.stageForget(batch, peerUserId);
  }

  /**
   * Fetches the peer's bundle and records/checks the identity key. `takeFor` names the devices whose one-time
   * prekey we take (each is handed out once, and the peer must upload more): 'all', or only those listed; `[]`
   * takes none and is the device list.
   */
  async fetchBundle(
    peerUserId: string,
    takeFor: 'all' | readonly string[],
    sending = false,
  ): Promise<{ bundle: BundleAnswer; contact: Contact }> {
    const query = takeFor === 'all' ? '' : `?devices=${takeFor.map(encodeURIComponent).join(',')}`;
    const bundle = await this.#api
      .call('GET', `/api/users/${encodeURIComponent(peerUserId)}/bundle${query}`, bundleAnswerSchema)
      .catch(async (e: unknown) => {
        if (e instanceof ClientError && e.code === 'not_found') throw await this.#accountDeleted(peerUserId);
        throw e;
      });
    if (bundle.userId !== peerUserId) throw new ClientError('relay_error', 'The relay answered for another user');
    await this.#events.bundleReceived?.(bundle);
    const contact = await this.#acceptIdentity(peerUserId, bundle.username, bundle.identityKey, sending);
    if (contact.identityKey === bundle.identityKey) {
      await this.#events.devicesListed?.(
        contact,
        bundle.devices.map((d) => d.deviceId),
      );
    }
    return { bundle, contact };
  }

  async #rememberName(userId: string, username: string, identityKey: string): Promise<void> {
    const seen = await this.#store.read('secrets', ['known-name', username], knownNameSchema);
    if (seen?.userId !== userId || seen.identityKey !== identityKey) {
      await this.#store.write('secrets', ['known-name', username], { userId, identityKey });
    }
  }

  /** The relay no longer knows the user: the contact is marked deleted (sending stops) and the error says so. */
  async #accountDeleted(userId: string): Promise<ClientError> {
    const known = await this.#store.contact(userId);
    if (known && !known.deleted) {
      const gone: Contact = { ...known, deleted: true };
      await this.#store.write('contacts', userId, gone);
      this.#events.accountDeleted?.(gone);
    }
    return new ClientError('account_deleted', `${known?.username ?? 'This user'}'s account was deleted.`);
  }

  /**
   * A user id never seen before, under a username we knew with another user id and identity key: the name was
   * registered again (the old account was deleted, or the relay swapped it). Remembered per username; true when the
   * key differs from the one last seen under that name.
   */
  async #nameReused(userId: string, username: string, identityKey: string): Promise<boolean> {
    const seen = await this.#store.read('secrets', ['known-name', username], knownNameSchema);
    return seen !== null && seen.userId !== userId && seen.identityKey !== identityKey;
  }

  /**
   * Records the contact on first sight (trust on first use). A later change of an unverified contact's key is taken
   * (with `keyChanged` set, so the conversation shows a banner); a verified contact's new key waits in
   * `pendingIdentityKey` and every send to them throws `identity_changed` until the user accepts it. Either way the
   * sessions under the old key stop being usable (see `usable`). When a send finds the change (`sending`), that send
   * fails with `identity_changed` as well, as in Signal: the message that was written for the old key never goes to
   * the new one unseen; the user sees the banner first and sends again.
   */
  async #acceptIdentity(userId: string, username: string, identityKey: string, sending: boolean): Promise<Contact> {
    const known = await this.#store.contact(userId);
    if (known && known.identityKey === identityKey) {
      await this.#rememberName(userId, username, identityKey);
      if (known.username !== username || known.pendingIdentityKey !== undefined || known.restored || known.deleted) {
        const { pendingIdentityKey: _stale, restored: _restored, deleted: _deleted, ...rest } = known;
        const renamed = { ...rest, username };
        await this.#store.write('contacts', userId, renamed);
        return renamed;
      }
      return known;
    }
    if (known?.verified) {
      if (known.pendingIdentityKey !== identityKey || known.restored) {
        const { restored: _restored, ...rest } = known;
        const blocked: Contact = { ...rest, username, pendingIdentityKey: identityKey, keyChanged: true };
        await this.#store.write('contacts', userId, blocked);
        this.#events.identityChanged(blocked);
      }
      throw identityChanged(known.username);
    }
    const changed = known !== null || (await this.#nameReused(userId, username, identityKey));
    const contact: Contact = {
      userId,
      username,
      identityKey,
      verified: false,
      ...(changed ? { keyChanged: true } : {}),
      ...(known?.transparencyAlarm ? { transparencyAlarm: known.transparencyAlarm } : {}),
    };
    await this.#store.write('contacts', userId, contact);
    await this.#store.write('secrets', ['known-name', username], { userId, identityKey });
    if (changed) {
      this.#events.identityChanged(contact);
      if (sending) throw identityChanged(known?.username ?? username, 'Check the new key, then send again.');
    }
    return contact;
  }

  /** Drops every state of the peer whose identity key is not the contact's trusted one. */
  async #dropUnusable(userId: string, contact: Contact, batch: WriteBatch): Promise<void> {
    for (const [deviceId, states] of await this.#states.user(userId)) {
      const kept = states.filter((s) => usable(this.#c, s, contact));
      if (kept.length !== states.length) await this.#states.stage(batch, userId, deviceId, kept);
    }
  }

  /**
   * The user accepted a changed key (or dismissed the banner): trust the relay's key, unverified. States under the old
   * key are no longer usable for sending (the rule in `usable`), so the next send starts fresh sessions.
   */
  async acceptIdentityChange(userId: string, batch: WriteBatch): Promise<Contact | null> {
    const known = await this.#store.contact(userId);
    if (!known) return null;
    const next: Contact = {
      userId,
      username: known.username,
      identityKey: known.pendingIdentityKey ?? known.identityKey,
      verified: known.pendingIdentityKey ? false : known.verified,
    };
    await this.#store.stage(batch, 'contacts', userId, next);
    if (known.pendingIdentityKey) this.#checked.delete(userId);
    return next;
  }

  /**
   * Marks the contact's current key as verified (the user compared safety numbers), and drops every session state
   * whose peer key is not that key: after this, only the verified key's holder can read what we send.
   */
  async markVerified(userId: string, identityKey: string): Promise<Contact> {
    const known = await this.#store.contact(userId);
    if (!known || known.identityKey !== identityKey || known.pendingIdentityKey) {
      throw new ClientError('identity_changed', 'The security key changed while you were comparing. Check again.');
    }
    const next: Contact = { userId, username: known.username, identityKey, verified: true };
    const batch = new WriteBatch();
    await this.#store.stage(batch, 'contacts', userId, next);
    await this.#dropUnusable(userId, next, batch);
    await this.#store.commit(batch);
    return next;
  }

  /** The contact for a user, fetching the bundle once if we never met them. */
  async contact(userId: string): Promise<Contact> {
    const known = await this.#store.contact(userId);
    // A contact restored from the key backup has no username yet: the bundle names it (and checks its key).
    return known && !known.restored ? known : (await this.fetchBundle(userId, [])).contact;
  }

  /**
   * Encrypts `content` to every device of the peer with each device's newest usable state, starting sessions from a
   * fresh bundle for devices that have none (unless `existingOnly`, for ephemeral messages). With `onlyDevices`, only
   * those devices get it. Stages the advanced sessions in `batch`. Throws `identity_changed` while the contact's key
   * change waits for the user.
   */
  async encrypt(
    peerUserId: string,
    messageId: string,
    content: Content,
    batch: WriteBatch,
    existingOnly = false,
    onlyDevices?: readonly string[],
  ): Promise<{ to: string; body: Uint8Array }[]> {
    let contact = await this.#store.contact(peerUserId);
    if (contact?.pendingIdentityKey !== undefined) throw identityChanged(contact.username);
    let devices = await this.#states.user(peerUserId);
    const usableCount = [...devices.values()].filter((states) =>
      states.some((s) => usable(this.#c, s, contact)),
    ).length;
    const last = this.#checked.get(peerUserId);
    const stale = last === undefined || this.#now() - last >= this.#checkEveryMs;
    // Our own account often has no other device: "no session" is then the normal state, not a reason to fetch
    // the device list (and spend one-time prekeys) on every send; the staleness check still finds new devices.
    const self = peerUserId === this.#me.userId;
    if (!existingOnly && ((usableCount === 0 && !self) || stale)) {
      ({ contact, devices } = await this.#refreshDevices(peerUserId, devices, batch));
    }
    const envelopes: { to: string; body: Uint8Array }[] = [];
    for (const [deviceId, states] of devices) {
      if (onlyDevices && !onlyDevices.includes(deviceId)) continue;
      const i = states.findIndex((s) => usable(this.#c, s, contact));
      if (i < 0) continue; // only states under a key we no longer trust: nothing goes to them
      const { session, body } = await this.#c.encryptToDevice(states[i]!, { messageId, content });
      const next = [...states];
      next[i] = session;
      devices.set(deviceId, next);
      await this.#states.stage(batch, peerUserId, deviceId, next);
      envelopes.push({ to: deviceId, body });
    }
    return envelopes;
  }

  /**
   * Fetches the user's device list: keeps the states of listed devices, starts a session with each listed device
   * that has no usable state (a new device, or one whose states are under a key we no longer trust), drops the
   * records of devices that are gone. For our own account, this device is left out (and none is not an error).
   * With no usable session yet, one fetch takes a one-time prekey of every device; otherwise (and always for our
   * own account) the list is fetched without taking any, and a second fetch takes them for the devices that need
   * them only, so checking a contact's devices now and then does not use up their one-time prekeys.
   */
  async #refreshDevices(
    peerUserId: string,
    existing: Map<string, Session[]>,
    batch: WriteBatch,
  ): Promise<{ contact: Contact; devices: Map<string, Session[]> }> {
    const self = peerUserId === this.#me.userId;
    const before = await this.#store.contact(peerUserId);
    const anyUsable = [...existing.values()].some((states) => states.some((s) => usable(this.#c, s, before)));
    // Our own bundle lists this device too: never take from it, so the first fetch for ourselves takes none.
    const { bundle, contact } = await this.fetchBundle(peerUserId, !anyUsable && !self ? 'all' : [], true);
    this.#checked.set(peerUserId, this.#now());
    let devices = bundle.devices.filter((d) => !(self && d.deviceId === this.#me.deviceId));
    const needs = devices
      .filter((d) => !(existing.get(d.deviceId) ?? []).some((s) => usable(this.#c, s, contact)))
      .map((d) => d.deviceId);
    if ((anyUsable || self) && needs.length > 0) {
      // The new devices' entries come from a second answer, with their one-time prekeys (signed by the identity
      // key of the first answer, checked below: a relay that swaps keys between the two answers fails there).
      const fresh = (await this.fetchBundle(peerUserId, needs, true)).bundle.devices;
      devices = devices.map((d) => fresh.find((f) => f.deviceId === d.deviceId) ?? d);
    }
    if (devices.length === 0 && !self) {
      throw new ClientError('no_devices', `${bundle.username} has no device that can receive messages yet.`);
    }
    // New sessions are post-quantum (PQXDH) only. A device whose entry has no KEM prekey gets no session, like a
    // device without keys: it is either a client from before PQXDH that has not run since (it publishes KEM prekeys
    // when it next starts) or a relay stripping the KEM part, which is refused here and could only hide the device,
    // as leaving it out of the answer would.
    const ready = devices.filter((d) => !needs.includes(d.deviceId) || d.kemPrekey);
    if (ready.length === 0 && !self) {
      throw new ClientError(
        'no_devices',
        `${bundle.username} has no device that can receive post-quantum messages yet. It needs to open WeConnect once.`,
      );
    }
    const out = new Map<string, Session[]>();
    for (const device of ready) {
      const states = existing.get(device.deviceId) ?? [];
      if (!needs.includes(device.deviceId)) {
        out.set(device.deviceId, states);
        continue;
      }
      const verified = this.#c.verifyPrekeyBundle({
        identityKey: contact.identityKey,
        signedPrekey: device.signedPrekey,
        oneTimePrekey: device.oneTimePrekey,
        kemPrekey: device.kemPrekey,
      });
      if (states.length === 0) this.#events.deviceAdded?.(peerUserId, device.deviceId);
      const started = this.#c.initiateSession({
        identity: this.#keys.identity,
        localUserId: this.#me.userId,
        localDeviceId: this.#me.deviceId,
        peerUserId,
        peerDeviceId: device.deviceId,
        bundle: verified,
        requirePostQuantum: true,
      });
      const next = [started, ...states];
      out.set(device.deviceId, next);
      await this.#states.stage(batch, peerUserId, device.deviceId, next);
    }
    for (const deviceId of existing.keys()) {
      if (!out.has(deviceId)) await this.#states.stage(batch, peerUserId, deviceId, []);
    }
    return { contact, devices: out };
  }

  /**
   * Decrypts an opened envelope from a peer device. Only states whose peer key is the contact's trusted key are
   * tried. A prekey message that starts a new session is accepted (checking the sender's identity key against the
   * one we trust, or the relay's when we never met them) and its state put in front; the others stay. Stages the
   * new session state and the used one-time prekey.
   */
  async decrypt(env: Envelope, batch: WriteBatch): Promise<{ content: Content; contact: Contact; session: Session }> {
    if (!isRelayId(env.senderUserId) || !isRelayId(env.senderDeviceId)) {
      throw new ClientError('decrypt_failed', 'The envelope names a sender id the relay never issues');
    }
    const user = env.senderUserId;
    const deviceId = env.senderDeviceId;
    const states = await this.#states.device(user, deviceId);
    let contact = await this.#store.contact(user);
    const fresh = env.type === 'prekey' && !states.some((s) => !this.#c.isNewSession(s, env));
    if (!fresh) {
      const candidates = states.filter((s) => decryptable(this.#c, s, contact));
      if (candidates.length === 0 || !contact) {
        throw new ClientError('decrypt_failed', 'A message arrived for a session this device does not have');
      }
      let failure: unknown = null;
      for (const state of candidates) {
        try {
          const { session, content } = this.#c.decryptFromDevice(state, env);
          // The state that decrypted becomes the newest: both sides converge on the session the peer uses.
          await this.#states.stage(batch, user, deviceId, [session, ...states.filter((s) => s !== state)]);
          return { content, contact: await this.contact(user), session };
        } catch (e) {
          if (failure === null || isDuplicate(e)) failure = e;
        }
      }
      throw failure;
    }
    const info = this.#c.readPrekeyMessage(env.payload);
    const claimed = this.#c.toBase64Url(info.identityKey);
    if (!contact || contact.restored || contact.identityKey !== claimed) {
      // Unknown sender, or a key different from the one we trust: ask the relay which key this account has now —
      // at most once a minute per user, since anyone (the relay included) can send us such a message.
      const last = this.#inboundFetch.get(user);
      if (contact && !contact.restored && last !== undefined && this.#now() - last < INBOUND_FETCH_EVERY_MS) {
        throw new ClientError('decrypt_failed', "The message is signed with a key that is not the contact's");
      }
      this.#inboundFetch.set(user, this.#now());
      contact = (await this.fetchBundle(user, [])).contact;
    }
    if (contact.pendingIdentityKey !== undefined) throw identityChanged(contact.username);
    const signedPrekey = await this.#keys.signedPrekey(info.signedPrekeyId);
    if (!signedPrekey)
      throw new ClientError('decrypt_failed', 'The message names a signed prekey this device no longer has');
    const oneTimePrekey = info.oneTimePrekeyId === null ? null : await this.#keys.oneTimePrekey(info.oneTimePrekeyId);
    if (info.oneTimePrekeyId !== null && !oneTimePrekey) {
      throw new ClientError('decrypt_failed', 'The message names a one-time prekey that was already used');
    }
    const kemPrekey = info.kemPrekeyId === null ? null : await this.#keys.kemPrekey(info.kemPrekeyId);
    if (info.kemPrekeyId !== null && !kemPrekey) {
      throw new ClientError('decrypt_failed', 'The message names a post-quantum prekey this device does not have');
    }
    const { session, content } = this.#c.acceptSession({
      identity: this.#keys.identity,
      localUserId: this.#me.userId,
      localDeviceId: this.#me.deviceId,
      envelope: env,
      signedPrekey,
      oneTimePrekey,
      expectedPeerIdentityKey: contact.identityKey,
      kemPrekey,
      // Once this device has published KEM prekeys, a session start without the KEM part is a downgrade.
      requirePostQuantum: await this.#keys.hasKemPrekeys(),
    });
    await this.#states.stage(batch, user, deviceId, [session, ...states]);
    if (info.oneTimePrekeyId !== null) this.#keys.stageUsedOneTimePrekey(batch, info.oneTimePrekeyId);
    if (kemPrekey && !kemPrekey.lastResort) this.#keys.stageUsedKemPrekey(batch, kemPrekey.keyId);
    if (states.length === 0) this.#events.deviceAdded?.(user, deviceId);
    return { content, contact, session };
  }
}

function identityChanged(username: string, what = 'Sending is blocked until you accept the new key.'): ClientError {
  return new ClientError('identity_changed', `${username}'s security key changed. ${what}`);
}

function isDuplicate(e: unknown): boolean {
  return e instanceof Error && 'code' in e && e.code === 'duplicate_message';
}
