// GroupKeys: this device's sender key per group and the sender-key records of other members' devices, sealed in the
// `secrets` store; plus the group-info payload (name and member names travel encrypted, pairwise).
//
// Records are stored under (group, sender user, sender device, distribution id), each part length-prefixed: a
// distribution id is the sender's choice, so keyed alone one member could squat another's slot.
//
// Rotation rule: our own key records which members already received it (`sentTo`). A member who leaves or is
// removed makes every remaining member drop its own key; the next group send creates a fresh one and distributes it,
// pairwise, to the remaining members only. Records of removed members are deleted at the same time.

import type { OwnSenderKey, SenderKeyRecord } from '@weconnect/crypto';
import { z } from 'zod';
import type { Crypto } from './crypto-loader';
import { relayIdSchema } from './schemas';
import type { LocalStore, WriteBatch } from './store';

/**
 * `sentTo`: members (user ids) whose every device took the key; `devices`: the devices it was sent to
 * (`userId/deviceId`), one whose mailbox was full included (its member is then not in `sentTo`, and gets it again).
 */
const ownKeySchema = z.object({
  key: z.unknown(),
  sentTo: z.array(z.string()),
  devices: z.array(z.string()).max(10_000).optional(),
});

/** Our sender key for a group and who already holds it. */
export interface OwnGroupKey {
  key: OwnSenderKey;
  sentTo: string[];
  devices: string[];
}

const userIds = z.array(relayIdSchema).min(1).max(256);

/**
 * What the sender of a group-info payload did (the actor is always the authenticated pairwise sender, never a
 * field). Receivers check each claim against the relay's group answer before showing it as a notice.
 */
export const groupEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('created') }),
  z.object({ type: z.literal('added'), users: userIds }),
  z.object({ type: z.literal('removed'), users: userIds }),
  z.object({ type: z.literal('left') }),
  z.object({ type: z.literal('renamed') }),
  z.object({ type: z.literal('admin'), users: userIds, admin: z.boolean() }),
]);
export type GroupEvent = z.infer<typeof groupEventSchema>;

/** Pairwise `chat`-kind payload that tells members a group's name and member names (the relay sees only ids). */
export const groupInfoPayloadSchema = z.object({
  v: z.literal(1),
  t: z.literal('group'),
  groupId: relayIdSchema,
  name: z.string().min(1).max(100),
  members: z.array(z.object({ userId: relayIdSchema, username: z.string().min(1).max(32) })).max(256),
  /** Absent from clients before events existed; such a payload changes the name only for a new member. */
  event: groupEventSchema.optional(),
});
export type GroupInfoPayload = z.infer<typeof groupInfoPayloadSchema>;

/**
 * Pairwise `chat`-kind payload with the group picture (base64url image bytes, or null: removed). Its own message,
 * because a picture and a 256-member list together would not fit one padded plaintext (32 KiB).
 */
export const groupPicturePayloadSchema = z.object({
  v: z.literal(1),
  t: z.literal('group-picture'),
  groupId: relayIdSchema,
  picture: z.string().max(32_100).nullable(),
  /** Sent to a member just added (the group's current picture, not a change): stored without a notice. */
  quiet: z.boolean().optional(),
});
export type GroupPicturePayload = z.infer<typeof groupPicturePayloadSchema>;

/** Either group payload (what inbound hands to GroupMembership). */
export const groupPayloadSchema = z.union([groupInfoPayloadSchema, groupPicturePayloadSchema]);
export type GroupPayload = z.infer<typeof groupPayloadSchema>;

/** `len:part` for each part: no id can end early or run into the next, whatever characters it holds. */
function lengthPrefixed(parts: readonly string[]): string {
  return parts.map((p) => `${p.length}:${p}`).join('');
}

/** Every record of one group starts with this (length-prefixed, so one group's prefix never covers another's). */
function recordPrefix(groupId: string): string {
  return `gsr/${lengthPrefixed([groupId])}`;
}

function recordKey(groupId: string, senderUserId: string, senderDeviceId: string, distributionId: string): string {
  return `gsr/${lengthPrefixed([groupId, senderUserId, senderDeviceId, distributionId])}`;
}

/** Records of sender-key format 1 lived here, keyed by distribution id alone; they are only ever deleted now. */
const legacyRecordPrefix = (groupId: string): string => `gskr/${groupId}/`;

export class GroupKeys {
  readonly #c: Crypto;
  readonly #store: LocalStore;
  readonly #me: { userId: string; deviceId: string };

  constructor(c: Crypto, store: LocalStore, me: { userId: string; deviceId: string }) {
    this.#c = c;
    this.#store = store;
    this.#me = me;
  }

  /** Our sender key for the group (created when missing or after a rotation) and who already has it. */
  async own(groupId: string): Promise<OwnGroupKey> {
    const existing = await this.peekOwn(groupId);
    if (existing) return existing;
    const key = this.#c.createSenderKey({
      groupId,
      senderUserId: this.#me.userId,
      senderDeviceId: this.#me.deviceId,
    });
    await this.#store.write('secrets', `gsk/${groupId}`, { key: this.#c.serializeOwnSenderKey(key), sentTo: [] });
    return { key, sentTo: [], devices: [] };
  }

  /**
   * Our sender key for the group if we have one (nothing is created). A key of the old format (it named no
   * sender) counts as none: the next send creates a new one and distributes it to every member — a rotation.
   */
  async peekOwn(groupId: string): Promise<OwnGroupKey | null> {
    const rec = await this.#store.read('secrets', `gsk/${groupId}`, ownKeySchema);
    if (!rec) return null;
    let key: OwnSenderKey;
    try {
      key = this.#c.deserializeOwnSenderKey(rec.key);
    } catch (e) {
      if (this.#c.isCryptoError(e, 'unsupported_version')) return null;
      throw e;
    }
    return { key, sentTo: rec.sentTo, devices: rec.devices ?? [] };
  }

  async stageOwn(batch: WriteBatch, groupId: string, own: OwnGroupKey): Promise<void> {
    await this.#store.stage(batch, 'secrets', `gsk/${groupId}`, {
      key: this.#c.serializeOwnSenderKey(own.key),
      sentTo: own.sentTo,
      devices: own.devices,
    });
  }

  /** Drops our key (the next send makes and distributes a new one) and every record of `removed` members. */
  async rotate(batch: WriteBatch, groupId: string, removed: readonly string[]): Promise<void> {
    this.#store.stageDelete(batch, 'secrets', `gsk/${groupId}`);
    await this.#dropLegacy(batch, groupId);
    for (const key of await this.#store.keys('secrets', recordPrefix(groupId))) {
      const raw = await this.#store.read('secrets', key, z.unknown());
      if (raw === null) continue;
      let senderUserId: string | null = null;
      try {
        senderUserId = this.#c.deserializeSenderKeyRecord(raw).senderUserId;
      } catch {
        // unreadable: dropped below like a removed member's
      }
      if (senderUserId === null || removed.includes(senderUserId)) this.#store.stageDelete(batch, 'secrets', key);
    }
  }

  /** Forgets everything about a group we are no longer in. */
  async forget(batch: WriteBatch, groupId: string): Promise<void> {
    this.#store.stageDelete(batch, 'secrets', `gsk/${groupId}`);
    await this.#dropLegacy(batch, groupId);
    for (const key of await this.#store.keys('secrets', recordPrefix(groupId)))
      this.#store.stageDelete(batch, 'secrets', key);
  }

  async #dropLegacy(batch: WriteBatch, groupId: string): Promise<void> {
    for (const key of await this.#store.keys('secrets', legacyRecordPrefix(groupId)))
      this.#store.stageDelete(batch, 'secrets', key);
  }

  /** The record of one sender device's key, found by all three of (sender user, sender device, distribution id). */
  async record(
    groupId: string,
    sender: { senderUserId: string; senderDeviceId: string; distributionId: string },
  ): Promise<SenderKeyRecord | null> {
    const key = recordKey(groupId, sender.senderUserId, sender.senderDeviceId, sender.distributionId);
    const raw = await this.#store.read('secrets', key, z.unknown());
    if (raw === null) return null;
    const record = this.#c.deserializeSenderKeyRecord(raw);
    // The vault binds the value to its slot; this also holds if a record was ever written under a wrong key.
    if (record.senderUserId !== sender.senderUserId || record.senderDeviceId !== sender.senderDeviceId) return null;
    return record;
  }

  async stageRecord(batch: WriteBatch, record: SenderKeyRecord): Promise<void> {
    const id = this.#c.toBase64Url(record.distributionId);
    const key = recordKey(record.groupId, record.senderUserId, record.senderDeviceId, id);
    await this.#store.stage(batch, 'secrets', key, this.#c.serializeSenderKeyRecord(record));
  }
}
