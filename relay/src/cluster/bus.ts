// What relay nodes tell each other, and the bus that carries it. One node needs no bus (LocalBus); several share
// one through Redis (RedisBus). The bus may lose events while Redis is away: the store stays the source of truth,
// and `onResume` tells each node to look there again.
import type { DeliveredMessage, PresenceUpdate } from '../protocol.js';
import type { MailboxEntry } from '../store/store.js';

export type ClusterEvent =
  /** Stored entries just committed (seq order): nodes push them to the devices connected to them. */
  | { type: 'entries'; entries: MailboxEntry[] }
  /** An ephemeral message for whichever of these devices are connected. */
  | { type: 'ephemeral'; deviceIds: string[]; message: DeliveredMessage }
  /** These devices may have stored entries their connections did not get live: read their mailboxes again. */
  | { type: 'resync'; deviceIds: string[] }
  /** A user came online or went offline (the real state; each node applies the user's sharing setting). */
  | { type: 'presence'; update: PresenceUpdate }
  /** These refresh families were revoked: drop their sockets (also sent through the Socket.IO adapter). */
  | {
      type: 'revoked';
      familyIds: string[];
      /** Removed devices: tell them (`device:removed`) before dropping. */ removed?: boolean;
    }
  /** A user changed sharePresence. */
  | { type: 'sharing'; userId: string; share: boolean }
  /** `blocker` started (`on`) or ended a block of `blocked`: their presence watchers see the hidden or real state. */
  | { type: 'block'; blocker: string; blocked: string; on: boolean }
  /** A node could not publish for a while: every node resyncs as after its own outage. */
  | { type: 'resume' };

export interface ClusterBus {
  readonly kind: 'local' | 'redis';
  /** Tells every other node. Resolves when the event has left (or could not: the bus logs, it never throws). */
  publish(event: ClusterEvent): Promise<void>;
  /** Events from other nodes, in the order each node published them. */
  onEvent(handler: (event: ClusterEvent) => void): void;
  /** After the bus was cut off and is back: events of the gap may be lost. */
  onResume(handler: () => void): void;
  close(): Promise<void>;
}

/** One node: there is nobody to tell. */
export class LocalBus implements ClusterBus {
  readonly kind = 'local' as const;
  publish(): Promise<void> {
    return Promise.resolve();
  }
  onEvent(): void {}
  onResume(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}
