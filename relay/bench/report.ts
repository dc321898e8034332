// Turns the bench's raw runs into the Markdown report printed by run.ts and saved as BENCHMARKS.md: the targets
// with this run's ratios, then one table per workload, the machine and its background load, every run.
import { readFileSync } from 'node:fs';
import { renderBlobBench } from './blobs.js';
import type { BlobBenchResult } from './blobs.js';
import { chartsOf } from './charts.js';
import type { ClientCost, ClientFigures } from './client-cost.js';
import {
  LOADGEN_LATE_MS,
  LOADGEN_SATURATED_CORES,
  M,
  Runs,
  fmt,
  integrityProblems,
  loadgenLimit,
  withSpread,
} from './figures.js';
import type { Metric, ServerRun } from './figures.js';
import type { MachineInfo } from './machine.js';
import { OPEN_LOOP_CAP, SIGNIN_COST, SIGNIN_WINDOW_MS, describeGroup, describeOpen, isFullOpen } from './plan.js';
import type { BenchSettings } from './plan.js';
import type { ServerDefinition } from './servers/index.js';
import { median } from './stats.js';

export type { PhaseRun, ServerRun } from './figures.js';
export { integrityProblems } from './figures.js';

export interface ReportInput {
  settings: BenchSettings;
  machine: MachineInfo;
  runs: ServerRun[];
  baseline: string;
  floor: string;
  servers: ServerDefinition[];
  clientCost: ClientCost;
  /** "Where the CPU goes" from this run's profiles (`--profile`), or null for the hand-kept CPU-PROFILE.md. */
  profileSection: string | null;
  /** The blob workload (null: not run). */
  blobs: BlobBenchResult | { failed: string } | null;
  elapsedS: number;
  command: string;
}

/** The server the targets are about. */
const OURS = 'weconnect';
/** Issue #18: a 1:1 send (pad + ratchet + seal) on a post-quantum session, in Chromium. */
const CLIENT_SEND_TARGET_US = 100;

function table(header: string[], rows: string[][], leftColumns = 2): string {
  const align = header.map((_, i) => (i < leftColumns ? '---' : '---:'));
  return [header, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

type Verdict = 'met' | 'missed' | 'not measured';
const verdictOf = (value: number, ok: (v: number) => boolean): Verdict =>
  Number.isFinite(value) ? (ok(value) ? 'met' : 'missed') : 'not measured';
const bold = (v: Verdict): string => (v === 'missed' ? '**missed**' : v);

/** Every loss, duplicate, stray, rejection, timed-out drain and failed run: each makes the bench exit non-zero. */
function collectProblems(runs: ServerRun[]): string[] {
  const problems: string[] = [];
  for (const run of runs) {
    for (const phase of run.phases) {
      const found = integrityProblems(phase.result);
      if (found.length > 0) problems.push(`${run.server} rep ${run.rep + 1} ${phase.label}: ${found.join(', ')}`);
    }
    if (run.failure !== null) problems.push(`${run.server} rep ${run.rep + 1} failed: ${run.failure}`);
  }
  return problems;
}

/**
 * What limited a phase that missed its target, from the figures of the same windows: the relay's event loop when
 * its main thread was busy most of the window, else the machine when other processes took most of a core, else the
 * server's work per delivery.
 */
function limitOf(runs: Runs, server: string, label: string): string {
  const main = runs.median(server, label, M.mainCores);
  const other = runs.median(server, label, M.otherCores);
  if (main >= 0.85) return `limited by the relay's event loop (main thread busy ${fmt(main, 2)} of a core)`;
  if (other >= 0.5) return `limited by the machine (other load ${fmt(other, 2)} cores)`;
  return `limited by the server's work per delivery (main thread ${fmt(main, 2)} of a core)`;
}

/**
 * What stalled the relay's event loop in a latency phase, beside the same of bare Socket.IO: the longest wait of a
 * ready callback and the longest GC pause (medians over repetitions). A p99 above the loop's longest GC pause and
 * near its longest delay is set by stalls, not by the work of one delivery.
 */
export function stalls(runs: Runs, label: string): string {
  const of = (server: string): string => {
    const gc = runs.median(server, label, M.gcMaxMs);
    const delay = runs.median(server, label, M.loopDelayMaxMs);
    return Number.isFinite(gc) ? `${fmt(delay, 0)} / ${fmt(gc, 1)} ms` : `${fmt(delay, 0)} ms / –`;
  };
  const reference = runs.has('bare', label) ? `; bare: ${of('bare')}` : '';
  return `event-loop delay max / longest GC pause ${of(OURS)}${reference}`;
}

/**
 * The note on RSS per idle connection: the heap each server's connections hold, which is stable from run to run, beside
 * the RSS, which also counts the heap pages V8 keeps committed after the connection storm and gives back seconds later
 * (BEFORE-AFTER-18.md, "Idle connections, a third time").
 */
export function idleHeap(runs: Runs, label: string): string {
  const servers = [OURS, 'bare', 'ws'].filter((server) => runs.has(server, label));
  const heaps = servers.map((server) => `${server} ${fmt(runs.median(server, label, M.heapKiBPerConn), 1)}`);
  return `heap used per connection (KiB): ${heaps.join(', ')}; RSS also counts heap pages V8 gives back later`;
}

function summary(input: ReportInput, runs: Runs, problems: string[]): string {
  const { baseline, floor, settings } = input;
  const rows: string[][] = [];
  const ratioRow = (
    what: string,
    label: string,
    metric: Metric,
    reference: string,
    target: string,
    ok: (v: number) => boolean,
  ): void => {
    const values = runs.ratio(OURS, reference, label, metric);
    const value = median(values);
    const limited = runs.limited(OURS, label).limited + runs.limited(reference, label).limited;
    const verdict = verdictOf(value, ok);
    const notes = [limited > 0 ? `load generator limited ${limited} of the phases` : ''];
    if (verdict === 'missed') {
      notes.push(metric === M.cpuUs ? 'the extra CPU: see "Where the CPU goes"' : limitOf(runs, OURS, label));
    }
    rows.push([
      what,
      target,
      values.length === 0 ? '–' : `${withSpread(values, 2)}x`,
      bold(verdict),
      notes.filter((n) => n !== '').join('; '),
    ]);
  };
  // The targets of issue #18 (they replace issue #8's): CPU ≤ 1.0x bare and ≤ 2.0x ws, closed loop and at 5,000/s.
  const fiveK = describeOpen(5_000);
  const tenK = describeOpen(10_000);
  ratioRow(
    `server CPU µs/delivery, ${OURS} ÷ ${baseline}, ${fiveK}`,
    fiveK,
    M.cpuUs,
    baseline,
    '≤ 1.0x',
    (v) => v <= 1,
  );
  ratioRow(
    `server CPU µs/delivery, ${OURS} ÷ ${baseline}, closed loop`,
    'closed',
    M.cpuUs,
    baseline,
    '≤ 1.0x',
    (v) => v <= 1,
  );
  ratioRow(`server CPU µs/delivery, ${OURS} ÷ ${floor}, ${fiveK}`, fiveK, M.cpuUs, floor, '≤ 2.0x', (v) => v <= 2);
  ratioRow(
    `server CPU µs/delivery, ${OURS} ÷ ${floor}, closed loop`,
    'closed',
    M.cpuUs,
    floor,
    '≤ 2.0x (stretch 1.5x)',
    (v) => v <= 2,
  );
  ratioRow(`closed-loop delivered/s, ${OURS} ÷ ${baseline}`, 'closed', M.perSec, baseline, '≥ 1.0x', (v) => v >= 1);
  ratioRow(`closed-loop delivered/s, ${OURS} ÷ ${floor}`, 'closed', M.perSec, floor, '≥ 0.7x', (v) => v >= 0.7);
  const absoluteRow = (
    what: string,
    target: string,
    values: number[],
    unit: string,
    digits: number,
    ok: (v: number) => boolean,
    note = '',
  ): void => {
    rows.push([
      what,
      target,
      values.length === 0 ? '–' : `${withSpread(values, digits)} ${unit}`,
      bold(verdictOf(median(values), ok)),
      note,
    ]);
  };
  for (const [rate, label] of [
    ['5k', fiveK],
    ['10k', tenK],
  ] as const) {
    const p99Limited = runs.limited(OURS, label).limited;
    const p99s = runs.values(OURS, label, M.p99);
    absoluteRow(
      `p99 latency at ${rate} msg/s, ${OURS}`,
      '≤ 10 ms',
      p99s,
      'ms',
      1,
      (v) => v <= 10,
      [
        p99Limited > 0 ? `load generator limited ${p99Limited} of the phases` : '',
        median(p99s) > 10 ? limitOf(runs, OURS, label) : '',
        median(p99s) > 10 ? stalls(runs, label) : '',
      ]
        .filter((n) => n !== '')
        .join('; '),
    );
  }
  const idleLabel = `idle ${settings.idle}`;
  absoluteRow(
    `RSS per idle connection, ${OURS}`,
    '≤ 10 KiB',
    runs.values(OURS, idleLabel, M.rssKiBPerConn),
    'KiB',
    1,
    (v) => v <= 10,
    runs.has(OURS, idleLabel) ? idleHeap(runs, idleLabel) : '',
  );
  const drainLabel = `drain ${settings.offline}`;
  const drains = runs.values(OURS, drainLabel, M.seconds);
  absoluteRow(`offline catch-up of ${fmt(settings.offline)} messages, ${OURS}`, '< 2 s', drains, 's', 2, (v) => v < 2);
  const cost = input.clientCost;
  const clientRow = (where: 'node' | 'chromium'): void => {
    if (!cost.measured) {
      rows.push([`client send, ${where}`, `≤ ${CLIENT_SEND_TARGET_US} µs`, '–', 'not measured', cost.reason]);
      return;
    }
    const figures: ClientFigures | null = cost[where];
    const note = where === 'chromium' && figures === null ? (cost.chromiumSkipped ?? 'no Chromium figures') : '';
    absoluteRow(
      `client send, ${where}`,
      `≤ ${CLIENT_SEND_TARGET_US} µs`,
      figures === null ? [] : [figures.send_us],
      'µs',
      0,
      (v) => v <= CLIENT_SEND_TARGET_US,
      note,
    );
  };
  clientRow('node');
  clientRow('chromium');
  for (const label of reducedLabels(input)) {
    for (const server of input.settings.servers.filter((s) => s !== ONE_NODE && runs.has(s, label))) {
      const values = runs.ratio(server, ONE_NODE, label, M.cpuUs);
      rows.push([
        `server CPU µs/delivery, ${server} ÷ ${ONE_NODE} (one node, SQLite), ${label}`,
        'reported',
        values.length === 0 ? '–' : `${withSpread(values, 2)}x`,
        values.length === 0 ? 'not measured' : 'reported',
        'see "Two nodes"',
      ]);
    }
  }
  const blobs = input.blobs;
  if (blobs !== null) {
    rows.push([
      'relay RSS growth while a blob goes up and down',
      '< 64 MiB',
      'failed' in blobs ? '–' : `${blobs.rssGrowthMiB} MiB (${blobs.bytes / 2 ** 20} MiB blob)`,
      'failed' in blobs ? '**missed**' : bold(verdictOf(blobs.rssGrowthMiB, (v) => v < 64)),
      'failed' in blobs
        ? blobs.failed
        : `upload ${blobs.uploadMBps} MiB/s, download ${blobs.downloadMBps} MiB/s${blobs.intact ? '' : '; NOT intact'}`,
    ]);
  }
  const integrity = problems.filter((p) => !p.includes(' failed: '));
  rows.push([
    'lost or duplicated messages, every server and run',
    '0',
    integrity.length === 0 ? '0' : `${integrity.length} phase(s) with problems`,
    integrity.length === 0 ? 'met' : '**missed**',
    integrity.slice(0, 3).join('; '),
  ]);
  return table(['target', 'bar', 'this run (median, min–max over reps)', 'verdict', 'note'], rows, 5);
}

/** 1:1 and group messaging: throughput, latency and cost per delivery with ratios to the baseline and the floor. */
function messagingTable(input: ReportInput, runs: Runs, labels: string[]): string {
  const { baseline, floor } = input;
  const rows: string[][] = [];
  for (const label of labels) {
    for (const server of input.settings.servers) {
      if (!runs.has(server, label)) continue;
      // A server on a reduced plan (FerretDB) ran other pairs and depths: its ratios would compare different loads.
      const reduced = input.servers.find((s) => s.name === server)?.reduced !== undefined;
      const ratio = (reference: string, metric: Metric): string =>
        server === reference ? '1' : reduced ? 'n/a' : withSpread(runs.ratio(server, reference, label, metric), 2);
      const integrity = runs.runs
        .filter((r) => r.server === server)
        .flatMap((r) => r.phases.filter((p) => p.label === label))
        .map((p) => p.result)
        .reduce(
          (sum, r) =>
            r.kind === 'messaging'
              ? { lost: sum.lost + r.lost, dup: sum.dup + r.duplicates + r.strays, skipped: sum.skipped + r.skipped }
              : sum,
          { lost: 0, dup: 0, skipped: 0 },
        );
      rows.push([
        label,
        server,
        withSpread(runs.values(server, label, M.perSec)),
        ratio(baseline, M.perSec),
        ratio(floor, M.perSec),
        fmt(runs.median(server, label, M.p50), 1),
        withSpread(runs.values(server, label, M.p99), 1),
        fmt(runs.median(server, label, M.max), 1),
        withSpread(runs.values(server, label, M.cpuUs), 1),
        ratio(baseline, M.cpuUs),
        ratio(floor, M.cpuUs),
        fmt(runs.median(server, label, M.mainUs), 1),
        `${integrity.lost} / ${integrity.dup}`,
        integrity.skipped > 0 ? fmt(integrity.skipped) : '',
        loadgenCell(runs, server, label),
        fmt(runs.median(server, label, M.loadgenUs), 0),
        fmt(runs.median(server, label, M.otherCores), 2),
      ]);
    }
  }
  return table(
    [
      'workload',
      'server',
      'delivered/s',
      `÷ ${baseline}`,
      `÷ ${floor}`,
      'p50 ms',
      'p99 ms',
      'max ms',
      'server CPU µs/delivery',
      `÷ ${baseline}`,
      `÷ ${floor}`,
      'main-thread µs/delivery',
      'lost / dup',
      'skipped (overload)',
      'load gen cores',
      'load gen µs/delivery',
      'other load cores',
    ],
    rows,
  );
}

/** The one-node reference of the reduced (FerretDB) servers' ratios. */
const ONE_NODE = OURS;

/** The reduced plan's phase labels that ran ("closed, 50 pairs", "open 50/s, 50 pairs"), in run order. */
function reducedLabels(input: ReportInput): string[] {
  const reducedServers = new Set(input.servers.filter((d) => d.reduced !== undefined).map((d) => d.name));
  return [
    ...new Set(input.runs.filter((r) => reducedServers.has(r.server)).flatMap((r) => r.phases.map((p) => p.label))),
  ];
}

/**
 * The reduced servers (two nodes on FerretDB with Redis; one node on FerretDB) beside the one-node SQLite relay
 * running the same phases on its first pairs, with ratios to it taken within each repetition.
 */
function twoNodeTable(input: ReportInput, runs: Runs, labels: string[]): string {
  const rows: string[][] = [];
  const servers = [ONE_NODE, ...input.settings.servers.filter((s) => s !== ONE_NODE)];
  for (const label of labels) {
    for (const server of servers) {
      if (!runs.has(server, label)) continue;
      const ratio = (metric: Metric): string =>
        server === ONE_NODE ? '1' : withSpread(runs.ratio(server, ONE_NODE, label, metric), 2);
      const sums = runs.runs
        .filter((r) => r.server === server)
        .flatMap((r) => r.phases.filter((p) => p.label === label))
        .map((p) => p.result)
        .reduce(
          (sum, r) =>
            r.kind === 'messaging'
              ? { lost: sum.lost + r.lost, late: sum.late + r.late, dup: sum.dup + r.duplicates + r.strays }
              : sum,
          { lost: 0, late: 0, dup: 0 },
        );
      rows.push([
        label,
        server,
        withSpread(runs.values(server, label, M.perSec)),
        ratio(M.perSec),
        fmt(runs.median(server, label, M.p50), 1),
        withSpread(runs.values(server, label, M.p99), 1),
        withSpread(runs.values(server, label, M.cpuUs), 0),
        ratio(M.cpuUs),
        fmt(runs.median(server, label, M.drainWaitS), 1),
        `${sums.lost} / ${sums.late} / ${sums.dup}`,
        loadgenCell(runs, server, label),
        fmt(runs.median(server, label, M.otherCores), 2),
      ]);
    }
  }
  return table(
    [
      'workload',
      'server',
      'delivered/s',
      `÷ ${ONE_NODE}`,
      'p50 ms',
      'p99 ms',
      'server CPU µs/delivery',
      `÷ ${ONE_NODE}`,
      'drain wait s',
      'lost / late / dup',
      'load gen cores',
      'other load cores',
    ],
    rows,
  );
}

/** The load generator's cores in a phase, marked ⚠ with how many repetitions it was the limit in. */
function loadgenCell(runs: Runs, server: string, label: string): string {
  const { limited, of } = runs.limited(server, label);
  return `${fmt(runs.median(server, label, M.loadgenCores), 2)}${limited > 0 ? ` ⚠ ${limited}/${of}` : ''}`;
}

function idleTable(input: ReportInput, runs: Runs): string {
  const label = `idle ${input.settings.idle}`;
  const rows = input.settings.servers
    .filter((server) => runs.has(server, label))
    .map((server) => {
      return [
        server,
        withSpread(runs.values(server, label, M.perSec)),
        withSpread(runs.values(server, label, M.cpuUs), 0),
        withSpread(runs.values(server, label, M.rssKiBPerConn), 1),
        fmt(runs.median(server, label, M.heapKiBPerConn), 1),
        loadgenCell(runs, server, label),
        fmt(runs.median(server, label, M.otherCores), 2),
      ];
    });
  return table(
    [
      'server',
      'connects/s',
      'server CPU µs/connect',
      'RSS KiB/connection',
      'heap KiB/connection',
      'load gen cores',
      'other load cores',
    ],
    rows,
    1,
  );
}

function drainTable(input: ReportInput, runs: Runs): string {
  const label = `drain ${input.settings.offline}`;
  const rows = input.settings.servers
    .filter((server) => runs.has(server, label))
    .map((server) => [
      server,
      withSpread(runs.values(server, label, M.seconds), 2),
      withSpread(runs.values(server, label, M.perSec)),
      fmt(runs.median(server, label, M.cpuUs), 1),
      fmt(runs.median(server, label, M.fillSeconds), 2),
    ]);
  return table(['server', 'catch-up s', 'messages/s', 'server CPU µs/message', 'fill s (sent while offline)'], rows, 1);
}

function signInTable(input: ReportInput, runs: Runs): string {
  const label = `sign-in cost ${SIGNIN_COST}`;
  const rows = input.settings.servers
    .filter((server) => runs.has(server, label))
    .map((server) => {
      const failures = runs.runs
        .filter((r) => r.server === server)
        .flatMap((r) => r.phases.filter((p) => p.label === label))
        .reduce((sum, p) => sum + (p.result.kind === 'signin' ? p.result.failures : 0), 0);
      return [
        server,
        withSpread(runs.values(server, label, M.perSec), 1),
        fmt(runs.median(server, label, M.cpuUs) / 1000, 1),
        fmt(runs.median(server, label, M.p50), 0),
        fmt(runs.median(server, label, M.serverCores), 2),
        String(failures),
      ];
    });
  return table(['server', 'sign-ins/s', 'server CPU ms/sign-in', 'p50 ms', 'server cores', 'failures'], rows, 1);
}

function twoNodeSection(input: ReportInput, runs: Runs): string {
  const labels = reducedLabels(input);
  const reduced = input.servers.find((d) => d.reduced !== undefined)?.reduced;
  if (labels.length === 0 || reduced === undefined) {
    const skipped = input.runs.find(
      (r) => r.skipped !== null && input.servers.some((d) => d.name === r.server && d.reduced),
    );
    return skipped ? `_Not run:_ ${skipped.skipped ?? ''}` : '_Not run_ (no FerretDB server in `--servers`).';
  }
  return `\`weconnect-2node\` is two relay processes sharing one FerretDB over PostgreSQL, with Redis between them;
every sender is on node 1 and its recipient on node 2, so every delivery crosses Redis. FerretDB does only a few hundred
writes a second, so these servers run a reduced plan (${reduced.pairs} pairs, ${reduced.rates.map((r) => `${r}/s`).join(', ')}
offered, then a closed loop with ${reduced.inFlightPerSender} message in flight per sender), and \`${ONE_NODE}\` (one
node, SQLite) runs the same phases on its first ${reduced.pairs} pairs in each repetition: the ratios divide by it,
within the repetition. They measure two nodes **and** FerretDB against one node on SQLite (\`weconnect-ferret\`,
one node on FerretDB, separates the two when given in \`--servers\`). Server CPU sums both node processes, not
FerretDB's, PostgreSQL's or Redis's own (they show in "other load"). The drain after each phase waits while messages
keep arriving (up to 4x the drain time): a slow store is not a loss; "late" counts messages given up as lost that
arrived in a later phase.

${twoNodeTable(input, runs, labels)}`;
}

function loadgenClientNote(client: BenchSettings['client']): string {
  const raw =
    "`bench/raw-socketio.ts` (Engine.IO and Socket.IO frames written directly on `ws` with the server's own parser)";
  return client === 'raw'
    ? `it spoke Socket.IO with ${raw} (\`--client socketio\` for socket.io-client), raw frames with the ws relay`
    : 'it spoke Socket.IO with socket.io-client (`--client socketio`; the default is the raw client), raw frames with the ws relay';
}

function blobSection(blobs: ReportInput['blobs']): string {
  if (blobs === null) return '_Not run_ (`--no-blobs`).';
  if ('failed' in blobs) return `**Failed:** ${blobs.failed}`;
  return `The attachment store (issue #15), once per run after the messaging servers: a relay process of its own (SQLite,
blob files under a temporary DATA_DIR); one account uploads ${blobs.bytes / 2 ** 20} MiB of random bytes in
${blobs.chunkBytes / 2 ** 20} MiB chunks (each fsynced, the last one re-hashes the file) and downloads it whole, over
127.0.0.1. The relay's RSS is read from /proc every 20 ms; growth is the peak over the warmed-up idle relay (the relay
streams blobs, so it should not grow with the blob's size; \`relay/test/blobs-memory.test.ts\` fails at 64 MiB). A
blob that does not come back intact fails the run. \`--blob-mib N\` sets the size, \`--no-blobs\` skips it.

${renderBlobBench(blobs)}`;
}

function clientCostSection(cost: ClientCost): string {
  if (!cost.measured) return `Not measured: ${cost.reason}.${cost.command ? ` (\`${cost.command}\`)` : ''}`;
  const row = (where: string, f: ClientFigures | null, note: string): string[] =>
    f === null
      ? [where, '–', '–', '–', '–', note]
      : [
          where,
          fmt(f.send_us, 0),
          fmt(f.receive_us, 0),
          fmt(f.group100_send_us, 0),
          fmt(f.group_receive_us, 0),
          f.version,
        ];
  return `\`${cost.command}\`, in ${fmt(cost.ms / 1000, 1)} s; target: send ≤ ${CLIENT_SEND_TARGET_US} µs.

${table(
  ['where', 'send µs', 'receive µs', 'group of 100 send µs', 'group receive µs', 'version / note'],
  [row('node', cost.node, ''), row('chromium', cost.chromium, cost.chromiumSkipped ?? '')],
  1,
)}`;
}

function everyRun(runs: ServerRun[]): string {
  const rows: string[][] = [];
  for (const run of runs) {
    for (const phase of run.phases) {
      const r = phase.result;
      rows.push([
        phase.label,
        run.server,
        String(run.rep + 1),
        fmt(M.perSec(phase), r.kind === 'signin' ? 1 : 0),
        fmt(M.p50(phase), 1),
        fmt(M.p99(phase), 1),
        fmt(M.cpuUs(phase), 1),
        fmt(M.mainUs(phase), 1),
        fmt(M.serverCores(phase), 2),
        fmt(M.perCommit(phase), 1),
        fmt(M.diskKbPerUnit(phase), 1),
        fmt(M.loopDelayMaxMs(phase), 0),
        fmt(M.gcMaxMs(phase), 1),
        fmt(M.gcMsPerS(phase), 0),
        fmt(M.loadgenCores(phase), 2),
        fmt(M.loadgenUs(phase), 0),
        loadgenLimit(phase) ?? '',
        fmt(M.otherCores(phase), 2),
        integrityProblems(r).join(', ') || ('messages' in r ? `0 of ${fmt(r.messages)}` : ''),
      ]);
    }
  }
  return table(
    [
      'task',
      'server',
      'rep',
      'per s',
      'p50 ms',
      'p99 ms',
      'server CPU µs/unit',
      'main µs/unit',
      'server cores',
      'per commit',
      'disk KB/unit',
      'server loop delay max ms',
      'server GC pause max ms',
      'server GC ms/s',
      'load gen cores',
      'load gen µs/unit',
      'load gen limit',
      'other load cores',
      'lost/dup/stray/rejected of messages',
    ],
    rows,
  );
}

/** The chart files run.ts writes beside BENCHMARKS.md (with --write), linked from it. */
export const CHART_FILES = { latency: 'bench-latency.svg', cpu: 'bench-cpu.svg' } as const;

export function renderReport(input: ReportInput): {
  markdown: string;
  problems: string[];
  charts: { latency: string; cpu: string };
} {
  const { settings, machine, baseline, floor } = input;
  const runs = new Runs(input.runs, settings.reps);
  const problems = collectProblems(input.runs);
  if (input.blobs !== null && 'failed' in input.blobs) problems.push(`blobs failed: ${input.blobs.failed}`);
  else if (input.blobs !== null && !input.blobs.intact) problems.push('blobs: the downloaded blob was not intact');
  const oneToOne = ['closed', ...new Set(input.runs.flatMap((r) => r.phases.map((p) => p.label)).filter(isFullOpen))];
  oneToOne.sort((a, b) => (a === 'closed' ? -1 : b === 'closed' ? 1 : Number(a.slice(5, -2)) - Number(b.slice(5, -2))));
  const groupLabels = settings.groups.map(describeGroup);

  const others = input.runs.flatMap((r) => r.phases.map(M.otherCores)).filter(Number.isFinite);
  const background = median(others);
  const backgroundNote =
    `Other processes (other engineers' work, the orchestrator, the kernel) used a median ${fmt(background, 2)} and at most ` +
    `${fmt(others.length === 0 ? Number.NaN : Math.max(...others), 2)} of the ${machine.cores} cores during the measurement windows ` +
    '(per window in "Every run").' +
    (background > 0.3
      ? ' **That is a busy machine**: throughput and latency are depressed and noisy; per-delivery CPU and its ratios hold up better.'
      : '');
  const limitedPhases = input.runs.flatMap((r) =>
    r.phases.filter((p) => loadgenLimit(p) !== null).map((p) => `${r.server} ${p.label}`),
  );
  const limitedNote =
    limitedPhases.length === 0
      ? 'The load generator never limited a phase.'
      : `⚠ marks phases where the load generator itself was the limit (≥ ${LOADGEN_SATURATED_CORES} of a core, or event-loop ` +
        `delay p99 or open-loop send lag ≥ ${LOADGEN_LATE_MS} ms): ${[...new Set(limitedPhases)].join(', ')}. Their ` +
        'throughput and latency understate the server; CPU per delivery still holds.';
  const skipped = input.runs.filter((r) => r.skipped !== null);
  const failed = input.runs.filter((r) => r.failure !== null);
  const notes = [
    ...skipped.map((r) => `- \`${r.server}\` rep ${r.rep + 1} skipped: ${r.skipped ?? ''}`),
    ...failed.map((r) => `- \`${r.server}\` rep ${r.rep + 1} **failed**: ${r.failure ?? ''}`),
  ];
  const setupRows = input.runs
    .filter((r) => r.skipped === null)
    .map((r) => [
      r.server,
      String(r.rep + 1),
      String(r.devices),
      fmt(r.setupMs / 1000, 1),
      fmt(r.connectMs / 1000, 2),
      fmt(r.rssReady / 2 ** 20, 0),
      fmt(r.rssConnected / 2 ** 20, 0),
      fmt(r.durationMs / 1000, 0),
    ]);

  const markdown = `# Benchmarks

Generated by \`${input.command}\` (relay/bench/run.ts) on ${machine.date}, in ${input.elapsedS} s. Do not edit by hand:
rerun with \`npm run bench -- --write\`. Figures are medians over ${settings.reps} repetition(s) with the spread (min–max)
in brackets; ratios are taken within each repetition (same minute, same background load), then the median is shown.
Servers ran interleaved: ${settings.servers.join(', ')}${settings.reps > 1 ? `, repeated ${settings.reps} times` : ''}. The
machine is small and shared: read absolute figures as indications, ratios as the result.

## Summary

${summary(input, runs, problems)}

${backgroundNote}

${limitedNote}
${notes.length > 0 ? `\n${notes.join('\n')}\n` : ''}
## Charts

![p50 and p99 latency against offered rate, per server](${CHART_FILES.latency})

![Server CPU µs per delivery per workload and server, with the ratio to ${baseline}](${CHART_FILES.cpu})

## Where the CPU goes

${input.profileSection ?? cpuProfileSection()}

## 1:1 messages

${settings.pairs * 2} connected devices (${settings.pairs} sender → recipient pairs; FerretDB servers: their reduced plan),
${settings.bodyBytes}-byte bodies, one envelope per send. \`closed\`: each sender keeps ${settings.inFlightPerSender} messages
in flight (saturation). \`open R/s\`: R messages per second offered over all senders on a fixed schedule; latency from
the **scheduled** send time to the recipient's receipt (no coordinated omission). Each phase warms up
${settings.warmupMs / 1000} s and measures ${settings.durationMs / 1000} s. A delivery counts when the relay acked the
send and the recipient got the push (which it acks at once, so every server handles the same four packets or frames).
Ratios: delivered/s as this ÷ reference (above 1 is better); CPU as this ÷ reference (below 1 is better). Open loop
keeps at most ${fmt(OPEN_LOOP_CAP)} messages on their way: past that the server is overloaded and further scheduled sends
are skipped (counted, never sent, so never lost), which bounds the backlog and the run time. Lost / dup sums every
repetition; dup includes strays. The servers on FerretDB run a reduced plan: see "Two nodes".

${messagingTable(input, runs, oneToOne)}

## Two nodes

${twoNodeSection(input, runs)}

## Group fan-out

One sender, groups of ${settings.groups.join(' and ')} recipient devices, about 1,000 deliveries in flight
(${settings.groups.map((g) => `${Math.max(1, Math.round(1000 / g))} sends for ${g}`).join(', ')}). \`${OURS}\`: one
\`message:send\` \`{id, group, body}\` per message, as the web client sends group messages (the relay stores and pushes
one entry per member device; the recipients are 2 devices per account, within the 256-member limit). \`${baseline}\`:
the same payload, members registered once with \`group:create\`. \`${floor}\`: one frame listing every recipient. A
delivery is one recipient's receipt (after the send's ack); latency is from the send to each receipt.

${groupLabels.some((l) => input.settings.servers.some((s) => runs.has(s, l))) ? messagingTable(input, runs, groupLabels) : '_Not run._'}

## Idle connections

${fmt(settings.idle)} connections opened (100 at a time) first thing on each fresh server start, before the pairs' devices
are set up, so that little else has touched its memory. Connects/s is the opening rate (\`${OURS}\`: authenticated
handshakes with the access tokens of 10 fresh accounts, several sockets per device as the relay allows; \`${baseline}\`
and \`${floor}\`: new device ids, no auth); RSS and heap per connection are (with them − before) ÷ count, each after a
full GC. The connections are closed before the messaging phases.

${settings.idle > 0 ? idleTable(input, runs) : '_Not run._'}

## Offline drain

A device with ${fmt(settings.offline)} messages queued while it was offline (sent by 16 senders, each acked by the relay,
so stored) connects; the time runs from the connect call until it has received every message and acked the batch
holding the last one. Only servers that store messages.

${settings.offline > 0 ? drainTable(input, runs) : '_Not run._'}

## Sign-ins

A separate start of the relay with \`BCRYPT_COST=${SIGNIN_COST}\` (production default): 4 accounts, 8 sign-ins in flight (2
per account, under the per-account limit of attempts in flight) for ${SIGNIN_WINDOW_MS / 1000} s; each sign-in
makes a new device. Once per run (first repetition): it needs a server start of its own.

${settings.signin ? signInTable(input, runs) : '_Not run._'}

## Blobs

${blobSection(input.blobs)}

## Client cost

${clientCostSection(input.clientCost)}

## Machine and background load

- ${machine.cores} cores (${machine.cpuModel}), ${machine.memGiB} GiB, Node ${machine.node}
- load average when the run started: ${machine.loadAvgAtStart.join(', ')}
- "other load" = busy CPU of the whole machine in the window (from /proc/stat) minus the server and the load generator
- the load generator is one process; ${loadgenClientNote(settings.client)}; it is marked where it may have been the limit

## Servers

Each runs in its own child process; the load generator is another. 127.0.0.1 only.

${input.servers.map((s) => `- \`${s.name}\`: ${s.description}${nodeFlagsNote(s, input.settings.relayNodeFlags)}`).join('\n')}

## Setup

${table(['server', 'rep', 'devices', 'setup s', 'connect s', 'RSS ready MiB', 'RSS connected MiB', 'start took s'], setupRows)}

## Every run

"unit" is a delivery, a connection, a drained message or a sign-in. Main-thread µs: the event-loop thread's time on a
CPU plus time blocked in synchronous calls, without time other processes held the core (Linux schedstat). Disk KB: what
the server's processes wrote toward the disk per unit (Linux /proc/<pid>/io \`write_bytes\`: a page of a file counts
when it becomes dirty, and once until it is written back; socket writes do not count; FerretDB's and PostgreSQL's
writes are theirs, not the server's; nothing where the temp directory the bench puts DATA_DIR in is tmpfs).

${everyRun(input.runs)}

## Command

\`\`\`sh
${input.command}
\`\`\`
`;
  const charts = chartsOf(
    runs,
    settings.servers,
    baseline,
    [...oneToOne, ...groupLabels],
    new Set(input.servers.filter((d) => d.reduced !== undefined).map((d) => d.name)),
  );
  return { markdown, problems, charts };
}

/**
 * The analysis of the servers' CPU profiles, kept by hand in CPU-PROFILE.md next to this file (profiles are taken
 * with `--profile`, which this report cannot interpret by itself); a pointer to it when it is missing.
 */
function cpuProfileSection(): string {
  try {
    return readFileSync(new URL('./CPU-PROFILE.md', import.meta.url), 'utf8')
      .replace(/^# .*\n+/, '')
      .trim();
  } catch {
    return (
      '_No analysis yet: `npm run bench -- --profile --servers weconnect,bare,ws --reps 1 --quick` writes the V8 ' +
      'profiles, `npx tsx relay/bench/profile-summary.ts <file>` summarizes one; write it to relay/bench/CPU-PROFILE.md._'
    );
  }
}

/** The Node flags --relay-node-flags gave the relay's processes in this run (the relay ships with none). */
function nodeFlagsNote(server: ServerDefinition, flags: string[] | null): string {
  if (server.client !== 'weconnect' || flags === null || flags.length === 0) return '';
  return `; run with the Node flags \`${flags.join(' ')}\` (--relay-node-flags; it ships with none)`;
}
