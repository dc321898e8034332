// The load generator's workloads: closed-loop saturation and fixed offered rates over sender → recipient pairs.
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Socket } from 'socket.io-client';
import type { Workload, WorkloadResult } from './ipc.js';
import { quantile } from './stats.js';

/** One sender and the device it sends to. */
export interface Pair {
  sender: Socket;
  recipient: Socket;
  recipientDeviceId: string;
}

/** A message on its way: done when the relay acked it to the sender and the recipient received it. */
interface InFlight {
  pair: number;
  /** When the send was due (open loop) or made (closed loop), `performance.now()` ms. */
  scheduledAt: number;
  receivedAt: number;
  acked: boolean;
  received: boolean;
  inWindow: boolean;
}

interface SendAnswer {
  ok: boolean;
}

interface Delivered {
  id: string;
}

/** Window boundaries are announced so the orchestrator can sample the server's CPU at the same moments. */
export interface WindowHooks {
  onWindowStart(): void;
  onWindowEnd(): void;
}

/** Message ids as PROTOCOL.md makes them (16 random bytes, base64url), drawn from a pooled buffer. */
class IdSource {
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

/**
 * Drives the pairs. Listeners are installed once; each `run` resets the counters, so late arrivals of a previous
 * run are ignored (their ids are no longer in flight).
 */
export class LoadDriver {
  private readonly inFlight = new Map<string, InFlight>();
  private readonly ids = new IdSource();
  private readonly body: Buffer;
  private windowOpen = false;
  private windowMessagesLeft = 0;
  private delivered = 0;
  private sent = 0;
  private rejected = 0;
  private latencies: number[] = [];
  private onComplete: ((pair: number) => void) | null = null;
  private onWindowDrained: (() => void) | null = null;

  constructor(
    private readonly pairs: Pair[],
    bodyBytes: number,
  ) {
    this.body = randomBytes(bodyBytes);
    for (const pair of pairs) {
      pair.recipient.on('messages', (batch: Delivered[], ack?: () => void) => {
        const now = performance.now();
        for (const message of batch) {
          const entry = this.inFlight.get(message.id);
          if (entry === undefined || entry.received) continue;
          entry.received = true;
          entry.receivedAt = now;
          if (entry.acked) this.complete(message.id, entry);
        }
        if (typeof ack === 'function') ack();
      });
    }
  }

  private send(pairIndex: number, scheduledAt: number): void {
    const pair = this.pairs[pairIndex];
    if (pair === undefined) return;
    const id = this.ids.next();
    const entry: InFlight = {
      pair: pairIndex,
      scheduledAt,
      receivedAt: 0,
      acked: false,
      received: false,
      inWindow: this.windowOpen,
    };
    this.inFlight.set(id, entry);
    if (this.windowOpen) {
      this.sent++;
      this.windowMessagesLeft++;
    }
    pair.sender.emit(
      'message:send',
      { id, envelopes: [{ to: pair.recipientDeviceId, body: this.body }] },
      (answer: SendAnswer) => {
        if (this.inFlight.get(id) !== entry) return;
        entry.acked = true;
        if (answer?.ok !== true) {
          this.rejected++;
          this.inFlight.delete(id);
          this.settle(entry);
          this.onComplete?.(entry.pair);
          return;
        }
        if (entry.received) this.complete(id, entry);
      },
    );
  }

  private complete(id: string, entry: InFlight): void {
    this.inFlight.delete(id);
    if (this.windowOpen) this.delivered++;
    if (entry.inWindow) this.latencies.push(entry.receivedAt - entry.scheduledAt);
    this.settle(entry);
    this.onComplete?.(entry.pair);
  }

  private settle(entry: InFlight): void {
    if (!entry.inWindow) return;
    this.windowMessagesLeft--;
    if (this.windowMessagesLeft === 0 && !this.windowOpen) this.onWindowDrained?.();
  }

  /** Runs one workload: warm-up, measurement window, then a bounded drain of the window's messages. */
  async run(workload: Workload, hooks: WindowHooks): Promise<WorkloadResult> {
    this.inFlight.clear();
    this.delivered = 0;
    this.sent = 0;
    this.rejected = 0;
    this.latencies = [];
    this.windowMessagesLeft = 0;
    this.windowOpen = false;
    let sending = true;
    let maxSendLagMs = 0;
    let tick: NodeJS.Timeout | undefined;

    const start = performance.now();
    if (workload.kind === 'closed') {
      this.onComplete = (pair) => {
        if (sending) this.send(pair, performance.now());
      };
      for (let k = 0; k < workload.inFlightPerSender; k++) {
        for (let p = 0; p < this.pairs.length; p++) this.send(p, performance.now());
      }
    } else {
      this.onComplete = null;
      const interval = (1000 * this.pairs.length) / workload.ratePerSec;
      const due = this.pairs.map((_, p) => start + (p * interval) / this.pairs.length);
      const step = (): void => {
        if (!sending) return;
        const now = performance.now();
        for (let p = 0; p < due.length; p++) {
          let at = due[p] ?? now;
          if (at <= now) maxSendLagMs = Math.max(maxSendLagMs, this.windowOpen ? now - at : 0);
          while (at <= now) {
            this.send(p, at);
            at += interval;
          }
          due[p] = at;
        }
        tick = setTimeout(step, 1);
      };
      step();
    }

    const delay = monitorEventLoopDelay({ resolution: 10 });
    await sleep(workload.warmupMs);
    this.windowOpen = true;
    this.delivered = 0;
    const windowStart = performance.now();
    const cpuStart = process.cpuUsage();
    delay.enable();
    hooks.onWindowStart();
    await sleep(workload.durationMs);
    this.windowOpen = false;
    sending = false;
    if (tick !== undefined) clearTimeout(tick);
    const windowMs = performance.now() - windowStart;
    const cpu = process.cpuUsage(cpuStart);
    delay.disable();
    hooks.onWindowEnd();

    if (this.windowMessagesLeft > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, workload.drainMs);
        this.onWindowDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.onWindowDrained = null;
    this.onComplete = null;
    const undelivered = this.windowMessagesLeft;
    this.inFlight.clear();

    const sorted = Float64Array.from(this.latencies).sort();
    return {
      workload,
      windowMs,
      delivered: this.delivered,
      sent: this.sent,
      latencyMs:
        sorted.length === 0
          ? null
          : {
              p50: quantile(sorted, 0.5),
              p99: quantile(sorted, 0.99),
              max: sorted[sorted.length - 1] ?? Number.NaN,
              count: sorted.length,
            },
      undelivered,
      rejected: this.rejected,
      loadgenCpuUs: cpu.user + cpu.system,
      loadgenLoopDelayP99Ms: delay.percentile(99) / 1e6,
      maxSendLagMs,
    };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
