// What a bench run does: the command-line settings, and the tasks each server start runs with their labels.
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Task } from './ipc.js';
import type { ServerDefinition } from './servers/index.js';

export interface BenchSettings {
  quick: boolean;
  reps: number;
  servers: string[];
  pairs: number;
  bodyBytes: number;
  /** Closed loop: messages in flight per sender. */
  inFlightPerSender: number;
  closed: boolean;
  rates: number[];
  /** Group sizes in recipient devices (even: recipients come two devices per account). */
  groups: number[];
  /** Idle connections to open (0: none). */
  idle: number;
  /** Messages queued for the offline device (0: no drain task). */
  offline: number;
  signin: boolean;
  clientCost: boolean;
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  write: boolean;
  profileDir: string | null;
  /** `--relay-node-flags "<flags>"`: Node flags for the relay's processes in this run (it ships with none). */
  relayNodeFlags: string[] | null;
  /** The blob workload's size in MiB (0: not run; `--no-blobs`, `--blob-mib N`). */
  blobMiB: number;
  /** The load generator's Socket.IO client: `raw` (Engine.IO frames on `ws`, the default) or `socketio`. */
  client: 'raw' | 'socketio';
}

export interface PlannedTask {
  /** The row label in the report, the same for every server. */
  label: string;
  task: Task;
}

export const SIGNIN_COST = 12;
/** Open loop: at most this many messages on their way; further scheduled sends are skipped (overload). */
export const OPEN_LOOP_CAP = 10_000;
export const SIGNIN_WINDOW_MS = 4000;

/** Parses the command line (see README.md); unknown servers and bad numbers throw. */
export function parseSettings(argv: string[], servers: ServerDefinition[]): BenchSettings {
  const flag = (name: string): boolean => argv.includes(`--${name}`);
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = flag('quick');
  const number = (name: string, fallback: number, allowZero = false): number => {
    const raw = value(name);
    const parsed = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(parsed) || parsed < 0 || (parsed === 0 && !allowZero)) {
      throw new Error(`--${name} needs a positive number`);
    }
    return parsed;
  };
  const list = (name: string, fallback: string): number[] =>
    (value(name) ?? fallback)
      .split(',')
      .filter((r) => r !== 'none' && r !== '')
      .map(Number);
  const chosen = (
    value('servers') ??
    servers
      .filter((s) => s.byDefault)
      .map((s) => s.name)
      .join(',')
  ).split(',');
  for (const name of chosen) {
    if (!servers.some((s) => s.name === name)) throw new Error(`unknown server '${name}'`);
  }
  const pairs = number('pairs', 500);
  const groups = flag('no-groups') ? [] : list('groups', '50,500');
  for (const size of groups) {
    if (!Number.isInteger(size) || size < 2 || size % 2 !== 0 || size > pairs || size > 510) {
      throw new Error(`group size ${size}: must be even, at most --pairs (${pairs}) and at most 510`);
    }
  }
  const client = value('client') ?? 'raw';
  if (client !== 'raw' && client !== 'socketio') throw new Error(`--client must be raw or socketio, not '${client}'`);
  return {
    quick,
    client,
    blobMiB: flag('no-blobs') ? 0 : number('blob-mib', 32),
    reps: number('reps', quick ? 1 : 3),
    servers: chosen,
    pairs,
    bodyBytes: number('body', 300),
    inFlightPerSender: number('inflight', 2),
    closed: !flag('no-closed'),
    rates: list('rates', quick ? '2000,5000,10000' : '2000,5000,10000,20000'),
    groups,
    idle: flag('no-idle') ? 0 : number('idle', quick ? 2000 : 5000, true),
    offline: flag('no-drain') ? 0 : number('offline', quick ? 10_000 : 100_000, true), // issue #18: 100,000 in < 2 s
    signin: !flag('no-signin'),
    clientCost: !flag('no-client-cost'),
    warmupMs: number('warmup', 1) * 1000,
    durationMs: number('duration', 2) * 1000,
    drainMs: number('drain', 15) * 1000,
    write: flag('write'),
    profileDir: flag('profile') ? join(tmpdir(), `weconnect-bench-profiles-${Date.now()}`) : null,
    relayNodeFlags: relayNodeFlags(value('relay-node-flags')),
  };
}

export const describeOpen = (rate: number): string => `open ${rate}/s`;
/** A phase of the reduced (FerretDB) plan, on the reduced server and on its one-node reference: "closed, 50 pairs". */
export const describeReduced = (label: string, pairs: number): string => `${label}, ${pairs} pairs`;
/** Whether a label is one of the full plan's open rates ("open 2000/s"), not a reduced-plan phase. */
export const isFullOpen = (label: string): boolean => /^open \d+\/s$/.test(label);
export const describeGroup = (size: number): string => `group ${size}`;

/**
 * The tasks of one server start, in order: idle connections first (memory is cleanest right after setup), then
 * closed loop, open rates, groups, the offline drain; the sign-in task (WeConnect, first repetition only) runs on a
 * start of its own.
 * A server with a reduced plan (FerretDB) runs only its own open rates (first) and the closed loop, with its own
 * pairs and drain time.
 */
export function plannedTasks(
  definition: ServerDefinition,
  settings: BenchSettings,
  rep = 0,
  reducedInRun?: ServerDefinition['reduced'],
): { pairs: number; groups: number[]; tasks: PlannedTask[]; estimateMs: number } {
  const reduced = definition.reduced;
  const windowed = {
    warmupMs: settings.warmupMs,
    durationMs: settings.durationMs,
    drainMs: reduced?.drainMs ?? settings.drainMs,
  };
  const tasks: PlannedTask[] = [];
  if (reduced === undefined && settings.idle > 0) {
    tasks.push({
      label: `idle ${settings.idle}`,
      task: { kind: 'idle', connections: settings.idle, concurrency: 100, accounts: 10 },
    });
  }
  const reducedPhases = (
    plan: NonNullable<ServerDefinition['reduced']>,
    extra: { pairs?: number; drainMs: number },
  ): PlannedTask[] => {
    const closed: PlannedTask[] = settings.closed
      ? [
          {
            label: describeReduced('closed', plan.pairs),
            task: { kind: 'closed', inFlight: plan.inFlightPerSender, ...windowed, ...extra },
          },
        ]
      : [];
    const open = plan.rates.map((ratePerSec): PlannedTask => ({
      label: describeReduced(describeOpen(ratePerSec), plan.pairs),
      task: { kind: 'open', ratePerSec, maxInFlight: OPEN_LOOP_CAP, ...windowed, ...extra },
    }));
    return plan.openFirst ? [...open, ...closed] : [...closed, ...open];
  };
  if (reduced !== undefined) tasks.push(...reducedPhases(reduced, { drainMs: reduced.drainMs }));
  else {
    if (settings.closed) {
      tasks.push({
        label: 'closed',
        task: { kind: 'closed', inFlight: settings.inFlightPerSender, ...windowed },
      });
    }
    for (const ratePerSec of settings.rates) {
      tasks.push({
        label: describeOpen(ratePerSec),
        task: { kind: 'open', ratePerSec, maxInFlight: OPEN_LOOP_CAP, ...windowed },
      });
    }
    // The one-node reference of the reduced (two-node) servers: the same phases on the first pairs of this start,
    // so the report can divide the two-node figures by one node's under the same load.
    if (definition.reducedReference === true && reducedInRun !== undefined && reducedInRun.pairs <= settings.pairs) {
      tasks.push(...reducedPhases(reducedInRun, { pairs: reducedInRun.pairs, drainMs: settings.drainMs }));
    }
  }
  const groups = reduced === undefined ? settings.groups : [];
  for (const size of groups) {
    // About 1,000 deliveries in flight, as the closed loop over the pairs.
    const inFlight = Math.max(1, Math.round(1000 / size));
    tasks.push({ label: describeGroup(size), task: { kind: 'group', size, inFlight, ...windowed } });
  }
  if (reduced === undefined && definition.stores && settings.offline > 0) {
    tasks.push({
      label: `drain ${settings.offline}`,
      task: { kind: 'drain', messages: settings.offline, timeoutMs: 20_000 },
    });
  }
  // Sign-ins need a server start of their own (bcrypt cost 12): once per run, in the first repetition, for time.
  if (reduced === undefined && definition.stores && settings.signin && rep === 0) {
    tasks.push({
      label: `sign-in cost ${SIGNIN_COST}`,
      task: { kind: 'signin', url: '', accounts: 4, parallel: 8, durationMs: SIGNIN_WINDOW_MS },
    });
  }
  const pairs = reduced?.pairs ?? settings.pairs;
  // Rough, for the time budget before a server's first run: windows, setup, a little drain each.
  const perWindow = settings.warmupMs + settings.durationMs + 1000;
  const estimateMs =
    tasks.reduce(
      (sum, t) =>
        sum +
        (t.task.kind === 'idle'
          ? settings.idle * 1.5
          : t.task.kind === 'drain'
            ? 6000
            : t.task.kind === 'signin'
              ? 8000
              : perWindow),
      0,
    ) +
    4000 +
    (definition.client === 'weconnect' ? pairs * 8 : pairs * 2) +
    (reduced === undefined ? 0 : 15_000);
  return { pairs, groups, tasks, estimateMs };
}

function relayNodeFlags(raw: string | undefined): string[] | null {
  if (raw === undefined) return null;
  if (raw === 'none') return [];
  const flags = raw.split(' ').filter((f) => f !== '');
  if (flags.length === 0 || flags.some((f) => !f.startsWith('--'))) {
    throw new Error('--relay-node-flags takes Node flags ("--a=1 --b") or none');
  }
  return flags;
}
