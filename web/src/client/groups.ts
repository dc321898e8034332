// GroupKeys: this device's sender key per group and the sender-key records of other members' devices, sealed in the
// `secrets` store; plus the group-info payload (name and member names travel encrypted, pairwise).
//
// Rotation rule: our own key records which members already received it (`sentTo`). A member who leaves or is
// removed makes every remaining member drop its own key; the next group send creates a fresh one and distributes it,
// pairwise, to the remaining members only. Records of removed members are deleted at the same time.

import type { OwnSenderKey, SenderKeyRecord } from '@weconnect/crypto';
import { z } from 'zod';
import type { Crypto } from './crypto-loader';
import { relayIdSchema } from './schemas';
import type { LocalStore, WriteBatch } from './store';

/** `sentTo`: members (user ids) who got the key; `devices`: which of their devices did (`userId/deviceId`). */
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

/** Pairwise `chat`-kind payload that tells members a group's name and member names (the relay sees only ids). */
export const groupInfoPayloadSchema = z.object({
  v: z.literal(1),
  t: z.literal('group'),
  groupId: relayIdSchema,
  name: z.string().min(1).max(100),
  members: z.array(z.object({ userId: relayIdSchema, username: z.string().min(1).max(32) })).max(256),
});
export type GroupInfoPayload = z.infer<typeof groupInfoPayloadSchema>;

export class GroupKeys {
  readonly #c: Crypto;
  readonly #store: LocalStore;

  constructor(c: Crypto, store: LocalStore) {
    this.#c = c;
    this.#store = store;
  }

  /** Our sender key for the group (created when missing or after a rotation) and who already has it. */
  async own(groupId: string): Promise<OwnGroupKey> {
    const existing = await this.peekOwn(groupId);
    if (existing) return existing;
    const key = this.#c.createSenderKey(groupId);
    await this.#store.write('secrets', `gsk/${groupId}`, { key: this.#c.serializeOwnSenderKey(key), sentTo: [] });
    return { key, sentTo: [], devices: [] };
  }

  /** Our sender key for the group if we have one (nothing is created). */
  async peekOwn(groupId: string): Promise<OwnGroupKey | null> {
    const rec = await this.#store.read('secrets', `gsk/${groupId}`, ownKeySchema);
    if (!rec) return null;
    return { key: this.#c.deserializeOwnSenderKey(rec.key), sentTo: rec.sentTo, devices: rec.devices ?? [] };
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
    for (const key of await this.#store.keys('secrets', `gskr/${groupId}/`)) {
      const raw = await this.#store.read('secrets', key, z.unknown());
      if (raw === null) continue;
      const record = this.#c.deserializeSenderKeyRecord(raw);
      if (removed.includes(record.senderUserId)) this.#store.stageDelete(batch, 'secrets', key);
    }
  }

  /** Forgets everything about a group we are no longer in. */
  async forget(batch: WriteBatch, groupId: string): Promise<void> {
    this.#store.stageDelete(batch, 'secrets', `gsk/${groupId}`);
    for (const key of await this.#store.keys('secrets', `gskr/${groupId}/`))
      this.#store.stageDelete(batch, 'secrets', key);
  }

  async record(groupId: string, distributionId: string): Promise<SenderKeyRecord | null> {
    const raw = await this.#store.read('secrets', `gskr/${groupId}/${distributionId}`, z.unknown());
    return raw === null ? null : this.#c.deserializeSenderKeyRecord(raw);
  }

  async stageRecord(batch: WriteBatch, record: SenderKeyRecord): Promise<void> {
    const id = this.#c.toBase64Url(record.distributionId);
    await this.#store.stage(batch, 'secrets', `gskr/${record.groupId}/${id}`, this.#c.serializeSenderKeyRecord(record));
  }
}
