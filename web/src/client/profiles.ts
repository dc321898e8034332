// Profiles (Signal's profile-key model): this account's display name and picture, sealed with its profile key and
// stored on the relay as ciphertext; the key goes to contacts over the pairwise sessions (a `profile-key` control
// before the first message to them, and to every contact again after each save, which tells them to fetch it).
// A key is taken only from the user it belongs to (the authenticated sender of the session it arrived on), and what
// it opens is checked (name, picture) before anything shows.

import { profileAnswerSchema } from '@weconnect/relay/protocol';
import { z } from 'zod';
import { encoder, type EngineContext } from './context';
import { ClientError, describeError } from './errors';
import { PICTURE_MAX_BYTES, isAcceptablePicture } from './profile-picture';
import { backupKeySchema, relayIdSchema, type ControlPayload } from './schemas';
import type { ProfileView } from './types';

export const DISPLAY_NAME_MAX = 64;
/** Control characters and bidi overrides would let a name imitate another or hide text. */
const FORBIDDEN_IN_NAME = /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

/** A display name as shown: at most 64 characters, no control or bidi-override characters, no outer spaces. */
export const displayNameSchema = z
  .string()
  .refine((s) => [...s].length <= DISPLAY_NAME_MAX, `A display name is at most ${DISPLAY_NAME_MAX} characters.`)
  .refine((s) => !FORBIDDEN_IN_NAME.test(s) && s === s.trim(), 'The display name has characters that are not allowed.');

const bytes = z.instanceof(Uint8Array);
/** secrets ['profile', userId]: a contact's key and the profile it last opened (our own: no key, it is derived). */
const profileRecordSchema = z.object({
  key: bytes.refine((k) => k.length === 32).optional(),
  name: displayNameSchema,
  picture: bytes.refine((p) => p.length <= PICTURE_MAX_BYTES).nullable(),
});
/** secrets ['profile-shared', userId]: our profile key went to this contact. */
const sharedSchema = z.object({ at: z.number() });

export class Profiles {
  readonly #ctx: EngineContext;
  /** Contacts whose key we are sending now (a burst of sends shares one). */
  readonly #sharing = new Map<string, Promise<void>>();

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /** Puts every stored profile into the snapshot (at start). */
  async load(): Promise<void> {
    const ctx = this.#ctx;
    const profiles: Record<string, ProfileView> = {};
    for (const [, userId] of await ctx.store.keysUnder('secrets', ['profile'])) {
      if (userId === undefined || !relayIdSchema.safeParse(userId).success) continue;
      const record = await ctx.store.read('secrets', ['profile', userId], profileRecordSchema).catch(() => null);
      if (record) profiles[userId] = { name: record.name, picture: record.picture };
    }
    ctx.set({ profiles }, false);
  }

  /**
   * Seals and uploads our profile, then sends the profile key to every contact (one-to-one and group members),
   * which tells them to fetch it again. `picture` is the encoded 256 px square (null: none).
   */
  async save(name: string, picture: Uint8Array | null): Promise<void> {
    const ctx = this.#ctx;
    const checked = displayNameSchema.safeParse(name.trim());
    if (!checked.success) throw new ClientError('invalid_input', checked.error.issues[0]?.message ?? 'Bad name.');
    if (picture && !(await isAcceptablePicture(picture))) {
      throw new ClientError('invalid_input', 'The picture must be a JPEG, PNG or WebP image of at most 64 KiB.');
    }
    const key = await this.#ownKey();
    try {
      const sealed = ctx.c.sealProfile(key, ctx.me.userId, { name: checked.data, picture });
      await ctx.api.call('PUT', '/api/profile', null, { profile: ctx.c.toBase64Url(sealed) });
    } finally {
      key.fill(0);
    }
    await this.#remember(ctx.me.userId, { name: checked.data, picture });
    await this.#shareWithAll();
  }

  /** Refreshes our own profile from the relay (another device of ours may have changed it). */
  async refreshOwn(): Promise<void> {
    const key = await this.#ownKey(false).catch(() => null);
    if (!key) return;
    try {
      await this.#fetch(this.#ctx.me.userId, key);
    } finally {
      key.fill(0);
    }
  }

  /**
   * Before the first message to `conv` (a contact, or each member of a group): sends our profile key once, when we
   * have a profile. Never throws; a failed send is tried again before the next message.
   */
  async shareBeforeSending(conv: string): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx.snapshot.profiles[ctx.me.userId]) return;
    const group = ctx.convs.get(conv)?.group;
    const people = group ? group.members.map((m) => m.userId) : [conv];
    for (const userId of people) {
      if (userId === ctx.me.userId) continue;
      if (await ctx.store.read('secrets', ['profile-shared', userId], sharedSchema).catch(() => null)) continue;
      await this.#share(userId);
    }
  }

  /**
   * A session with a new device of `userId` was just made (inside their queue). When that user already has our key,
   * the new device gets it too (queued after the current holder of the queue, so never awaited here).
   */
  deviceAdded(userId: string, deviceId: string): void {
    const ctx = this.#ctx;
    if (userId === ctx.me.userId || !ctx.snapshot.profiles[ctx.me.userId]) return;
    void (async () => {
      if (!(await ctx.store.read('secrets', ['profile-shared', userId], sharedSchema))) return;
      const key = await this.#ownKey(false);
      const payload: ControlPayload = { v: 1, type: 'profile-key', userId: ctx.me.userId, key: ctx.c.toBase64Url(key) };
      key.fill(0);
      const body = encoder.encode(JSON.stringify(payload));
      await ctx.parts.outbound.sendPairwiseNow(userId, { kind: 'control', body }, [deviceId]);
    })().catch((e: unknown) => console.warn('profile key not sent to a new device:', describeError(e)));
  }

  /**
   * A `profile-key` control that decrypted on a session with `from`. Taken only when it names `from` itself: a key
   * passed on by anyone else (a contact forwarding another's key, our own devices) is dropped. Runs inside the
   * sender's queue: stores the key, and fetches the profile after (no network inside the queue).
   */
  async onProfileKey(from: string, control: Extract<ControlPayload, { type: 'profile-key' }>): Promise<void> {
    const ctx = this.#ctx;
    if (from === ctx.me.userId || control.userId !== from) return;
    let key: Uint8Array;
    try {
      key = ctx.c.fromBase64Url(control.key, 32, 'key');
    } catch {
      return;
    }
    const existing = await ctx.store.read('secrets', ['profile', from], profileRecordSchema).catch(() => null);
    await ctx.store.write('secrets', ['profile', from], { name: '', picture: null, ...existing, key });
    void this.#fetch(from, key).catch((e: unknown) => console.warn('profile not fetched:', describeError(e)));
  }

  async #ownKey(sync = true): Promise<Uint8Array> {
    const ctx = this.#ctx;
    let record = await ctx.store.read('secrets', 'backup-key', backupKeySchema);
    if (!record && sync) {
      await ctx.parts.trust.syncBackup();
      record = await ctx.store.read('secrets', 'backup-key', backupKeySchema);
    }
    if (!record) {
      throw new ClientError(
        'not_found',
        'Your account keys are not ready yet. Connect, unlock with your password, and try again.',
      );
    }
    return ctx.c.deriveProfileKey(record.key);
  }

  /** Fetches, opens and checks `userId`'s profile; shows it only if all of that succeeds. */
  async #fetch(userId: string, key: Uint8Array): Promise<void> {
    const ctx = this.#ctx;
    let answer;
    try {
      answer = await ctx.api.call('GET', `/api/users/${userId}/profile`, profileAnswerSchema);
    } catch (e) {
      if (e instanceof ClientError && e.code === 'not_found') return;
      throw e;
    }
    if (answer.userId !== userId) return;
    let opened;
    try {
      opened = ctx.c.openProfile(key, userId, ctx.c.fromBase64Url(answer.profile));
    } catch (e) {
      console.warn('a profile did not open and was ignored:', describeError(e));
      return;
    }
    const name = displayNameSchema.safeParse(opened.name);
    if (!name.success) return;
    const picture = opened.picture && (await isAcceptablePicture(opened.picture)) ? opened.picture : null;
    await this.#remember(userId, { name: name.data, picture }, userId === ctx.me.userId ? undefined : key);
  }

  async #remember(userId: string, view: ProfileView, key?: Uint8Array): Promise<void> {
    const ctx = this.#ctx;
    const record = { ...(key ? { key } : {}), name: view.name, picture: view.picture };
    await ctx.store.write('secrets', ['profile', userId], record);
    ctx.set({ profiles: { ...ctx.snapshot.profiles, [userId]: { name: view.name, picture: view.picture } } });
  }

  async #shareWithAll(): Promise<void> {
    const ctx = this.#ctx;
    const people = new Set<string>();
    for (const c of ctx.convs.values()) {
      if (!c.group) people.add(c.conv);
      else if (!c.group.left) for (const m of c.group.members) people.add(m.userId);
    }
    people.delete(ctx.me.userId);
    await Promise.all([...people].map((userId) => this.#share(userId)));
  }

  /** Sends our profile key to `userId`'s devices (a stored pairwise control); records it when the relay took it. */
  #share(userId: string): Promise<void> {
    const running = this.#sharing.get(userId);
    if (running) return running;
    const ctx = this.#ctx;
    const work = (async () => {
      const key = await this.#ownKey(false);
      const payload: ControlPayload = { v: 1, type: 'profile-key', userId: ctx.me.userId, key: ctx.c.toBase64Url(key) };
      key.fill(0);
      const body = encoder.encode(JSON.stringify(payload));
      const sent = await ctx.parts.outbound.sendPairwiseNow(userId, { kind: 'control', body });
      // Shared only once every device took it: a device whose mailbox was full gets it the next time.
      if (sent.to.length > 0 && sent.refused.length === 0) {
        await ctx.store.write('secrets', ['profile-shared', userId], { at: ctx.now() });
      }
    })()
      .catch((e: unknown) => console.warn('profile key not sent:', describeError(e)))
      .finally(() => this.#sharing.delete(userId));
    this.#sharing.set(userId, work);
    return work;
  }
}
