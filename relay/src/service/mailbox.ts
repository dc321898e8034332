// Sending: a validated `message:send` becomes one durable commit (through the WriteBatcher) and live pushes, or,
// when ephemeral, a push to connected devices only. A stored send also records that its sender has written to its
// recipients (presence is shared along that); a resend nudges only the devices that still hold the first send.
// A direct send's envelopes to users who block its sender are dropped before anything is stored (see unblocked()).
import { RelayError } from '../errors.js';
import type { MessageSendPayload, RefusedRecipient } from '../protocol.js';
import type { MailboxEntry, SendTarget, Store } from '../store/store.js';
import type { BlockIndex } from './block-index.js';
import type { Delivery } from './delivery.js';
import type { TokenBuckets } from './rate-limit.js';
import type { AccessClaims } from './tokens.js';
import type { WriteBatcher } from './write-batcher.js';

/** (sender user, recipient device) pairs recently recorded as contacts, so a conversation costs no write per send. */
const RECENT_CONTACTS = 50_000;

export class MailboxService {
  /** Per sender user, the recipient devices recently recorded as its contacts; RECENT_CONTACTS pairs at most. */
  private readonly recentContacts = new Map<string, Set<string>>();
  private recentContactCount = 0;
  /** Links a stored send's `blobs` to it (issue #15; the BlobService). Called only for sends that name blobs. */
  linkBlobs: ((sender: AccessClaims, blobIds: string[], id: string, ts: number) => Promise<void>) | undefined;

  constructor(
    private readonly store: Store,
    private readonly blockIndex: Pick<BlockIndex, 'mayBeBlocked'>,
    private readonly batcher: WriteBatcher,
    private readonly delivery: Delivery,
    private readonly now: () => number,
    private readonly onError: (err: unknown) => void = () => undefined,
    /** Told the users a sender has just written to (the PresenceService lets them see the sender). */
    private readonly onContacts: (fromUserId: string, toUserIds: string[]) => void = () => undefined,
    /**
     * Per account, the devices its sends may reach (SEND_DELIVERIES_*), one bucket for stored sends and one for
     * ephemeral ones (typing, receipts), so that the receipts of a busy group never hold back the account's
     * messages: a send is refused while its bucket owes, and charged what it reached once that is known. Per node.
     */
    private readonly deliveries?: { stored: TokenBuckets; ephemeral: TokenBuckets },
  ) {}

  /**
   * Returns the send's ts: when it was committed (ephemeral: when it was relayed), and the recipient devices it was
   * refused for (full mailboxes) when it was stored for others. Refused for all: throws `mailbox_full`.
   */
  async send(sender: AccessClaims, payload: MessageSendPayload): Promise<{ ts: number; refused?: RefusedRecipient[] }> {
    const budget = payload.ephemeral === true ? this.deliveries?.ephemeral : this.deliveries?.stored;
    if (budget && !budget.has(sender.userId, this.now())) {
      throw new RelayError('rate_limited', 'this account’s messages reached too many devices lately; slow down');
    }
    let target: SendTarget;
    if ('envelopes' in payload) {
      // Most senders are blocked by nobody: then no promise is made (this runs for every message).
      const envelopes = this.unblocked(sender, payload.envelopes);
      target = { kind: 'direct', envelopes: envelopes instanceof Promise ? await envelopes : envelopes };
    } else {
      target = { kind: 'group', groupId: payload.group, body: asBytes(payload.body) };
    }
    // A direct send is charged every envelope it carried, those a block dropped included: what the limit answers
    // must not tell a sender that it is blocked.
    const submitted = 'envelopes' in payload ? payload.envelopes.length : undefined;
    if (payload.ephemeral === true) return this.relayEphemeral(sender, payload.id, target, submitted);

    // A direct send's contacts are recorded before its commit, so that a recipient who watches the sender as soon as
    // the message arrives (on any node) is allowed to; a group's recipients are known only once it is committed.
    if (target.kind === 'direct') {
      const fresh = this.freshContacts(sender.userId, target.envelopes, envelopeDevice);
      if (fresh) await this.recordContacts(sender.userId, fresh);
    }

    const outcome = await this.batcher.send({
      senderUserId: sender.userId,
      senderDeviceId: sender.deviceId,
      id: payload.id,
      target,
    });
    if (payload.blobs && this.linkBlobs && (outcome.status === 'stored' || outcome.status === 'duplicate')) {
      await this.linkBlobs(sender, payload.blobs, payload.id, outcome.ts);
    }
    switch (outcome.status) {
      case 'stored':
        budget?.charge(sender.userId, this.now(), submitted ?? outcome.entries.length);
        if (target.kind === 'group') {
          const fresh = this.freshContacts(sender.userId, outcome.entries, entryDevice);
          if (fresh) void this.recordContacts(sender.userId, fresh);
        }
        return outcome.refused
          ? { ts: outcome.ts, refused: outcome.refused.map((to) => ({ to, code: 'mailbox_full' as const })) }
          : { ts: outcome.ts };
      case 'mailbox_full':
        throw new RelayError('mailbox_full', "every recipient device's mailbox is full; nothing was stored");
      case 'too_large':
        throw new RelayError('payload_too_large', 'the send reaches too many devices to store as one message');
      case 'duplicate':
        // A resend: the first send may have been stored by a node that died before it pushed the entries live.
        this.nudgeRecipients(sender, payload.id, outcome.ts);
        return { ts: outcome.ts };
      case 'unknown_recipient':
        throw new RelayError('unknown_recipient', 'an envelope names a device that does not exist');
      case 'not_found':
        throw new RelayError('not_found', 'no such group');
      case 'forbidden':
        throw new RelayError('forbidden', 'only members can send to a group');
    }
  }

  /**
   * The envelopes of a direct send minus those to devices whose owner blocks the sender. The rest goes on as usual —
   * even when nothing is left: the send's id is then recorded with no entries, so the sender's answer (and that of a
   * resend) is the one of a stored send, and never tells it that it is blocked, nor that the mailbox is full.
   * A sender nobody blocks (the in-memory index says so) costs no store read.
   */
  private unblocked(
    sender: AccessClaims,
    envelopes: { to: string; body: Uint8Array | ArrayBuffer }[],
  ): Envelopes | Promise<Envelopes> {
    const all = envelopes.every((e) => e.body instanceof Uint8Array)
      ? (envelopes as Envelopes)
      : envelopes.map((e) => ({ to: e.to, body: asBytes(e.body) }));
    if (!this.blockIndex.mayBeBlocked(sender.userId)) return all;
    return this.store
      .devicesBlocking(
        sender.userId,
        all.map((e) => e.to),
      )
      .then((list) => {
        const blocked = new Set(list);
        return blocked.size === 0 ? all : all.filter((e) => !blocked.has(e.to));
      });
  }

  /**
   * The devices that still hold the first send's entries look in their mailboxes again (on any node). Only those:
   * the devices a resend names may be anyone's, and a device that acknowledged the entry has nothing to read.
   */
  private nudgeRecipients(sender: AccessClaims, id: string, ts: number): void {
    this.store.pendingRecipients(sender.deviceId, id, ts).then(
      (deviceIds) => {
        if (deviceIds.length > 0) this.delivery.resync(deviceIds);
      },
      () => undefined, // the nudge is an optimisation: the entries stay stored for the next connection
    );
  }

  /**
   * The recipient devices not recorded lately as contacts of the sender, each once; null when there are none (a
   * conversation costs no write, and no allocation, per send).
   */
  private freshContacts<T>(senderUserId: string, items: readonly T[], deviceOf: (item: T) => string): string[] | null {
    const known = this.recentContacts.get(senderUserId);
    let fresh = null as string[] | null;
    for (const item of items) {
      const d = deviceOf(item);
      if (known?.has(d) === true || fresh?.includes(d) === true) continue;
      (fresh ??= []).push(d);
    }
    return fresh;
  }

  /** Records the pairs and remembers them; a failure only loses presence. */
  private async recordContacts(senderUserId: string, fresh: string[]): Promise<void> {
    try {
      const owners = await this.store.recordContacts(senderUserId, fresh);
      if (owners.length > 0) this.onContacts(senderUserId, owners);
      if (this.recentContactCount + fresh.length > RECENT_CONTACTS) {
        this.recentContacts.clear();
        this.recentContactCount = 0;
      }
      let known = this.recentContacts.get(senderUserId);
      if (!known) this.recentContacts.set(senderUserId, (known = new Set()));
      for (const d of fresh) {
        if (known.has(d)) continue;
        known.add(d);
        this.recentContactCount++;
      }
    } catch (err) {
      this.onError(err);
    }
  }

  private async relayEphemeral(
    sender: AccessClaims,
    id: string,
    target: SendTarget,
    submitted: number | undefined,
  ): Promise<{ ts: number }> {
    const ts = this.now();
    if (target.kind === 'direct') {
      const unknown = await this.store.findUnknownDevices(target.envelopes.map((e) => e.to));
      if (unknown.length > 0)
        throw new RelayError('unknown_recipient', 'an envelope names a device that does not exist');
      for (const e of target.envelopes) this.delivery.offerEphemeral([e.to], { id, seq: 0, ts, body: e.body });
      this.deliveries?.ephemeral.charge(sender.userId, ts, submitted ?? target.envelopes.length);
      return { ts };
    }
    const recipients = await this.store.groupRecipients(target.groupId, sender.userId, sender.deviceId);
    if (recipients.status === 'not_found') throw new RelayError('not_found', 'no such group');
    if (recipients.status === 'forbidden') throw new RelayError('forbidden', 'only members can send to a group');
    this.delivery.offerEphemeral(recipients.deviceIds, { id, seq: 0, ts, body: target.body, group: target.groupId });
    this.deliveries?.ephemeral.charge(sender.userId, ts, recipients.deviceIds.length);
    return { ts };
  }
}

type Envelopes = { to: string; body: Uint8Array }[];
/** The recipient device of an envelope, and of a stored entry (made once, not per send). */
const envelopeDevice = (e: { to: string }): string => e.to;
const entryDevice = (e: MailboxEntry): string => e.deviceId;

/** Socket bodies arrive as Buffers in Node; an ArrayBuffer (never from msgpack here, but typed so) is wrapped. */
function asBytes(body: Uint8Array | ArrayBuffer): Uint8Array {
  return body instanceof Uint8Array ? body : new Uint8Array(body);
}
