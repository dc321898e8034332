// Sending: a validated `message:send` becomes one durable commit (through the WriteBatcher) and live pushes, or,
// when ephemeral, a push to connected devices only.
import { RelayError } from '../errors.js';
import type { MessageSendPayload, RefusedRecipient } from '../protocol.js';
import type { SendTarget, Store } from '../store/store.js';
import type { Delivery } from './delivery.js';
import type { AccessClaims } from './tokens.js';
import type { WriteBatcher } from './write-batcher.js';

export class MailboxService {
  constructor(
    private readonly store: Store,
    private readonly batcher: WriteBatcher,
    private readonly delivery: Delivery,
    private readonly now: () => number,
  ) {}

  /**
   * Returns the send's ts: when it was committed (ephemeral: when it was relayed), and the recipient devices it was
   * refused for (full mailboxes) when it was stored for others. Refused for all: throws `mailbox_full`.
   */
  async send(sender: AccessClaims, payload: MessageSendPayload): Promise<{ ts: number; refused?: RefusedRecipient[] }> {
    const target: SendTarget =
      'envelopes' in payload
        ? { kind: 'direct', envelopes: payload.envelopes.map((e) => ({ to: e.to, body: asBytes(e.body) })) }
        : { kind: 'group', groupId: payload.group, body: asBytes(payload.body) };
    if (payload.ephemeral === true) return this.relayEphemeral(sender, payload.id, target);

    const outcome = await this.batcher.send({
      senderUserId: sender.userId,
      senderDeviceId: sender.deviceId,
      id: payload.id,
      target,
    });
    switch (outcome.status) {
      case 'stored':
        return outcome.refused
          ? { ts: outcome.ts, refused: outcome.refused.map((to) => ({ to, code: 'mailbox_full' as const })) }
          : { ts: outcome.ts };
      case 'mailbox_full':
        throw new RelayError('mailbox_full', "every recipient device's mailbox is full; nothing was stored");
      case 'too_large':
        throw new RelayError('payload_too_large', 'the send reaches too many devices to store as one message');
      case 'duplicate':
        // A resend: the first send may have been stored by a node that died before it pushed the entries live.
        this.nudgeRecipients(sender, target);
        return { ts: outcome.ts };
      case 'unknown_recipient':
        throw new RelayError('unknown_recipient', 'an envelope names a device that does not exist');
      case 'not_found':
        throw new RelayError('not_found', 'no such group');
      case 'forbidden':
        throw new RelayError('forbidden', 'only members can send to a group');
    }
  }

  /** Recipients' connections (on any node) look in their mailboxes again; costs a read only for resends. */
  private nudgeRecipients(sender: AccessClaims, target: SendTarget): void {
    if (target.kind === 'direct') {
      this.delivery.resync(target.envelopes.map((e) => e.to));
      return;
    }
    this.store.groupRecipients(target.groupId, sender.userId, sender.deviceId).then(
      (recipients) => {
        if (recipients.status === 'ok') this.delivery.resync(recipients.deviceIds);
      },
      () => undefined, // the nudge is an optimisation: the entries stay stored for the next connection
    );
  }

  private async relayEphemeral(sender: AccessClaims, id: string, target: SendTarget): Promise<{ ts: number }> {
    const ts = this.now();
    if (target.kind === 'direct') {
      const unknown = await this.store.findUnknownDevices(target.envelopes.map((e) => e.to));
      if (unknown.length > 0)
        throw new RelayError('unknown_recipient', 'an envelope names a device that does not exist');
      for (const e of target.envelopes) this.delivery.offerEphemeral([e.to], { id, seq: 0, ts, body: e.body });
      return { ts };
    }
    const recipients = await this.store.groupRecipients(target.groupId, sender.userId, sender.deviceId);
    if (recipients.status === 'not_found') throw new RelayError('not_found', 'no such group');
    if (recipients.status === 'forbidden') throw new RelayError('forbidden', 'only members can send to a group');
    this.delivery.offerEphemeral(recipients.deviceIds, { id, seq: 0, ts, body: target.body, group: target.groupId });
    return { ts };
  }
}

/** Socket bodies arrive as Buffers in Node; an ArrayBuffer (never from msgpack here, but typed so) is wrapped. */
function asBytes(body: Uint8Array | ArrayBuffer): Uint8Array {
  return body instanceof Uint8Array ? body : new Uint8Array(body);
}
