// The figures the report shows, derived from the raw runs: per-phase metrics, medians and spreads over
// repetitions, ratios taken within each repetition, the load generator's saturation and message-integrity checks.
import type { GcPauses, MainThreadSample, TaskResult } from './ipc.js';
import { median } from './stats.js';

/** One task on one server start, with the server's resources over the same window. */
export interface PhaseRun {
  label: string;
  result: TaskResult;
  serverCpuUs: number;
  /** Time the server's event loop was active over the window (CPU plus time blocked in syscalls such as fsync). */
  serverLoopActiveMs: number;
  serverLoopDelay: { p99Ms: number; maxMs: number };
  /** The main thread's GC pauses over the window (absent in runs saved before they were measured). */
  serverGcPause?: GcPauses;
  /** Scheduler times of the server's main thread over the window (null off Linux). */
  serverMainThread: MainThreadSample | null;
  /**
   * Differences of the server's counters over the window: its own (WeConnect: `commits`), and every server process's
   * `diskWriteBytes` (see servers/host.ts; absent off Linux and in runs saved before it was measured).
   */
  serverCounters: Record<string, number>;
  /** Busy CPU time of the whole machine over the window (null without /proc/stat). */
  machineBusyUs: number | null;
  serverRss: number;
  /** The window on the monotonic clock (µs, as V8 CPU profiles time their samples), to cut a profile to it. */
  windowMonoUs?: [number, number];
  /** Idle connections: the server's memory after a full GC, before opening them and with them open. */
  memory: { rssBefore: number; rssAfter: number; heapBefore: number; heapAfter: number } | null;
  /** A phase that lost messages: the server's gauges after its drain (see StartedServer.gauges). */
  serverHeldAtEnd?: Record<string, number>;
}

export interface ServerRun {
  server: string;
  rep: number;
  setupMs: number;
  /** Time to connect the pairs' devices (after sign-ups). */
  connectMs: number;
  devices: number;
  rssReady: number;
  rssConnected: number;
  phases: PhaseRun[];
  /** The server's node processes of the main start (their CPU profiles carry the pid in the file name). */
  pids?: number[];
  /** Why the run stopped early (the phases before it are kept), or null. */
  failure: string | null;
  /** Why the run did not happen (a missing binary, the time budget), or null. */
  skipped: string | null;
  durationMs: number;
}

/** A load generator this busy (of one core), or in open loop this late or this delayed, limited what it offered. */
export const LOADGEN_SATURATED_CORES = 0.9;
export const LOADGEN_LATE_MS = 50;

export type Metric = (phase: PhaseRun) => number;

const windowUs = (phase: PhaseRun): number => ('windowMs' in phase.result ? phase.result.windowMs * 1000 : Number.NaN);

/** Deliveries (messaging), connections (idle), messages (drain) or sign-ins: what CPU is divided by. */
const units = (phase: PhaseRun): number => {
  const r = phase.result;
  switch (r.kind) {
    case 'messaging':
      return r.delivered;
    case 'idle':
      return r.connections;
    case 'drain':
      return r.messages;
    case 'signin':
      return r.signIns;
  }
};

export const M = {
  /** Deliveries, connects, drained messages or sign-ins per second of the window. */
  perSec: (p) => (units(p) * 1e6) / windowUs(p),
  /** Server CPU (all threads, all node processes) per unit. */
  cpuUs: (p) => (units(p) > 0 ? p.serverCpuUs / units(p) : Number.NaN),
  /**
   * Main-thread time per unit: on a CPU plus blocked in synchronous calls, without the time other processes held
   * the core. 1e6 ÷ this is what one event loop could do on an uncontended core.
   */
  mainUs: (p) => {
    const main = p.serverMainThread;
    if (main === null || units(p) === 0) return Number.NaN;
    const blocked = Math.max(0, p.serverLoopActiveMs - main.onCpuMs - main.runQueueWaitMs);
    return ((main.onCpuMs + blocked) * 1000) / units(p);
  },
  /** Share of the window the main thread was on a CPU or blocked in synchronous calls (1 = a saturated loop). */
  mainCores: (p) => {
    const main = p.serverMainThread;
    if (main === null) return Number.NaN;
    const blocked = Math.max(0, p.serverLoopActiveMs - main.onCpuMs - main.runQueueWaitMs);
    return ((main.onCpuMs + blocked) * 1000) / windowUs(p);
  },
  p50: (p) => ('latencyMs' in p.result ? (p.result.latencyMs?.p50 ?? Number.NaN) : Number.NaN),
  p99: (p) => ('latencyMs' in p.result ? (p.result.latencyMs?.p99 ?? Number.NaN) : Number.NaN),
  max: (p) => ('latencyMs' in p.result ? (p.result.latencyMs?.max ?? Number.NaN) : Number.NaN),
  serverCores: (p) => p.serverCpuUs / windowUs(p),
  /** The longest GC pause of the server's main thread in the window (of any node). */
  gcMaxMs: (p) => p.serverGcPause?.maxMs ?? Number.NaN,
  /** Milliseconds per second the server's main threads spent paused for GC. */
  gcMsPerS: (p) => (p.serverGcPause ? (p.serverGcPause.totalMs * 1e6) / windowUs(p) : Number.NaN),
  /** The longest event-loop delay in the window: what a ready frame waited at worst. */
  loopDelayMaxMs: (p) => p.serverLoopDelay.maxMs,
  loadgenCores: (p) => p.result.loadgenCpuUs / windowUs(p),
  /** The load generator's CPU per unit: what one delivery costs the client side (compares the clients). */
  loadgenUs: (p) => (units(p) > 0 ? p.result.loadgenCpuUs / units(p) : Number.NaN),
  otherCores: (p) =>
    p.machineBusyUs === null ? Number.NaN : (p.machineBusyUs - p.serverCpuUs - p.result.loadgenCpuUs) / windowUs(p),
  seconds: (p) => windowUs(p) / 1e6,
  rssKiBPerConn: (p) =>
    p.memory === null || units(p) === 0 ? Number.NaN : (p.memory.rssAfter - p.memory.rssBefore) / 1024 / units(p),
  heapKiBPerConn: (p) =>
    p.memory === null || units(p) === 0 ? Number.NaN : (p.memory.heapAfter - p.memory.heapBefore) / 1024 / units(p),
  drainWaitS: (p) => (p.result.kind === 'messaging' ? p.result.drainWaitMs / 1000 : Number.NaN),
  fillSeconds: (p) => (p.result.kind === 'drain' ? p.result.fillMs / 1000 : Number.NaN),
  /** KB (1,000 bytes) written toward the disk per unit, by every server process (not by FerretDB or PostgreSQL). */
  diskKbPerUnit: (p) => {
    const bytes = p.serverCounters.diskWriteBytes;
    return bytes === undefined || units(p) === 0 ? Number.NaN : bytes / 1000 / units(p);
  },
  perCommit: (p) => {
    const commits = p.serverCounters.commits;
    return p.result.kind === 'messaging' && commits !== undefined && commits > 0
      ? p.result.delivered / commits
      : Number.NaN;
  },
} satisfies Record<string, Metric>;

/** Why the load generator may have been the limit in this phase, or null. */
export function loadgenLimit(phase: PhaseRun): string | null {
  const reasons: string[] = [];
  if (M.loadgenCores(phase) >= LOADGEN_SATURATED_CORES) reasons.push(`CPU ${M.loadgenCores(phase).toFixed(2)} core`);
  const r = phase.result;
  // Loop delay and send lag matter where the schedule does (open loop); a closed loop is busy by design.
  if (r.kind === 'messaging' && r.open) {
    if (r.loadgenLoopDelayP99Ms >= LOADGEN_LATE_MS)
      reasons.push(`loop delay p99 ${r.loadgenLoopDelayP99Ms.toFixed(0)} ms`);
    if (r.maxSendLagMs >= LOADGEN_LATE_MS) reasons.push(`send lag ${r.maxSendLagMs.toFixed(0)} ms`);
    // Late with CPU to spare: other processes held the cores the generator was waiting for.
    if (reasons.length > 0 && M.loadgenCores(phase) < 0.5) {
      reasons.push(`at ${M.loadgenCores(phase).toFixed(2)} core: starved by other load, not saturated`);
    }
  }
  return reasons.length === 0 ? null : reasons.join(', ');
}

/** Lost, duplicated, stray or rejected messages, and a drain that timed out: each fails the run. */
export function integrityProblems(result: TaskResult): string[] {
  if (result.kind !== 'messaging' && result.kind !== 'drain') return [];
  const problems: string[] = [];
  if (result.lost > 0) problems.push(`${result.lost} lost`);
  if (result.duplicates > 0) problems.push(`${result.duplicates} duplicated`);
  if (result.strays > 0) problems.push(`${result.strays} stray`);
  if (result.kind === 'messaging' && result.late > 0) {
    problems.push(`${result.late} late (given up as lost in an earlier phase, then delivered)`);
  }
  if (result.rejected > 0) problems.push(`${result.rejected} rejected`);
  if (result.kind === 'drain' && !result.complete) problems.push('drain timed out');
  return problems;
}

/** Access to one run's phases by (server, repetition, label), and aggregates over repetitions. */
export class Runs {
  private readonly byKey = new Map<string, PhaseRun>();

  constructor(
    readonly runs: ServerRun[],
    readonly reps: number,
  ) {
    for (const run of runs)
      for (const phase of run.phases) this.byKey.set(`${run.server}|${run.rep}|${phase.label}`, phase);
  }

  get(server: string, rep: number, label: string): PhaseRun | undefined {
    return this.byKey.get(`${server}|${rep}|${label}`);
  }

  values(server: string, label: string, metric: Metric): number[] {
    const out: number[] = [];
    for (let rep = 0; rep < this.reps; rep++) {
      const phase = this.get(server, rep, label);
      if (phase !== undefined && Number.isFinite(metric(phase))) out.push(metric(phase));
    }
    return out;
  }

  has(server: string, label: string): boolean {
    return Array.from({ length: this.reps }, (_, rep) => this.get(server, rep, label)).some((p) => p !== undefined);
  }

  median(server: string, label: string, metric: Metric): number {
    return median(this.values(server, label, metric));
  }

  /** Median over repetitions of mine ÷ reference, both from the same repetition (same background load). */
  ratio(server: string, reference: string, label: string, metric: Metric): number[] {
    const out: number[] = [];
    for (let rep = 0; rep < this.reps; rep++) {
      const mine = this.get(server, rep, label);
      const base = this.get(reference, rep, label);
      if (mine === undefined || base === undefined) continue;
      const value = metric(mine) / metric(base);
      if (Number.isFinite(value)) out.push(value);
    }
    return out;
  }

  /** In how many repetitions the load generator limited this phase. */
  limited(server: string, label: string): { limited: number; of: number } {
    let limited = 0;
    let of = 0;
    for (let rep = 0; rep < this.reps; rep++) {
      const phase = this.get(server, rep, label);
      if (phase === undefined) continue;
      of++;
      if (loadgenLimit(phase) !== null) limited++;
    }
    return { limited, of };
  }
}

export const fmt = (value: number, digits = 0): string =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '–';

/** "median (min–max)" when there is more than one value. */
export function withSpread(values: number[], digits = 0): string {
  if (values.length === 0) return '–';
  const mid = fmt(median(values), digits);
  if (values.length === 1) return mid;
  return `${mid} (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})`;
}
