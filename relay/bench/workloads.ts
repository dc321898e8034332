// The load generator's messaging workloads (closed loop, fixed offered rate, group fan-out) over a Transport, so
// the same code drives every server: Socket.IO (WeConnect, bare) and raw ws. Every message is tracked to its end:
// losses, duplicates and strays are counted, never inferred.
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { MessagingResult, Task } from './ipc.js';
import { summarizeLatencies } from './stats.js';

/**
 * What a workload needs from a server's client protocol. Devices are numbers: pair p is sender 2p → recipient 2p+1,
 * and a group of size G is the recipients of pairs 0..G-1 (sent to by device 0).
 */
export interface Transport {
  /** One message from `sender` to `recipient`; `onAck(ok)` when the relay answers the send. */
  send(sender: number, recipient: number, id: string, body: Buffer, onAck: (ok: boolean) => void): void;
  /** One message from `sender` to the group of `members.length` recipient devices (created at setup). */
  sendGroup(sender: number, members: readonly number[], id: string, body: Buffer, onAck: (ok: boolean) => void): void;
  /** Called for every message pushed to a connected device; the transport acks each push after the call. */
  onPush(handler: (device: number, id: string) => void): void;
}

/** The longest drain, as a multiple of the phase's drainMs, however long messages keep arriving. */
export const DRAIN_CAP_FACTOR = 4;

export const senderOf = (pair: number): number => 2 * pair;
export const recipientOf = (pair: number): number => 2 * pair + 1;
export const groupMembers = (size: number): number[] => Array.from({ length: size }, (_, p) => recipientOf(p));

/** A message on its way: done when the relay acked the send and every recipient received it. */
interface InFlight {
  /** Closed loop: the pair (or group slot) that sends again when this one is done. */
  slot: number;
  /** When the send was due (open loop) or made, `performance.now()` ms. */
  scheduledAt: number;
  acked: boolean;
  inWindow: boolean;
  /** 1:1: the recipient device; group: -1. */
  recipient: number;
  /** Group: position of each device in the group (-1 for non-members) and which positions have it. */
  positions: Int32Array | null;
  got: Uint8Array | null;
  /** Receipts still expected. */
  waiting: number;
  /** Receipts that came before the send's ack (a delivery counts once both happened). */
  receivedBeforeAck: number;
}

/** Window boundaries are announced so the orchestrator can sample the server's CPU at the same moments. */
export interface WindowHooks {
  onWindowStart(): void;
  onWindowEnd(): void;
}

/** Message ids as PROTOCOL.md makes them (16 random bytes, base64url), drawn from a pooled buffer. */
export class IdSource {
  private pool = Buffer.alloc(0);
  private offset = 0;
  next(): string {
    if (this.offset + 16 > this.pool.length) {
      this.pool = randomBytes(16 * 4096);
      this.offset = 0;
    }
    const id = this.pool.toString('base64url', this.offset, this.offset + 16);
    this.offset += 16;
    return id;
  }
}

type MessagingTask = Extract<Task, { kind: 'closed' | 'open' | 'group' }>;

/**
 * Drives the pairs and groups of one server start. Ids already completed are remembered for the whole start, so a
 * late second copy of any message counts as a duplicate.
 */
export class LoadDriver {
  private readonly inFlight = new Map<string, InFlight>();
  private readonly done = new Set<string>();
  /** Ids given up as lost when a drain ended: a receipt of one later is counted as late, not as a stray. */
  private readonly givenUp = new Set<string>();
  /** Receipts and completions so far: the drain waits while this moves. */
  private progress = 0;
  private readonly ids = new IdSource();
  private readonly body: Buffer;
  private readonly groupPositions = new Map<number, Int32Array>();
  private windowOpen = false;
  private sending = false;
  private delivered = 0;
  private sentInWindow = 0;
  private messages = 0;
  private rejected = 0;
  private duplicates = 0;
  private strays = 0;
  private late = 0;
  private latencies: number[] = [];
  private onComplete: ((slot: number) => void) | null = null;
  private onDrained: (() => void) | null = null;

  constructor(
    private readonly transport: Transport,
    private readonly pairs: number,
    bodyBytes: number,
    private readonly devices: number,
  ) {
    this.body = randomBytes(bodyBytes);
    transport.onPush((device, id) => this.receive(device, id));
  }

  private positionsOf(size: number): Int32Array {
    let positions = this.groupPositions.get(size);
    if (positions === undefined) {
      positions = new Int32Array(this.devices).fill(-1);
      groupMembers(size).forEach((device, i) => ((positions as Int32Array)[device] = i));
      this.groupPositions.set(size, positions);
    }
    return positions;
  }

  private track(slot: number, scheduledAt: number, recipient: number, groupSize: number): [string, InFlight] {
    const id = this.ids.next();
    const group = groupSize > 0;
    const entry: InFlight = {
      slot,
      scheduledAt,
      acked: false,
      inWindow: this.windowOpen,
      recipient: group ? -1 : recipient,
      positions: group ? this.positionsOf(groupSize) : null,
      got: group ? new Uint8Array(groupSize) : null,
      waiting: group ? groupSize : 1,
      receivedBeforeAck: 0,
    };
    this.inFlight.set(id, entry);
    this.messages++;
    if (this.windowOpen) this.sentInWindow++;
    return [id, entry];
  }

  private sendPair(pair: number, scheduledAt: number): void {
    const [id, entry] = this.track(pair, scheduledAt, recipientOf(pair), 0);
    this.transport.send(senderOf(pair), recipientOf(pair), id, this.body, (ok) => this.acked(id, entry, ok));
  }

  private sendGroup(slot: number, members: readonly number[], scheduledAt: number): void {
    const [id, entry] = this.track(slot, scheduledAt, -1, members.length);
    this.transport.sendGroup(senderOf(0), members, id, this.body, (ok) => this.acked(id, entry, ok));
  }

  private acked(id: string, entry: InFlight, ok: boolean): void {
    if (this.inFlight.get(id) !== entry || entry.acked) return;
    entry.acked = true;
    if (!ok) {
      this.rejected++;
      this.finish(id, entry);
      return;
    }
    if (this.windowOpen) this.delivered += entry.receivedBeforeAck;
    if (entry.waiting === 0) this.finish(id, entry);
  }

  private receive(device: number, id: string): void {
    const entry = this.inFlight.get(id);
    if (entry === undefined) {
      if (this.done.has(id)) this.duplicates++;
      else if (this.givenUp.has(id)) this.late++;
      else this.strays++;
      return;
    }
    this.progress++;
    if (entry.got === null) {
      if (device !== entry.recipient) return void this.strays++;
      if (entry.waiting === 0) return void this.duplicates++;
      entry.waiting = 0;
    } else {
      const position = entry.positions?.[device] ?? -1;
      if (position < 0) return void this.strays++;
      if (entry.got[position] === 1) return void this.duplicates++;
      entry.got[position] = 1;
      entry.waiting--;
    }
    if (entry.inWindow) this.latencies.push(performance.now() - entry.scheduledAt);
    if (!entry.acked) entry.receivedBeforeAck++;
    else if (this.windowOpen) this.delivered++;
    if (entry.acked && entry.waiting === 0) this.finish(id, entry);
  }

  private finish(id: string, entry: InFlight): void {
    this.progress++;
    this.inFlight.delete(id);
    this.done.add(id);
    if (this.sending) this.onComplete?.(entry.slot);
    else if (this.inFlight.size === 0) this.onDrained?.();
  }

  /**
   * Runs one workload: warm-up, measurement window, then a wait for every message of the run (warm-up included)
   * that lasts while they keep arriving: it ends when all are in, when nothing arrived for `drainMs`, or after
   * DRAIN_CAP_FACTOR × `drainMs` in all. Lost = receipts plus send acks still missing then (a slow store on a busy
   * machine is not a lost message; a relay that dropped one makes no more progress on it); a receipt of a given-up
   * id in a later phase counts as late there.
   */
  async run(task: MessagingTask, hooks: WindowHooks): Promise<MessagingResult> {
    this.delivered = 0;
    this.sentInWindow = 0;
    this.messages = 0;
    this.rejected = 0;
    this.duplicates = 0;
    this.strays = 0;
    this.late = 0;
    this.latencies = [];
    this.windowOpen = false;
    this.sending = true;
    let maxSendLagMs = 0;
    let skipped = 0;
    let tick: NodeJS.Timeout | undefined;

    const start = performance.now();
    const pairs = task.kind === 'group' ? this.pairs : Math.min(this.pairs, task.pairs ?? this.pairs);
    if (task.kind === 'closed') {
      this.onComplete = (pair) => this.sendPair(pair, performance.now());
      for (let k = 0; k < task.inFlight; k++) {
        for (let p = 0; p < pairs; p++) this.sendPair(p, performance.now());
      }
    } else if (task.kind === 'group') {
      const members = groupMembers(task.size);
      this.onComplete = (slot) => this.sendGroup(slot, members, performance.now());
      for (let k = 0; k < task.inFlight; k++) this.sendGroup(k, members, performance.now());
    } else {
      this.onComplete = null;
      const interval = (1000 * pairs) / task.ratePerSec;
      const due = Array.from({ length: pairs }, (_, p) => start + (p * interval) / pairs);
      const step = (): void => {
        if (!this.sending) return;
        const now = performance.now();
        for (let p = 0; p < due.length; p++) {
          let at = due[p] ?? now;
          if (at <= now && this.windowOpen) maxSendLagMs = Math.max(maxSendLagMs, now - at);
          while (at <= now) {
            // Past the cap the server is overloaded: the slot is skipped (never sent, so never lost), which bounds
            // the backlog and so the drain time.
            if (this.inFlight.size < task.maxInFlight) this.sendPair(p, at);
            else skipped++;
            at += interval;
          }
          due[p] = at;
        }
        tick = setTimeout(step, 1);
      };
      step();
    }

    const delay = monitorEventLoopDelay({ resolution: 10 });
    await sleep(task.warmupMs);
    this.windowOpen = true;
    this.delivered = 0;
    const windowStart = performance.now();
    const cpuStart = process.cpuUsage();
    delay.enable();
    hooks.onWindowStart();
    await sleep(task.durationMs);
    this.windowOpen = false;
    this.sending = false;
    if (tick !== undefined) clearTimeout(tick);
    const windowMs = performance.now() - windowStart;
    const cpu = process.cpuUsage(cpuStart);
    delay.disable();
    hooks.onWindowEnd();

    const drainStart = performance.now();
    if (this.inFlight.size > 0) {
      await new Promise<void>((resolve) => {
        const deadline = drainStart + DRAIN_CAP_FACTOR * task.drainMs;
        let seen = this.progress;
        let timer: NodeJS.Timeout;
        const check = (): void => {
          // Something arrived in the last drainMs: the relay is still delivering, keep waiting (up to the cap).
          if (this.progress !== seen && performance.now() < deadline) {
            seen = this.progress;
            timer = setTimeout(check, Math.min(task.drainMs, Math.max(0, deadline - performance.now())));
          } else resolve();
        };
        timer = setTimeout(check, task.drainMs);
        this.onDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const drainWaitMs = performance.now() - drainStart;
    this.onDrained = null;
    this.onComplete = null;
    let lost = 0;
    for (const [id, entry] of this.inFlight) {
      lost += entry.waiting + (entry.acked ? 0 : 1);
      this.givenUp.add(id);
    }
    this.inFlight.clear();

    return {
      kind: 'messaging',
      open: task.kind === 'open',
      skipped,
      windowMs,
      delivered: this.delivered,
      sent: this.sentInWindow,
      latencyMs: summarizeLatencies(this.latencies),
      messages: this.messages,
      lost,
      duplicates: this.duplicates,
      strays: this.strays,
      late: this.late,
      drainWaitMs,
      rejected: this.rejected,
      loadgenCpuUs: cpu.user + cpu.system,
      loadgenLoopDelayP99Ms: delay.percentile(99) / 1e6,
      maxSendLagMs,
    };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
