// Fan-out: which devices are connected to this relay, and the delivery to each connection — first its mailbox in
// seq order, one acknowledged batch at a time, then live entries as they are committed, on this node or (through
// the cluster bus) on another. The store is the source of truth: whenever live pushes may have been missed — an
// entry committed by another node with a lower seq than one already sent, a bus outage, a resent message — the
// connection reads its mailbox again and sends what it has not got.
// Backpressure: a connection has at most `windowBytes` of live bodies unacknowledged; entries committed beyond that
// (or whose push failed) stay in the mailbox, and are read and sent once its pushes are settled.
import type { Logger } from 'pino';
import type { ClusterBus } from '../cluster/bus.js';
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
  /** `now`: commit with the next write batch, not held for a send (a mailbox batch's ack; see WriteBatcher). */
  ack(deviceId: string, seqs: number[], now?: boolean): void;
  idle(): Promise<void>;
}

export interface DeliveryOptions {
  store: Store;
  writes: AckSink;
  bus: ClusterBus;
  log: Logger;
  /** How long to wait for the ack of a mailbox batch before sending it again. */
  ackTimeoutMs?: number;
  /** Bytes of bodies per `messages` event (at least one entry per event). */
  batchBytes?: number;
  /**
   * Bytes of live bodies a connection may leave unacknowledged (at least one batch); also the bound on the bodies
   * held in memory while its stored mailbox is being sent.
   */
  windowBytes?: number;
}

/** Live entries held back while a connection's mailbox is still being sent; beyond this, read them again. */
const MAX_HELD = 1000;
/** How long, and how many, seqs delivered by a read behind the live stream are remembered (see Connection.resent). */
const RESENT_KEEP_MS = 60_000;
const MAX_RESENT = 4096;
/** The empty `held` list, shared (never mutated): an idle connection allocates none. */
const NONE: MailboxEntry[] = [];

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
  /** Highest seq read and acknowledged while sending the stored mailbox. */
  private cursor = 0;
  private live = false;
  /** Entries offered while the mailbox was still being sent. */
  private held: MailboxEntry[] = NONE;
  private heldBytes = 0;
  private heldOverflow = false;
  /** Bytes of bodies of live pushes not yet settled. */
  private liveUnacked = 0;
  /** Entries were left in the mailbox (window full, or a push failed): read it again once the live pushes settle. */
  private behind = false;
  /** Set by resync() before the connection is live: the switch to live then reads the whole mailbox again. */
  private resyncWanted = false;
  /** Live and resent entries sent on this connection whose ack has not come (a resync skips them). */
  private inFlight: Set<number> | null = null; // made when needed: an idle connection holds none
  private resyncing: Promise<void> | null = null;
  /** A resync is queued and has not started: another nudge adds nothing. */
  private resyncQueued = false;
  /**
   * Seqs that a read behind the live stream (a resync, a late commit) delivered, kept for RESENT_KEEP_MS: the live
   * offer of the same commit may still be on its way over the bus, and must not push it a second time.
   */
  private resent: Set<number> | null = null;
  private resentTimer: NodeJS.Timeout | null = null;
  closed = false;

  constructor(
    readonly link: DeviceLink,
    private readonly d: Required<Omit<DeliveryOptions, 'log' | 'bus'>> & { log: Logger },
  ) {}

  /** Sends the stored mailbox in order, one acknowledged batch at a time, then switches to live delivery. */
  async start(): Promise<void> {
    await this.d.writes.idle(); // acks and sends queued before this connection are committed first
    for (;;) {
      await this.sendStored(this.cursor, Infinity, true);
      if (this.closed) return;
      if (!this.heldOverflow) break;
      // Too much arrived meanwhile to hold in memory: it is all stored, so read on (and look behind the cursor).
      this.heldOverflow = false;
      this.held = NONE;
      this.heldBytes = 0;
      this.resyncWanted = true;
    }
    // Held entries at or below the cursor were either read above (and are acknowledged, so deleted once the
    // writes are idle) or committed late by another node with an older seq: the store tells which.
    const late = this.held.filter((e) => e.seq <= this.cursor);
    const fresh = this.held.filter((e) => e.seq > this.cursor);
    this.held = NONE;
    this.heldBytes = 0;
    if (late.length > 0 || this.resyncWanted) {
      const from = this.resyncWanted ? 0 : Math.min(...late.map((e) => e.seq)) - 1;
      this.resyncWanted = false;
      await this.d.writes.idle();
      await this.sendStored(from, this.cursor, false);
      if (this.closed) return;
    }
    this.live = true;
    const meanwhile = this.held;
    this.held = NONE;
    this.heldBytes = 0;
    this.push([...fresh, ...meanwhile]);
  }

  /** Entries committed for this device (in seq order per committing node). */
  offer(entries: MailboxEntry[]): void {
    if (this.closed) return;
    if (!this.live) {
      if (this.heldOverflow) return;
      const bytes = entries.reduce((sum, e) => sum + e.body.length, 0);
      if (this.held.length + entries.length > MAX_HELD || this.heldBytes + bytes > this.d.windowBytes) {
        this.heldOverflow = true;
        this.held = NONE;
        this.heldBytes = 0;
      } else {
        this.held = this.held === NONE ? [...entries] : this.held.concat(entries);
        this.heldBytes += bytes;
      }
      return;
    }
    this.push(entries);
  }

  /** Live pushes may have been missed: read the mailbox again and send what is not on its way. */
  resync(): void {
    if (this.closed) return;
    if (!this.live) {
      this.resyncWanted = true;
      return;
    }
    // One read waits behind the one running, whatever the number of nudges: it reads everything stored anyway.
    if (this.resyncQueued) return;
    this.resyncQueued = true;
    this.resyncing = (this.resyncing ?? Promise.resolve())
      .then(async () => {
        this.resyncQueued = false;
        await this.d.writes.idle();
        await this.sendStored(0, Infinity, false);
      })
      .catch((err: unknown) => this.d.log.warn({ err }, 'mailbox resync failed'));
  }

  /**
   * Sends stored entries with from < seq <= upTo that are not in flight, one acknowledged batch at a time (an
   * unacknowledged batch is read and sent again). `advance` moves the mailbox cursor.
   */
  private async sendStored(from: number, upTo: number, advance: boolean): Promise<void> {
    let after = from;
    for (;;) {
      if (this.closed) return;
      const read = await this.d.store.fetchMailbox(this.link.deviceId, after, LIMITS.mailboxBatch, this.d.batchBytes);
      const entries = read.filter((e) => e.seq <= upTo && !this.isInFlight(e.seq));
      const last = read.filter((e) => e.seq <= upTo).at(-1)?.seq;
      if (this.closed || last === undefined) return;
      if (entries.length === 0) {
        after = last;
        continue;
      }
      this.markInFlight(entries);
      const acked = await this.link.send(entries.map(toWire), this.d.ackTimeoutMs);
      this.unmarkInFlight(entries);
      // An ack counts even when the connection closed right after it (both can arrive in one read).
      if (acked) {
        after = last;
        if (advance) this.cursor = Math.max(this.cursor, last);
        else this.rememberResent(entries);
        this.d.writes.ack(
          this.link.deviceId,
          entries.map((e) => e.seq),
          true,
        );
      }
      // Unacknowledged within the timeout: the same batch is read and sent again.
    }
  }

  private rememberResent(entries: MailboxEntry[]): void {
    const set = (this.resent ??= new Set());
    for (const e of entries) set.add(e.seq);
    for (const seq of set) {
      if (set.size <= MAX_RESENT) break;
      set.delete(seq); // oldest first: a Set iterates in insertion order
    }
    if (this.resentTimer) clearTimeout(this.resentTimer);
    this.resentTimer = setTimeout(() => {
      this.resent = null;
      this.resentTimer = null;
    }, RESENT_KEEP_MS);
    this.resentTimer.unref();
  }

  private isInFlight(seq: number): boolean {
    return this.inFlight?.has(seq) ?? false;
  }

  private markInFlight(entries: MailboxEntry[]): void {
    const set = (this.inFlight ??= new Set());
    for (const e of entries) set.add(e.seq);
  }

  private unmarkInFlight(entries: MailboxEntry[]): void {
    const set = this.inFlight;
    if (!set) return;
    for (const e of entries) set.delete(e.seq);
    if (set.size === 0) this.inFlight = null;
  }

  private push(entries: MailboxEntry[]): void {
    const resent = this.resent;
    const fresh =
      this.inFlight === null && resent === null
        ? entries
        : entries.filter((e) => !this.isInFlight(e.seq) && !(resent?.has(e.seq) ?? false));
    if (fresh.length === 0 || this.behind) return;
    for (const batch of batches(fresh, this.d.batchBytes)) {
      const bytes = batch.reduce((sum, e) => sum + e.body.length, 0);
      if (this.liveUnacked > 0 && this.liveUnacked + bytes > this.d.windowBytes) {
        // The window is full: this and later entries wait in the mailbox until the pushes in flight settle.
        this.behind = true;
        return;
      }
      this.liveUnacked += bytes;
      this.markInFlight(batch);
      this.link.send(batch.map(toWire), this.d.ackTimeoutMs).then(
        (acked) => {
          this.unmarkInFlight(batch);
          // Unacknowledged live entries stay stored and come again with a resync (or the next connection's mailbox).
          if (acked)
            this.d.writes.ack(
              this.link.deviceId,
              batch.map((e) => e.seq),
            );
          else this.behind = true;
          this.settled(bytes);
        },
        (err: unknown) => {
          this.unmarkInFlight(batch);
          this.d.log.warn({ err }, 'live delivery failed');
          this.behind = true;
          this.settled(bytes);
        },
      );
    }
  }

  /** A live push settled: once none is in flight, what was left in the mailbox is read and sent. */
  private settled(bytes: number): void {
    this.liveUnacked -= bytes;
    if (this.liveUnacked > 0 || !this.behind || this.closed) return;
    this.behind = false;
    this.resync();
  }
}

const NO_CONNECTIONS: readonly Connection[] = [];

export class Delivery {
  /** Per device, its connections to this node (almost always one: an array is smaller than a Set). */
  private readonly connections = new Map<string, Connection[]>();
  private readonly d: Required<Omit<DeliveryOptions, 'log' | 'bus'>> & { log: Logger };
  private readonly bus: ClusterBus;

  constructor(options: DeliveryOptions) {
    const { bus, ...rest } = options;
    this.d = { ackTimeoutMs: 30_000, batchBytes: 1024 * 1024, windowBytes: 1024 * 1024, ...rest };
    this.bus = bus;
    bus.onEvent((event) => {
      if (event.type === 'entries') this.offerHere(event.entries);
      else if (event.type === 'ephemeral') this.ephemeralHere(event.deviceIds, event.message);
      else if (event.type === 'resync') this.resyncHere(event.deviceIds);
    });
    bus.onResume(() => this.resyncAll());
  }

  /** Registers a connection and starts sending its mailbox; pass what it returns to detach() on disconnect. */
  attach(link: DeviceLink): unknown {
    const connection = new Connection(link, this.d);
    const list = this.connections.get(link.deviceId);
    if (list) list.push(connection);
    else this.connections.set(link.deviceId, [connection]);
    connection.start().catch((err: unknown) => this.d.log.error({ err }, 'mailbox delivery failed'));
    return connection;
  }

  /** The connection that attach() returned `handle` for has closed. */
  detach(handle: unknown): void {
    if (!(handle instanceof Connection)) return;
    handle.closed = true;
    const deviceId = handle.link.deviceId;
    const list = this.connections.get(deviceId);
    const at = list?.indexOf(handle) ?? -1;
    if (!list || at < 0) return;
    list.splice(at, 1);
    if (list.length === 0) this.connections.delete(deviceId);
  }

  private connectionsOf(deviceId: string): readonly Connection[] {
    return this.connections.get(deviceId) ?? NO_CONNECTIONS;
  }

  isConnected(deviceId: string): boolean {
    return this.connections.has(deviceId);
  }

  /**
   * Stored entries just committed on this node (any devices, seq order): pushed to the connected ones here, and
   * told to the other nodes. Resolves once the other nodes were told (or telling them failed: they resync).
   */
  committed(entries: MailboxEntry[]): Promise<void> | undefined {
    this.offerHere(entries);
    return this.bus.kind === 'local' ? undefined : this.bus.publish({ type: 'entries', entries });
  }

  /** An ephemeral message (never stored, seq 0) to the connected ones of these devices; the rest miss it. */
  offerEphemeral(deviceIds: string[], message: DeliveredMessage): void {
    this.ephemeralHere(deviceIds, message);
    void this.bus.publish({ type: 'ephemeral', deviceIds, message });
  }

  /** These devices' mailboxes may hold entries their connections missed, on any node. */
  resync(deviceIds: string[]): void {
    this.resyncHere(deviceIds);
    void this.bus.publish({ type: 'resync', deviceIds });
  }

  /** Every connection on this node reads its mailbox again (after the bus was cut off). */
  resyncAll(): void {
    for (const list of this.connections.values()) for (const connection of list) connection.resync();
  }

  private offerHere(entries: MailboxEntry[]): void {
    const byDevice = new Map<string, MailboxEntry[]>();
    for (const e of entries) {
      if (!this.connections.has(e.deviceId)) continue;
      const list = byDevice.get(e.deviceId);
      if (list) list.push(e);
      else byDevice.set(e.deviceId, [e]);
    }
    for (const [deviceId, list] of byDevice) {
      for (const connection of this.connectionsOf(deviceId)) connection.offer(list);
    }
  }

  private ephemeralHere(deviceIds: string[], message: DeliveredMessage): void {
    for (const deviceId of deviceIds) {
      for (const connection of this.connectionsOf(deviceId)) {
        connection.link
          .send([message], this.d.ackTimeoutMs)
          .catch((err: unknown) => this.d.log.warn({ err }, 'ephemeral delivery failed'));
      }
    }
  }

  private resyncHere(deviceIds: string[]): void {
    for (const deviceId of deviceIds) for (const connection of this.connectionsOf(deviceId)) connection.resync();
  }
}
