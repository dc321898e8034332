// Sessions: pairwise Double Ratchet sessions with each peer device — start them from relay bundles, accept them
// from prekey messages, encrypt and decrypt. Callers serialize per peer (KeyedSerialQueue) and commit the staged
// writes together with what the message changed.

import type { Content, Envelope, Session } from '@weconnect/crypto';
import { z } from 'zod';
import type { RelayApi } from './api';
import type { Crypto } from './crypto-loader';
import { ClientError } from './errors';
import type { OwnKeys } from './own-keys';
import { bundleAnswerSchema, type BundleAnswer, type Contact } from './schemas';
import type { LocalStore, WriteBatch } from './store';

const anyValue = z.unknown();

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
}

export class Sessions {
  readonly #c: Crypto;
  readonly #store: LocalStore;
  readonly #keys: OwnKeys;
  readonly #api: RelayApi;
  readonly #me: Me;
  readonly #events: SessionEvents;
  readonly #now: () => number;
  readonly #checkEveryMs: number;
  /** When each peer's device list was last fetched (this run); a first send after start always checks. */
  readonly #checked = new Map<string, number>();

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
    this.#keys = keys;
    this.#api = api;
    this.#me = me;
    this.#events = events;
  }

  async #load(peerUserId: string): Promise<Session[]> {
    const keys = await this.#store.keys('sessions', `${peerUserId}/`);
    const out: Session[] = [];
    for (const key of keys) {
      const raw = await this.#store.read('sessions', key, anyValue);
      if (raw !== null) out.push(this.#c.deserializeSession(raw));
    }
    return out;
  }

  async #loadOne(peerUserId: string, deviceId: string): Promise<Session | null> {
    const raw = await this.#store.read('sessions', `${peerUserId}/${deviceId}`, anyValue);
    return raw === null ? null : this.#c.deserializeSession(raw);
  }

  async #stageSession(batch: WriteBatch, s: Session): Promise<void> {
    await this.#store.stage(batch, 'sessions', `${s.peerUserId}/${s.peerDeviceId}`, this.#c.serializeSession(s));
  }

  async hasSessions(peerUserId: string): Promise<boolean> {
    return (await this.#store.keys('sessions', `${peerUserId}/`)).length > 0;
  }

  /** Drops every session with a peer (a device disappeared): the next send fetches a fresh bundle. */
  async forget(peerUserId: string, batch: WriteBatch): Promise<void> {
    this.#checked.delete(peerUserId);
    for (const key of await this.#store.keys('sessions', `${peerUserId}/`))
      this.#store.stageDelete(batch, 'sessions', key);
  }

  /**
   * Fetches the peer's bundle and records/checks the identity key. `takeFor` names the devices whose one-time
   * prekey we take (each is handed out once, and the peer must upload more): 'all', or only those listed; `[]`
   * takes none and is the device list.
   */
  async fetchBundle(
    peerUserId: string,
    takeFor: 'all' | readonly string[],
  ): Promise<{ bundle: BundleAnswer; contact: Contact }> {
    const query = takeFor === 'all' ? '' : `?devices=${takeFor.map(encodeURIComponent).join(',')}`;
    const bundle = await this.#api.call(
      'GET',
      `/api/users/${encodeURIComponent(peerUserId)}/bundle${query}`,
      bundleAnswerSchema,
    );
    if (bundle.userId !== peerUserId) throw new ClientError('relay_error', 'The relay answered for another user');
    const contact = await this.#acceptIdentity(peerUserId, bundle.username, bundle.identityKey);
    return { bundle, contact };
  }

  /**
   * Records the contact on first sight (trust on first use). A later change of an unverified contact's key is taken
   * (with `keyChanged` set, so the conversation shows a banner); a verified contact's new key waits in
   * `pendingIdentityKey` and every send to them throws `identity_changed` until the user accepts it.
   */
  async #acceptIdentity(userId: string, username: string, identityKey: string): Promise<Contact> {
    const known = await this.#store.contact(userId);
    if (known && known.identityKey === identityKey) {
      if (known.username !== username || known.pendingIdentityKey !== undefined || known.restored) {
        const { pendingIdentityKey: _stale, restored: _restored, ...rest } = known;
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
      throw new ClientError(
        'identity_changed',
        `${known.username}'s security key changed. Sending is blocked until you accept the new key.`,
      );
    }
    const contact: Contact = { userId, username, identityKey, verified: false, ...(known ? { keyChanged: true } : {}) };
    await this.#store.write('contacts', userId, contact);
    if (known) this.#events.identityChanged(contact);
    return contact;
  }

  /** The user accepted a changed key (or dismissed the banner): trust the relay's key, unverified, fresh sessions. */
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
    if (known.pendingIdentityKey) await this.forget(userId, batch);
    return next;
  }

  /** Marks the contact's current key as verified (the user compared safety numbers). */
  async markVerified(userId: string, identityKey: string): Promise<Contact> {
    const known = await this.#store.contact(userId);
    if (!known || known.identityKey !== identityKey || known.pendingIdentityKey) {
      throw new ClientError('identity_changed', 'The security key changed while you were comparing. Check again.');
    }
    const next: Contact = { userId, username: known.username, identityKey, verified: true };
    await this.#store.write('contacts', userId, next);
    return next;
  }

  /** The contact for a user, fetching the bundle once if we never met them. */
  async contact(userId: string): Promise<Contact> {
    const known = await this.#store.contact(userId);
    // A contact restored from the key backup has no username yet: the bundle names it (and checks its key).
    return known && !known.restored ? known : (await this.fetchBundle(userId, [])).contact;
  }

  /**
   * Encrypts `content` to every device of the peer, starting sessions from a fresh bundle when there are none
   * (unless `existingOnly`, for ephemeral messages). With `onlyDevices`, only those devices get it. Stages the
   * advanced sessions in `batch`.
   */
  async encrypt(
    peerUserId: string,
    messageId: string,
    content: Content,
    batch: WriteBatch,
    existingOnly = false,
    onlyDevices?: readonly string[],
  ): Promise<{ to: string; body: Uint8Array }[]> {
    let sessions = await this.#load(peerUserId);
    const last = this.#checked.get(peerUserId);
    const stale = last === undefined || this.#now() - last >= this.#checkEveryMs;
    // Our own account often has no other device: "no session" is then the normal state, not a reason to fetch
    // the device list (and spend one-time prekeys) on every send; the staleness check still finds new devices.
    const self = peerUserId === this.#me.userId;
    if (!existingOnly && ((sessions.length === 0 && !self) || stale)) {
      sessions = await this.#refreshDevices(peerUserId, sessions, batch);
    }
    const envelopes: { to: string; body: Uint8Array }[] = [];
    for (const s of sessions) {
      if (onlyDevices && !onlyDevices.includes(s.peerDeviceId)) continue;
      const { session, body } = await this.#c.encryptToDevice(s, { messageId, content });
      await this.#stageSession(batch, session);
      envelopes.push({ to: s.peerDeviceId, body });
    }
    return envelopes;
  }

  /**
   * Fetches the user's device list: keeps sessions with listed devices, starts sessions with new ones, drops
   * sessions with devices that are gone. For our own account, this device is left out (and none is not an error).
   * With no session yet, one fetch takes a one-time prekey of every device; otherwise (and always for our own
   * account) the list is fetched without taking any, and a second fetch takes them for the new devices only, so
   * checking a contact's devices now and then does not use up their one-time prekeys.
   */
  async #refreshDevices(peerUserId: string, existing: Session[], batch: WriteBatch): Promise<Session[]> {
    const self = peerUserId === this.#me.userId;
    // Our own bundle lists this device too: never take from it, so the first fetch for ourselves takes none.
    const { bundle } = await this.fetchBundle(peerUserId, existing.length === 0 && !self ? 'all' : []);
    this.#checked.set(peerUserId, this.#now());
    let devices = bundle.devices.filter((d) => !(self && d.deviceId === this.#me.deviceId));
    const added = devices.filter((d) => !existing.some((s) => s.peerDeviceId === d.deviceId)).map((d) => d.deviceId);
    if ((existing.length > 0 || self) && added.length > 0) {
      // The new devices' entries come from a second answer, with their one-time prekeys (signed by the identity
      // key of the first answer, checked below: a relay that swaps keys between the two answers fails there).
      const fresh = (await this.fetchBundle(peerUserId, added)).bundle.devices;
      devices = devices.map((d) => fresh.find((f) => f.deviceId === d.deviceId) ?? d);
    }
    if (devices.length === 0 && !self) {
      throw new ClientError('no_devices', `${bundle.username} has no device that can receive messages yet.`);
    }
    const sessions: Session[] = [];
    for (const device of devices) {
      const known = existing.find((s) => s.peerDeviceId === device.deviceId);
      if (known) {
        sessions.push(known);
        continue;
      }
      const verified = this.#c.verifyPrekeyBundle({
        identityKey: bundle.identityKey,
        signedPrekey: device.signedPrekey,
        oneTimePrekey: device.oneTimePrekey,
      });
      this.#events.deviceAdded?.(peerUserId, device.deviceId);
      sessions.push(
        this.#c.initiateSession({
          identity: this.#keys.identity,
          localUserId: this.#me.userId,
          localDeviceId: this.#me.deviceId,
          peerUserId,
          peerDeviceId: device.deviceId,
          bundle: verified,
        }),
      );
    }
    for (const s of existing) {
      if (!devices.some((d) => d.deviceId === s.peerDeviceId)) {
        this.#store.stageDelete(batch, 'sessions', `${peerUserId}/${s.peerDeviceId}`);
      }
    }
    return sessions;
  }

  /**
   * Decrypts an opened envelope from a peer device: accepts a new session from a prekey message (checking the
   * sender's identity key against the one we trust, or the relay's when we never met them), else uses the
   * existing session. Stages the new session state and the used one-time prekey.
   */
  async decrypt(env: Envelope, batch: WriteBatch): Promise<{ content: Content; contact: Contact; session: Session }> {
    const existing = await this.#loadOne(env.senderUserId, env.senderDeviceId);
    if (!this.#c.isNewSession(existing, env)) {
      if (!existing)
        throw new ClientError('decrypt_failed', 'A message arrived for a session this device does not have');
      const { session, content } = this.#c.decryptFromDevice(existing, env);
      await this.#stageSession(batch, session);
      return { content, contact: await this.contact(env.senderUserId), session };
    }
    const info = this.#c.readPrekeyMessage(env.payload);
    let contact = await this.#store.contact(env.senderUserId);
    const claimed = this.#c.toBase64Url(info.identityKey);
    if (!contact || contact.restored || contact.identityKey !== claimed) {
      // Unknown sender, or a key different from the one we trust: ask the relay which key this account has now.
      contact = (await this.fetchBundle(env.senderUserId, [])).contact;
    }
    const signedPrekey = await this.#keys.signedPrekey(info.signedPrekeyId);
    if (!signedPrekey)
      throw new ClientError('decrypt_failed', 'The message names a signed prekey this device no longer has');
    const oneTimePrekey = info.oneTimePrekeyId === null ? null : await this.#keys.oneTimePrekey(info.oneTimePrekeyId);
    if (info.oneTimePrekeyId !== null && !oneTimePrekey) {
      throw new ClientError('decrypt_failed', 'The message names a one-time prekey that was already used');
    }
    const { session, content } = this.#c.acceptSession({
      identity: this.#keys.identity,
      localUserId: this.#me.userId,
      localDeviceId: this.#me.deviceId,
      envelope: env,
      signedPrekey,
      oneTimePrekey,
      expectedPeerIdentityKey: contact.identityKey,
    });
    await this.#stageSession(batch, session);
    if (info.oneTimePrekeyId !== null) this.#keys.stageUsedOneTimePrekey(batch, info.oneTimePrekeyId);
    if (!existing) this.#events.deviceAdded?.(env.senderUserId, env.senderDeviceId);
    return { content, contact, session };
  }
}
