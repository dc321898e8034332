// Group commit: every send, mailbox ack and last-seen update that arrives within one turn of the event loop is
// committed in ONE store transaction (one fsync), and each sender is answered only after that commit. While writes
// arrive close together and the event loop has time to spare, a short commit window gathers several turns' worth.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { RelayError } from '../errors.js';
import { WriterLostError } from '../store/store.js';
import type { MailboxCaps, MailboxEntry, SendOutcome, SendRequest, Store, WriteBatch } from '../store/store.js';

interface PendingSend {
  request: SendRequest;
  resolve: (outcome: SendOutcome) => void;
  reject: (err: unknown) => void;
}

export interface WriteBatcherOptions {
  store: Store;
  now: () => number;
  log: Logger;
  /**
   * Called with every entry a commit stored, in seq order, before any sender is answered; a returned promise
   * (telling the other relay nodes) is awaited first, at most `committedWaitMs`.
   */
  onCommitted: (entries: MailboxEntry[]) => unknown;
  committedWaitMs?: number;
  /** Sends per transaction; more wait for the next one. */
  maxSends?: number;
  /**
   * The commit window (ms): while writes arrive at least two per window (on average over the last ~8) and the
   * event loop is not busy, a commit waits this long for more (or until WINDOW_THRESHOLD sends are queued), so that
   * a moderately loaded relay pays one commit for several sends. Fewer writes would not pay for the extra wake-up
   * of the timer; a busy event loop's turns already gather many. Those commit after the current turn, as does every
   * write with 0 (the default here; the relay's is COMMIT_WINDOW_MS).
   */
  commitWindowMs?: number;
  /**
   * Acks and last-seen times queued while no send is: they wait up to this long (ms) for a send, or for ACK_HOLD_SEQS
   * acknowledged entries, and then commit with it. A relay at a few messages a second otherwise pays a commit for each
   * send and another for its recipient's ack, each writing whole pages to the WAL. idle() ends the wait (whoever
   * reads the mailbox after it sees the deletions), and so does an ack given `now`. 0 (the default here; the relay's
   * is ACK_HOLD_MS): no wait.
   */
  ackHoldMs?: number;
  /** Whether the event loop is busy (the window is then skipped); by default its utilization over ~100 ms > 0.5. */
  loopBusy?: () => boolean;
  /** Per-device mailbox caps, applied to every send (none when absent). */
  caps?: MailboxCaps;
  /** Told after every commit: how long the store took, how many sends it held, and how many entries were acked. */
  observeCommit?: (commit: { seconds: number; sends: number; ackedEntries: number }) => void;
  /**
   * A commit still running after this long (ms; checked as often) is logged as a warning, with the sends that wait
   * on it, and its end too: a store that stops answering holds every sender, and says nothing else. Default
   * STALL_WARN_MS; 0: never.
   */
  stallWarnMs?: number;
}

/** See stallWarnMs. */
const STALL_WARN_MS = 5000;

/** Acknowledged entries that end an ack hold: deleting more at once would hold the event loop (see ackHoldMs). */
const ACK_HOLD_SEQS = 256;
/** Below this many queued sends, the commit window applies. */
const WINDOW_THRESHOLD = 16;
/** Above this share of its time busy, the event loop is busy (see loopBusy). */
const BUSY_UTILIZATION = 0.5;
/** How often the event loop's utilization is sampled, at most (ms). */
const UTILIZATION_PERIOD_MS = 100;

/**
 * Whether the event loop was busy more than BUSY_UTILIZATION of the time in its last sampling period of at least
 * UTILIZATION_PERIOD_MS (looked at only when asked: between samples the last answer holds).
 */
export function loopUtilizationProbe(threshold = BUSY_UTILIZATION, periodMs = UTILIZATION_PERIOD_MS): () => boolean {
  let last = performance.eventLoopUtilization();
  let busy = false;
  return () => {
    const now = performance.eventLoopUtilization();
    if (now.idle + now.active - (last.idle + last.active) < periodMs) return busy;
    busy = performance.eventLoopUtilization(now, last).utilization > threshold;
    last = now;
    return busy;
  };
}

export class WriteBatcher {
  private sends: PendingSend[] = [];
  private acks = new Map<string, number[]>();
  private lastSeen = new Map<string, number>();
  private scheduled = false;
  /** The commit window's timer while it runs (null otherwise): a queue that reaches WINDOW_THRESHOLD ends it. */
  private windowTimer: NodeJS.Timeout | null = null;
  /** The ack hold's timer while it runs (null otherwise): a send, idle() or ACK_HOLD_SEQS acked entries end it. */
  private holdTimer: NodeJS.Timeout | null = null;
  /** Acknowledged entries queued since the last commit began, and whether any of them may not wait (see ack). */
  private ackedQueued = 0;
  private ackNow = false;
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly maxSends: number;
  private idleWaiters: (() => void)[] = [];
  /** When the last write was queued (performance.now()), and the time between writes, averaged (see queued()). */
  private lastWriteAt = -Infinity;
  private meanGapMs = Infinity;
  private readonly windowMs: number;
  private readonly ackHoldMs: number;
  private readonly loopBusy: () => boolean;
  /** Transactions committed so far (for tests and metrics). */
  commits = 0;
  /** The running commit: when it began (performance.now()), its sends, and whether it was reported as stalled. */
  private commitSince = 0;
  private commitSends = 0;
  private stallReported = false;
  private readonly stallWatch: NodeJS.Timeout | null;

  constructor(private readonly o: WriteBatcherOptions) {
    this.maxSends = o.maxSends ?? 1000;
    this.windowMs = o.commitWindowMs ?? 0;
    this.ackHoldMs = o.ackHoldMs ?? 0;
    this.loopBusy = o.loopBusy ?? (this.windowMs > 0 ? loopUtilizationProbe() : () => true);
    const stallMs = o.stallWarnMs ?? STALL_WARN_MS;
    this.stallWatch = stallMs > 0 ? setInterval(() => this.watchStall(stallMs), stallMs).unref() : null;
  }

  /** Sends waiting for the store: those of the running commit and those queued behind it. */
  get waitingSends(): number {
    return (this.commitSince > 0 ? this.commitSends : 0) + this.sends.length;
  }

  private watchStall(stallMs: number): void {
    if (this.commitSince === 0 || this.stallReported) return;
    const runningMs = performance.now() - this.commitSince;
    if (runningMs < stallMs) return;
    this.stallReported = true;
    this.o.log.warn(
      { runningMs: Math.round(runningMs), sends: this.commitSends, queued: this.sends.length },
      'a store commit has not finished; its senders wait',
    );
  }

  /** Resolves once the send is committed (or found to be a duplicate or refused). */
  send(request: SendRequest): Promise<SendOutcome> {
    if (this.closed) return Promise.reject(new RelayError('internal', 'the relay is shutting down'));
    return new Promise((resolve, reject) => {
      this.sends.push({ request, resolve, reject });
      this.queued();
      if (this.holdTimer) this.endHold(true);
      if (this.windowTimer && this.sends.length >= WINDOW_THRESHOLD) this.endWindow();
    });
  }

  /**
   * Queues the deletion of acknowledged entries of one device. `now`: not held for a send (see ackHoldMs): the ack of
   * a batch read from the mailbox, which holds up to a hundred entries and is followed by the next at once.
   */
  ack(deviceId: string, seqs: number[], now = false): void {
    if (seqs.length === 0 || this.closed) return;
    const list = this.acks.get(deviceId);
    if (list) list.push(...seqs);
    else this.acks.set(deviceId, [...seqs]);
    this.ackedQueued += seqs.length;
    if (now) this.ackNow = true;
    this.queued();
    if (this.holdTimer && !this.holds()) this.endHold(false); // `now`, or ACK_HOLD_SEQS entries
  }

  /** Queues a user's last-seen time (the newest per user wins). */
  seen(userId: string, ts: number): void {
    if (this.closed) return;
    this.lastSeen.set(userId, ts);
    this.queued();
  }

  /** Resolves when everything queued so far is committed. */
  idle(): Promise<void> {
    if (this.holdTimer) this.endHold(false);
    if (!this.hasWork() && !this.running && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new sends and waits for the queued ones to commit. */
  async close(): Promise<void> {
    const done = this.idle();
    this.closed = true;
    await done;
    if (this.stallWatch) clearInterval(this.stallWatch);
  }

  private hasWork(): boolean {
    return this.sends.length > 0 || this.acks.size > 0 || this.lastSeen.size > 0;
  }

  /** A write was queued: notes when (for the window), and schedules its commit. */
  private queued(): void {
    if (this.windowMs > 0) {
      // An exponential average over the last ~8 writes; the first write after a quiet spell (longer than 8 windows)
      // starts it over.
      const now = performance.now();
      const gap = now - this.lastWriteAt;
      const averaging = Number.isFinite(this.meanGapMs) && gap < 8 * this.windowMs;
      this.meanGapMs = averaging ? this.meanGapMs + (gap - this.meanGapMs) / 8 : gap;
      this.lastWriteAt = now;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    // setImmediate runs after the I/O callbacks of this loop turn: all frames read in it join one transaction.
    if (this.holds()) this.holdTimer = setTimeout(this.run, this.ackHoldMs);
    else if (this.gathers()) this.windowTimer = setTimeout(this.run, this.windowMs);
    else setImmediate(this.run);
  }

  /** Whether a commit holds acks and last-seen times for a send (see ackHoldMs): when scheduled, and while it waits. */
  private holds(): boolean {
    return (
      this.ackHoldMs > 0 &&
      this.sends.length === 0 &&
      !this.ackNow &&
      this.ackedQueued < ACK_HOLD_SEQS &&
      this.idleWaiters.length === 0
    );
  }

  /** Whether the commit about to be scheduled waits for more writes (see commitWindowMs). */
  private gathers(): boolean {
    return (
      this.windowMs > 0 &&
      this.sends.length < WINDOW_THRESHOLD &&
      2 * this.meanGapMs < this.windowMs &&
      !this.loopBusy()
    );
  }

  /** Enough sends are queued to fill a commit: the window ends, and they commit after this turn. */
  private endWindow(): void {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    setImmediate(this.run);
  }

  /** A send (`window`: the commit window may still apply to it), idle() or enough acks end the hold. */
  private endHold(window: boolean): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    if (window && this.gathers()) this.windowTimer = setTimeout(this.run, this.windowMs);
    else setImmediate(this.run);
  }

  private readonly run = (): void => {
    this.scheduled = false;
    this.windowTimer = null;
    this.holdTimer = null;
    this.running = this.drain().finally(() => {
      this.running = null;
      if (this.hasWork()) this.schedule();
      else this.notifyIdle();
    });
  };

  private commitEnded(): void {
    if (this.stallReported) {
      this.o.log.warn({ tookMs: Math.round(performance.now() - this.commitSince) }, 'the stalled store commit ended');
      this.stallReported = false;
    }
    this.commitSince = 0;
  }

  /** Puts acks and last-seen times of a lost batch back in the queues (a newer last-seen already queued wins). */
  private requeue(acks: WriteBatch['acks'], lastSeen: WriteBatch['lastSeen']): void {
    for (const { deviceId, seqs } of acks) {
      const list = this.acks.get(deviceId);
      if (list) list.push(...seqs);
      else this.acks.set(deviceId, [...seqs]);
      this.ackedQueued += seqs.length;
    }
    for (const { userId, ts } of lastSeen) if (!this.lastSeen.has(userId)) this.lastSeen.set(userId, ts);
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Commits until the queues are empty; one transaction at a time, so seq order is commit order. */
  private async drain(): Promise<void> {
    while (this.hasWork()) {
      const sends = this.sends.splice(0, this.maxSends);
      const acks = [...this.acks].map(([deviceId, seqs]) => ({ deviceId, seqs }));
      const lastSeen = [...this.lastSeen].map(([userId, ts]) => ({ userId, ts }));
      this.ackedQueued = 0;
      this.ackNow = false;
      this.acks.clear();
      this.lastSeen.clear();
      await this.commit({ sends, acks, lastSeen });
    }
  }

  /**
   * Commits one batch and answers its senders. When the commit fails, the batch is split so that a failing write
   * fails only its own send: acks and last-seen are committed on their own, and the sends in halves, down to the
   * single send that fails (a bad send among 1,000 costs about 20 more commits, none of them for the others).
   */
  private async commit(batch: {
    sends: PendingSend[];
    acks: WriteBatch['acks'];
    lastSeen: WriteBatch['lastSeen'];
  }): Promise<void> {
    const { sends, acks, lastSeen } = batch;
    let outcomes: SendOutcome[];
    try {
      const requests = sends.map((s) => s.request);
      const started = process.hrtime.bigint();
      this.commitSince = performance.now();
      this.commitSends = sends.length;
      try {
        outcomes = await this.o.store.applyWrites(
          this.o.caps ? { sends: requests, acks, lastSeen, caps: this.o.caps } : { sends: requests, acks, lastSeen },
          this.o.now(),
        );
      } finally {
        this.commitEnded();
      }
      this.commits++;
      this.o.observeCommit?.({
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        sends: sends.length,
        ackedEntries: acks.reduce((n, a) => n + a.seqs.length, 0),
      });
    } catch (err) {
      if (err instanceof WriterLostError) {
        // Committed or not, nobody learns it: no send is acknowledged (a retry with its id is answered from the
        // idempotency record), and the acks and last-seen times go again with the next batch (both are idempotent).
        this.o.log.error({ err, sends: sends.length }, 'the store writer stopped during a write batch');
        this.requeue(acks, lastSeen);
        for (const s of sends) s.reject(new RelayError('internal', 'could not store the message'));
        return;
      }
      const bookkeeping = acks.length > 0 || lastSeen.length > 0;
      if (sends.length > 1 || (sends.length === 1 && bookkeeping)) {
        this.o.log.warn({ err, sends: sends.length }, 'write batch failed; committing it in parts');
        if (bookkeeping) await this.commit({ sends: [], acks, lastSeen });
        const half = Math.ceil(sends.length / 2);
        await this.commit({ sends: sends.slice(0, half), acks: [], lastSeen: [] });
        await this.commit({ sends: sends.slice(half), acks: [], lastSeen: [] });
        return;
      }
      this.o.log.error({ err, sends: sends.length }, 'write batch failed');
      for (const s of sends) s.reject(new RelayError('internal', 'could not store the message'));
      return;
    }
    const stored: MailboxEntry[] = [];
    for (const outcome of outcomes) if (outcome.status === 'stored') stored.push(...outcome.entries);
    if (stored.length > 0) {
      try {
        const told = this.o.onCommitted(stored);
        if (told instanceof Promise) await waitAtMost(told, this.o.committedWaitMs ?? 1000);
      } catch (err) {
        this.o.log.error({ err }, 'delivery after commit failed');
      }
    }
    sends.forEach((s, i) => {
      const outcome = outcomes[i];
      if (outcome) s.resolve(outcome);
      else s.reject(new RelayError('internal', 'the store answered fewer outcomes than sends'));
    });
  }
}

/** Waits for `promise`, but no longer than `ms`: the commit is durable either way, and nodes that missed it resync. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}
