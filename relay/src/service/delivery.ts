// Local fan-out: which devices are connected to this relay, and the delivery to each connection — first its
// mailbox in seq order, one acknowledged batch at a time, then live entries as they are committed.
import type { Logger } from 'pino';
import { LIMITS } from '../protocol.js';
import type { DeliveredMessage } from '../protocol.js';
import type { MailboxEntry, Store } from '../store/store.js';

/** One connection of a device, as delivery sees it (the socket layer implements it). */
export interface DeviceLink {
  readonly deviceId: string;
  /**
   * Emits one `messages` event. Resolves true when the client acknowledged it, false when the connection closed
   * or `ackTimeoutMs` passed first.
   */
  send(batch: DeliveredMessage[], ackTimeoutMs: number): Promise<boolean>;
}

/** Where acknowledged entries go to be deleted, and how to wait for queued writes (the WriteBatcher). */
export interface AckSink {
  ack(deviceId: string, seqs: number[]): void;
  idle(): Promise<void>;
}

export interface DeliveryOptions {
  store: Store;
  writes: AckSink;
  log: Logger;
  /** How long to wait for the ack of a mailbox batch before sending it again. */
  ackTimeoutMs?: number;
  /** Bytes of bodies per `messages` event (at least one entry per event). */
  batchBytes?: number;
}

/** Live entries held back while a connection's mailbox is still being sent; beyond this, read them again. */
const MAX_HELD = 1000;

const toWire = (e: MailboxEntry): DeliveredMessage => {
  const m: DeliveredMessage = { id: e.id, seq: e.seq, ts: e.ts, body: e.body };
  if (e.group !== undefined) m.group = e.group;
  return m;
};

/** Splits entries into `messages` events of at most LIMITS.mailboxBatch entries and about `maxBytes` of bodies. */
function batches(entries: MailboxEntry[], maxBytes: number): MailboxEntry[][] {
  const out: MailboxEntry[][] = [];
  let current: MailboxEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (current.length > 0 && (current.length >= LIMITS.mailboxBatch || bytes + e.body.length > maxBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += e.body.length;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** The delivery state of one connection. */
class Connection {
  /** Highest seq sent on this connection: anything at or below it is not sent again. */
  private lastSeq = 0;
  private live = false;
  private held: MailboxEntry[] = [];
  private heldOverflow = false;
  closed = false;

  constructor(
    readonly link: DeviceLink,
    private readonly d: Required<Omit<DeliveryOptions, 'log'>> & { log: Logger },
  ) {}

  /** Sends the stored mailbox in order, one acknowledged batch at a time, then switches to live delivery. */
  async start(): Promise<void> {
    await this.d.writes.idle(); // acks and sends queued before this connection are committed first
    for (;;) {
      for (;;) {
        if (this.closed) return;
        const entries = await this.d.store.fetchMailbox(
          this.link.deviceId,
          this.lastSeq,
          LIMITS.mailboxBatch,
          this.d.batchBytes,
        );
        if (this.closed || entries.length === 0) break;
        const last = entries.at(-1)?.seq ?? this.lastSeq;
        const acked = await this.link.send(entries.map(toWire), this.d.ackTimeoutMs);
        // An ack counts even when the connection closed right after it (both can arrive in one read).
        if (acked) {
          this.lastSeq = last;
          this.d.writes.ack(
            this.link.deviceId,
            entries.map((e) => e.seq),
          );
        }
        // Unacknowledged within the timeout: the same batch is read and sent again.
      }
      if (this.closed) return;
      if (this.heldOverflow) {
        // Too much arrived meanwhile to hold in memory: it is all stored, so read on.
        this.heldOverflow = false;
        this.held = [];
        continue;
      }
      this.live = true;
      const held = this.held;
      this.held = [];
      this.push(held);
      return;
    }
  }

  /** Entries committed for this device, in seq order. */
  offer(entries: MailboxEntry[]): void {
    if (this.closed) return;
    if (!this.live) {
      if (this.held.length + entries.length > MAX_HELD) {
        this.heldOverflow = true;
        this.held = [];
      } else if (!this.heldOverflow) {
        this.held.push(...entries);
      }
      return;
    }
    this.push(entries);
  }

  private push(entries: MailboxEntry[]): void {
    const fresh = entries.filter((e) => e.seq > this.lastSeq);
    if (fresh.length === 0) return;
    this.lastSeq = fresh.at(-1)?.seq ?? this.lastSeq;
    for (const batch of batches(fresh, this.d.batchBytes)) {
      this.link.send(batch.map(toWire), this.d.ackTimeoutMs).then(
        (acked) => {
          // Unacknowledged live entries stay stored and come again with the next connection's mailbox.
          if (acked)
            this.d.writes.ack(
              this.link.deviceId,
              batch.map((e) => e.seq),
            );
        },
        (err: unknown) => this.d.log.warn({ err }, 'live delivery failed'),
      );
    }
  }
}

export class Delivery {
  private readonly connections = new Map<string, Set<Connection>>();
  private readonly d: Required<Omit<DeliveryOptions, 'log'>> & { log: Logger };

  constructor(options: DeliveryOptions) {
    this.d = { ackTimeoutMs: 30_000, batchBytes: 1024 * 1024, ...options };
  }

  /** Registers a connection and starts sending its mailbox; call the returned function on disconnect. */
  attach(link: DeviceLink): () => void {
    const connection = new Connection(link, this.d);
    let set = this.connections.get(link.deviceId);
    if (!set) {
      set = new Set();
      this.connections.set(link.deviceId, set);
    }
    set.add(connection);
    connection.start().catch((err: unknown) => this.d.log.error({ err }, 'mailbox delivery failed'));
    return () => {
      connection.closed = true;
      const current = this.connections.get(link.deviceId);
      current?.delete(connection);
      if (current?.size === 0) this.connections.delete(link.deviceId);
    };
  }

  isConnected(deviceId: string): boolean {
    return this.connections.has(deviceId);
  }

  /** Stored entries just committed (any devices, seq order): pushed to the connected ones. */
  offer(entries: MailboxEntry[]): void {
    const byDevice = new Map<string, MailboxEntry[]>();
    for (const e of entries) {
      if (!this.connections.has(e.deviceId)) continue;
      const list = byDevice.get(e.deviceId);
      if (list) list.push(e);
      else byDevice.set(e.deviceId, [e]);
    }
    for (const [deviceId, list] of byDevice) {
      for (const connection of this.connections.get(deviceId) ?? []) connection.offer(list);
    }
  }

  /** An ephemeral message (never stored, seq 0) to the connected ones of these devices; the rest miss it. */
  offerEphemeral(deviceIds: string[], message: DeliveredMessage): void {
    for (const deviceId of deviceIds) {
      for (const connection of this.connections.get(deviceId) ?? []) {
        connection.link
          .send([message], this.d.ackTimeoutMs)
          .catch((err: unknown) => this.d.log.warn({ err }, 'ephemeral delivery failed'));
      }
    }
  }
}
