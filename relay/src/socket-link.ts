// One authenticated connection as the services see it, kept small because there is one per idle connection: its
// identity (it is the socket's `data`), delivery's DeviceLink with the acknowledgement timeouts of its pushes in one
// FIFO (one timer per connection while pushes are unacknowledged, not one per push), and its presence watcher,
// made only once it watches. Token expiry is one server-wide wheel, not a timer per socket.
// Backpressure: before each push the link measures the bytes its connection has queued for writing; above the limit
// it pushes nothing (a refused batch stays in the mailbox), and a connection still above it after the grace period
// is dropped — a client that stops reading cannot make the relay buffer without bound. So is a connection that leaves
// a push unacknowledged past its ack timeout.
import type { DeliveredMessage, PresenceUpdate } from './protocol.js';
import type { DeviceLink } from './service/delivery.js';
import type { PresenceWatcher } from './service/presence.js';
import type { AccessClaims } from './service/tokens.js';

/** What a link needs of its Socket.IO socket. */
export interface LinkSocket {
  readonly connected: boolean;
  emit(event: 'messages', batch: DeliveredMessage[], ack: () => void): unknown;
  emit(event: 'presence', update: PresenceUpdate): unknown;
}

/**
 * How a link sees its connection's write buffer, and the bound on it: one object for the whole server (an idle
 * connection holds no closures of its own), given the link's socket.
 */
export interface WriteBufferPolicy {
  /** Bytes queued for writing to the client and not yet handed to the kernel. */
  queuedBytes(socket: LinkSocket): number;
  /** Closes the connection's transport (the client may reconnect; nothing stored is lost). */
  drop(socket: LinkSocket): void;
  readonly limitBytes: number;
  readonly graceMs: number;
}

/** A push waiting for its ack; `resolve` is null once it was settled. */
interface PendingPush {
  deadline: number;
  resolve: ((acked: boolean) => void) | null;
}

class SocketWatcher implements PresenceWatcher {
  readonly userId: string;

  constructor(private readonly link: SocketLink) {
    this.userId = link.userId;
  }

  send(update: PresenceUpdate): void {
    // A presence update is small; one to a connection above its buffer limit is dropped with the connection soon.
    if (this.link.overBufferLimit()) return;
    this.link.socket.emit('presence', update);
  }
}

export class SocketLink implements AccessClaims, DeviceLink {
  readonly userId: string;
  readonly deviceId: string;
  readonly familyId: string;
  /** When the handshake's token expires (ms since the epoch). */
  readonly expiresAt: number;
  /** Delivery's state of this connection, whatever Delivery.attach returned. */
  delivery: unknown = null;
  private presenceWatcher: SocketWatcher | null = null;
  /** Unsettled pushes, oldest first, from `head` on (acks come in order, so the front settles first). */
  private pending: PendingPush[] | null = null;
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Set while the connection is above its buffer limit: the check that drops it, and the pushes refused meanwhile. */
  private overLimit: { timer: NodeJS.Timeout; refused: ((acked: boolean) => void)[] } | null = null;

  constructor(
    readonly socket: LinkSocket,
    claims: AccessClaims,
    expiresAt: number,
    private readonly now: () => number,
    private readonly buffer: WriteBufferPolicy,
  ) {
    this.userId = claims.userId;
    this.deviceId = claims.deviceId;
    this.familyId = claims.familyId;
    this.expiresAt = expiresAt;
  }

  /** The watcher of this connection, made on first use. */
  get watcher(): PresenceWatcher {
    this.presenceWatcher ??= new SocketWatcher(this);
    return this.presenceWatcher;
  }

  /** The watcher, if this connection ever watched. */
  get watcherIfAny(): PresenceWatcher | null {
    return this.presenceWatcher;
  }

  /**
   * True while the connection has more bytes queued than its limit; the first time, a check is set that drops the
   * connection if it is still above the limit after the grace period.
   */
  overBufferLimit(): boolean {
    if (this.overLimit) return true;
    if (this.buffer.queuedBytes(this.socket) <= this.buffer.limitBytes) return false;
    const timer = setTimeout(() => this.checkBuffer(), this.buffer.graceMs);
    timer.unref();
    this.overLimit = { timer, refused: [] };
    return true;
  }

  send(batch: DeliveredMessage[], ackTimeoutMs: number): Promise<boolean> {
    if (!this.socket.connected) return Promise.resolve(false);
    if (this.overBufferLimit()) {
      // Refused: resolves false at the check (or on close), so a caller that retries does so once per grace period.
      return new Promise<boolean>((resolve) => this.overLimit?.refused.push(resolve));
    }
    return new Promise<boolean>((resolve) => {
      const push: PendingPush = { deadline: this.now() + ackTimeoutMs, resolve };
      (this.pending ??= []).push(push);
      this.timer ??= this.arm(ackTimeoutMs);
      this.socket.emit('messages', batch, () => this.settle(push, true));
    });
  }

  /** The grace period is over: a connection still above its limit is dropped; refused pushes resolve false. */
  private checkBuffer(): void {
    const over = this.overLimit;
    if (!over) return;
    this.overLimit = null;
    if (this.buffer.queuedBytes(this.socket) > this.buffer.limitBytes) this.buffer.drop(this.socket);
    for (const resolve of over.refused) resolve(false);
  }

  /** The connection closed: every unacknowledged push resolves false. */
  close(): void {
    const over = this.overLimit;
    if (over) {
      clearTimeout(over.timer);
      this.overLimit = null;
      for (const resolve of over.refused) resolve(false);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const pending = this.pending ?? [];
    this.pending = null;
    for (let i = this.head; i < pending.length; i++) {
      const push = pending[i];
      if (push) this.settle(push, false);
    }
    this.head = 0;
  }

  private settle(push: PendingPush, acked: boolean): void {
    const resolve = push.resolve;
    if (!resolve) return;
    push.resolve = null;
    resolve(acked);
    this.dropSettled();
  }

  /** Drops settled pushes from the front, and compacts the array now and then. */
  private dropSettled(): void {
    const pending = this.pending;
    if (!pending) return;
    while (this.head < pending.length && pending[this.head]?.resolve === null) this.head++;
    if (this.head === pending.length) {
      this.pending = null;
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= pending.length) {
      this.pending = pending.slice(this.head);
      this.head = 0;
    }
  }

  private arm(delayMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.expire(), Math.max(1, delayMs));
    timer.unref();
    return timer;
  }

  /**
   * The timer fired: pushes past their deadline resolve false, and the connection is dropped — a client that has not
   * acknowledged a push for so long is gone or not reading, and its mailbox keeps what it did not acknowledge.
   */
  private expire(): void {
    this.timer = null;
    const now = this.now();
    for (;;) {
      this.dropSettled();
      const first = this.pending?.[this.head];
      if (!first) return;
      if (first.deadline > now) {
        this.timer = this.arm(first.deadline - now);
        return;
      }
      this.settle(first, false);
      this.buffer.drop(this.socket);
    }
  }
}

/**
 * Closes each registered connection when its token expires: one timer for the whole server, per second. The timer
 * is set by the relay's clock at the time of each `add` (as one timer per connection would be), and tracked on the
 * monotonic clock, so a jump of the relay's clock delays or hastens nothing that was already due.
 */
export class ExpiryWheel<T> {
  private readonly buckets = new Map<number, Set<T>>();
  private timer: NodeJS.Timeout | null = null;
  /** When the timer fires, on performance.now()'s clock. */
  private timerAt = Infinity;

  constructor(
    private readonly now: () => number,
    private readonly onExpired: (item: T) => void,
  ) {}

  /** Calls onExpired(item) at `at` (ms since the epoch), rounded up to the second, unless removed first. */
  add(item: T, at: number): void {
    const second = Math.ceil(at / 1000);
    let bucket = this.buckets.get(second);
    if (!bucket) {
      bucket = new Set();
      this.buckets.set(second, bucket);
    }
    bucket.add(item);
    this.scheduleIn(second * 1000 - this.now());
  }

  remove(item: T, at: number): void {
    const second = Math.ceil(at / 1000);
    const bucket = this.buckets.get(second);
    bucket?.delete(item);
    if (bucket?.size === 0) this.buckets.delete(second);
  }

  /** Makes the timer fire within `delayMs` (keeps an earlier one). */
  private scheduleIn(delayMs: number): void {
    // setTimeout's range is about 24.8 days; a later expiry is looked at again then.
    const delay = Math.min(Math.max(0, delayMs), 2 ** 31 - 1);
    const at = performance.now() + delay;
    if (at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), delay);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = this.now();
    const nowSecond = Math.floor(now / 1000);
    let next = Infinity;
    for (const [second, bucket] of this.buckets) {
      if (second <= nowSecond) {
        this.buckets.delete(second);
        for (const item of bucket) this.onExpired(item);
      } else if (second < next) {
        next = second;
      }
    }
    if (next !== Infinity) this.scheduleIn(next * 1000 - now);
  }
}
