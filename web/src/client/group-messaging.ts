// GroupMessaging: group messages with sender keys — distribute our key to members who lack it, encrypt each message
// once, send it as `{id, group, body}`; receive by finding the sender's record by (sender user, sender device,
// distribution id) from the signed header, check the sender is a current member and the signed message id is the
// relay entry's, verify and decrypt. Typing goes the same way, as an ephemeral group send; receipts go pairwise to
// each message's author (receipts.ts), and a group receipt of an older client is still taken.

import type { Session } from '@weconnect/crypto';
import { newMessageId } from './bytes';
import { TYPING_SHOW_MS, encoder, hasCode, parseJson, type EngineContext } from './context';
import { ClientError, describeError } from './errors';
import type { OwnGroupKey } from './groups';
import type { Delivered } from './inbound';
import { type ReceivedMessage } from '@weconnect/relay/protocol';
import {
  actionPayloadSchema,
  chatPayloadSchema,
  controlPayloadSchema,
  type ActionPayload,
  type ControlPayload,
} from './schemas';
import { WriteBatch } from './store';
import { richFields } from './actions';
import type { GroupInfo } from './types';

export class GroupMessaging {
  readonly #ctx: EngineContext;
  /** Every group ciphertext this engine sent, oldest first (for tests). */
  readonly sentBodies: Uint8Array[] = [];

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /** One queued group message: distribute our sender key to members who lack it, encrypt once, send, tick. */
  async flushRow(
    row: { id: string; conv: string; created: number },
    queuedBody: Uint8Array | undefined,
    group: GroupInfo,
    action?: ActionPayload,
  ): Promise<'next' | 'stop'> {
    const ctx = this.#ctx;
    const outbound = ctx.parts.outbound;
    if (group.left) {
      await outbound.failOutgoing(row.id, row.conv, 'you are no longer a member of this group');
      return 'next';
    }
    let body: Uint8Array | null | undefined = queuedBody;
    if (!body) {
      try {
        body = await ctx.queue.run(`group:${row.conv}`, async () => {
          // The members as they are now: a removal handled while this send waited for the queue has rotated our key,
          // and the new key must not go to the member who was removed.
          const members = this.#membersNow(row.conv);
          if (!members) return null;
          const own = await this.#distribute(row.conv, members);
          const payload = action ?? (await outbound.chatPayloadOf(row.id, row.created));
          const out = ctx.c.encryptGroupMessage(own.key, {
            messageId: row.id,
            content: { kind: 'chat', body: encoder.encode(JSON.stringify(payload)) },
          });
          const batch = new WriteBatch();
          await ctx.groupKeys.stageOwn(batch, row.conv, { ...own, key: out.senderKey });
          await ctx.store.stageOutbox(batch, row.id, row.conv, row.created, {
            envelopes: null,
            groupBody: out.body,
            ...(action ? { action } : {}),
          });
          await ctx.store.commit(batch);
          return out.body;
        });
      } catch (e) {
        if (e instanceof ClientError && e.code === 'relay_unreachable') return 'stop';
        await outbound.failOutgoing(row.id, row.conv, describeError(e));
        return 'next';
      }
      if (!body) {
        await outbound.failOutgoing(row.id, row.conv, 'you are no longer a member of this group');
        return 'next';
      }
    }
    this.sentBodies.push(body);
    let ack;
    try {
      const blobs = action ? undefined : await outbound.blobsOf(row.id);
      ack = await ctx.transport.send({ id: row.id, group: row.conv, body, ...(blobs ? { blobs } : {}) });
    } catch {
      return 'stop';
    }
    if (ctx.deps.dangerousTestOnlyDropSendAcks) return 'next';
    if (ack.ok) {
      // Devices whose mailboxes were full get a copy later, pairwise (Outbound.stageRefused).
      const refused = ack.refused?.map((r) => r.to) ?? [];
      const entry = { envelopes: null, ...(action ? { action } : {}) };
      const stage =
        refused.length > 0 ? (batch: WriteBatch) => outbound.stageRefused(batch, row, entry, refused) : undefined;
      await outbound.acknowledged(row.id, row.conv, stage);
    } else if (ack.error.code === 'rate_limited') {
      outbound.retryLater();
      return 'stop';
    } else await outbound.failOutgoing(row.id, row.conv, ack.error.message);
    return 'next';
  }

  /**
   * Our sender key for the group, after sending it (pairwise, stored sends) to every member who does not have it
   * yet. Runs inside the group's queue; each member is recorded as soon as the relay accepted their copy.
   */
  async #distribute(groupId: string, members: readonly string[]): Promise<OwnGroupKey> {
    const ctx = this.#ctx;
    const own = await ctx.groupKeys.own(groupId);
    const sentTo = [...own.sentTo];
    const devices = [...own.devices];
    // Our own other devices get it too (the relay fans group messages out to them as well).
    for (const peer of members) {
      if (sentTo.includes(peer)) continue;
      const sent = await ctx.parts.outbound.sendPairwiseNow(peer, {
        kind: 'sender_key',
        body: ctx.c.senderKeyDistribution(own.key),
      });
      // A member with a device whose mailbox was full gets the key again with our next group send (until it has
      // room); the device is recorded either way, so that a group send refused for it is copied to it pairwise.
      if (sent.refused.length === 0) sentTo.push(peer);
      for (const d of [...sent.to, ...sent.refused])
        if (!devices.includes(`${peer}/${d}`)) devices.push(`${peer}/${d}`);
      const batch = new WriteBatch();
      await ctx.groupKeys.stageOwn(batch, groupId, { key: own.key, sentTo, devices });
      await ctx.store.commit(batch);
    }
    return { key: own.key, sentTo, devices };
  }

  /**
   * A device of `userId` we had no session with: if it belongs to a member of a group whose members already hold
   * our sender key, it gets the key too (pairwise, that device only), so its first group messages decrypt. A new
   * device of our own also gets each group's name and members. No rotation: nobody lost access.
   * Called from inside the peer's queue: the work is queued, never awaited here.
   */
  deviceAdded(userId: string, deviceId: string): void {
    for (const conv of this.#ctx.convs.values()) {
      const group = conv.group;
      if (!group || group.left || !group.members.some((m) => m.userId === userId)) continue;
      void this.#sendToNewDevice(conv.conv, userId, deviceId).catch((e: unknown) =>
        console.warn('a sender key was not sent to a new device:', describeError(e)),
      );
    }
  }

  async #sendToNewDevice(groupId: string, userId: string, deviceId: string): Promise<void> {
    const ctx = this.#ctx;
    const outbound = ctx.parts.outbound;
    const slot = `${userId}/${deviceId}`;
    // What to send is decided in the group's queue; the sends happen outside it, so that the group's own sends do
    // not wait behind these. (Inside would not deadlock: inbound.ts handles group info after releasing the peer's
    // queue, and a group send takes the group's queue, then the peer's, as `#distribute` does.)
    const plan = await ctx.queue.run(`group:${groupId}`, async () => {
      const current = ctx.convs.get(groupId)?.group;
      if (!current || current.left) return null;
      const own = await ctx.groupKeys.peekOwn(groupId);
      const tell = userId === ctx.me.userId && !current.placeholder;
      // A member who never got our key gets it, on every device, with our next group send.
      const share = own && own.sentTo.includes(userId) && !own.devices.includes(slot);
      return {
        info: tell ? ctx.parts.membership.infoPayload(groupId, current) : null,
        picture: tell && current.picture ? ctx.parts.membership.picturePayload(groupId, current.picture, true) : null,
        key: share
          ? { body: ctx.c.senderKeyDistribution(own.key), id: ctx.c.toBase64Url(own.key.distributionId) }
          : null,
      };
    });
    if (!plan) return;
    if (plan.info) await outbound.sendPairwiseNow(userId, { kind: 'chat', body: plan.info }, [deviceId]);
    if (plan.picture) await outbound.sendPairwiseNow(userId, { kind: 'chat', body: plan.picture }, [deviceId]);
    const key = plan.key;
    if (!key) return;
    const reached = await outbound.sendPairwiseNow(userId, { kind: 'sender_key', body: key.body }, [deviceId]);
    if (reached.to.length === 0) return;
    await ctx.queue.run(`group:${groupId}`, async () => {
      const latest = await ctx.groupKeys.peekOwn(groupId);
      // Rotated meanwhile: the new key goes to every device with the next send.
      if (!latest || ctx.c.toBase64Url(latest.key.distributionId) !== key.id || latest.devices.includes(slot)) return;
      const batch = new WriteBatch();
      await ctx.groupKeys.stageOwn(batch, groupId, { ...latest, devices: [...latest.devices, slot] });
      await ctx.store.commit(batch);
    });
  }

  /** Sends our sender key to every member of the group who does not hold it yet (before any message). */
  async shareKey(groupId: string): Promise<void> {
    await this.#ctx.queue.run(`group:${groupId}`, async () => {
      const members = this.#membersNow(groupId);
      if (members) await this.#distribute(groupId, members);
    });
  }

  /**
   * The group's members as memory holds them now, or null when we are not in it. Read inside the group's queue, where
   * a removal (which rotates our key) is handled: never a list taken before waiting for that queue.
   */
  #membersNow(groupId: string): string[] | null {
    const group = this.#ctx.convs.get(groupId)?.group;
    return group && !group.left ? group.members.map((m) => m.userId) : null;
  }

  /** An ephemeral group send (typing) under our sender key. */
  async sendControl(groupId: string, payload: ControlPayload): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx.convs.get(groupId)?.group) return;
    await ctx.queue.run(`group:${groupId}`, async () => {
      const members = this.#membersNow(groupId);
      if (!members) return;
      const own = await this.#distribute(groupId, members);
      const id = newMessageId();
      const out = ctx.c.encryptGroupMessage(own.key, {
        messageId: id,
        content: { kind: 'control', body: encoder.encode(JSON.stringify(payload)) },
      });
      const batch = new WriteBatch();
      await ctx.groupKeys.stageOwn(batch, groupId, { ...own, key: out.senderKey });
      await ctx.store.commit(batch);
      await ctx.transport.send({ id, group: groupId, body: out.body, ephemeral: true }).catch(() => undefined);
    });
  }

  /**
   * A sender-key distribution that arrived pairwise on `session`; staged only for a current member's new key. The
   * crypto library refuses one that names a sender other than the session's peer user and device.
   */
  async acceptDistribution(batch: WriteBatch, session: Session, body: Uint8Array): Promise<void> {
    const ctx = this.#ctx;
    try {
      const record = ctx.c.acceptSenderKeyDistribution(session, body);
      const g = ctx.convs.get(record.groupId)?.group;
      const known = await ctx.groupKeys.record(record.groupId, {
        senderUserId: record.senderUserId,
        senderDeviceId: record.senderDeviceId,
        distributionId: ctx.c.toBase64Url(record.distributionId),
      });
      // Only a current member's key is kept; a re-sent distribution never replaces the record we advanced.
      if (g && !g.left && g.members.some((m) => m.userId === record.senderUserId) && !known) {
        await ctx.groupKeys.stageRecord(batch, record);
      }
    } catch (e) {
      console.warn('a sender-key distribution was refused:', describeError(e));
    }
  }

  /**
   * One group mailbox entry: read the sender and message id from the signed header, refuse a body the relay
   * delivered under another id than the one it was signed with (as the pairwise path does), find the sender's
   * record by (sender user, sender device, distribution id), verify and decrypt, store.
   */
  async receive(groupId: string, entry: ReceivedMessage): Promise<Delivered> {
    const ctx = this.#ctx;
    const batch = new WriteBatch();
    ctx.store.stageSeen(batch, entry.id, ctx.now());
    const conv = ctx.convs.get(groupId);
    let header;
    try {
      header = ctx.c.readGroupMessageHeader(entry.body);
      if (header.messageId !== entry.id) throw new ClientError('decrypt_failed', 'message id mismatch');
    } catch {
      // Not a group body, or one re-delivered under an id of the relay's: nothing is stored under that id.
      ctx.notice('error', 'A group message could not be decrypted (its header did not check out) and was dropped.');
      await ctx.store.commit(batch);
      return null;
    }
    if (ctx.blocked.has(header.senderUserId)) {
      // A blocked member (as the header claims; a forged claim only gets its own message dropped): the relay fans
      // group messages out to every member, so this device drops them unread, and shows no "could not decrypt".
      await ctx.store.commit(batch);
      return null;
    }
    let message;
    try {
      const record = await ctx.groupKeys.record(groupId, header);
      if (!record) throw new ClientError('decrypt_failed', 'no sender key from this member');
      if (!conv?.group?.members.some((m) => m.userId === record.senderUserId)) {
        throw new ClientError('decrypt_failed', 'the sender is not a member of this group');
      }
      const out = ctx.c.decryptGroupMessage(record, { groupId, messageId: entry.id, body: entry.body });
      await ctx.groupKeys.stageRecord(batch, out.record);
      message = out.message;
    } catch (e) {
      if (e instanceof ClientError && e.code === 'relay_unreachable') throw e;
      if (!hasCode(e, 'duplicate_message') && entry.seq !== 0 && conv) {
        await ctx.storeIncoming(batch, groupId, conv.username, {
          id: entry.id,
          conv: groupId,
          mine: false,
          text: '',
          ts: entry.ts,
          status: 'delivered',
          failure: `This message could not be decrypted (${describeError(e)}).`,
        });
        ctx.notice('error', `A message in ${conv.username} could not be decrypted.`);
        return null;
      }
      await ctx.store.commit(batch);
      return null;
    }
    const from = message.senderUserId;
    const senderName = conv.group?.members.find((m) => m.userId === from)?.username ?? 'member';
    const { content } = message;
    if (content.kind === 'chat') {
      const json = parseJson(content.body);
      const action = actionPayloadSchema.safeParse(json);
      if (action.success) {
        const arrived = { conv: groupId, from, id: entry.id, ts: entry.ts, action: action.data };
        await ctx.parts.actions.receive(batch, arrived);
        return null;
      }
      const parsed = chatPayloadSchema.safeParse(json);
      await ctx.storeIncoming(batch, groupId, conv.username, {
        id: entry.id,
        conv: groupId,
        mine: false,
        text: parsed.success ? parsed.data.text : '',
        ts: entry.ts,
        status: 'delivered',
        sender: from,
        senderName,
        ...(parsed.success ? richFields(parsed.data) : { failure: 'This message has an unsupported format.' }),
      });
      ctx.clearTyping(groupId);
      return { conv: groupId, id: entry.id, from };
    }
    const parsed = content.kind === 'control' ? controlPayloadSchema.safeParse(parseJson(content.body)) : null;
    if (parsed?.success && parsed.data.type === 'typing') {
      await ctx.store.commit(batch);
      // Typing indicators off: none go out, and none show (reciprocal).
      if (ctx.snapshot.preferences.typingIndicators)
        ctx.set({
          typingUntil: { ...ctx.snapshot.typingUntil, [groupId]: ctx.now() + TYPING_SHOW_MS },
          typingName: { ...ctx.snapshot.typingName, [groupId]: senderName },
        });
    } else if (parsed?.success && parsed.data.type === 'receipt' && from !== ctx.me.userId) {
      // From a client older than pairwise group receipts (see Receipts.send).
      await ctx.parts.receipts.applyReceipt(batch, groupId, parsed.data.status, parsed.data.ids);
    } else {
      await ctx.store.commit(batch);
    }
    return null;
  }
}
