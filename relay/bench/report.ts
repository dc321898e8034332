// Turns the bench's raw runs into the Markdown report printed by run.ts and saved as RESULTS.md.
import type { MainThreadSample, WorkloadResult } from './ipc.js';
import type { MachineInfo } from './machine.js';
import type { ServerDefinition } from './servers/index.js';
import { median } from './stats.js';

export interface BenchSettings {
  reps: number;
  servers: string[];
  pairs: number;
  bodyBytes: number;
  inFlightPerSender: number;
  /** Whether the closed-loop workload runs (it comes first). */
  closed: boolean;
  rates: number[];
  warmupMs: number;
  durationMs: number;
  drainMs: number;
}

/** One workload on one server start, with the server's CPU over the same window. */
export interface PhaseRun {
  result: WorkloadResult;
  serverCpuUs: number;
  /** Time the server's event loop was active over the window (CPU plus time blocked in syscalls such as fsync). */
  serverLoopActiveMs: number;
  /** The server's event-loop delay over the window. */
  serverLoopDelay: { p99Ms: number; maxMs: number };
  /** Scheduler times of the server's main thread over the window (null off Linux). */
  serverMainThread: MainThreadSample | null;
  /** Differences of the server's own counters over the window (WeConnect: `commits`). */
  serverCounters: Record<string, number>;
  /** Busy CPU time of the whole machine over the window (null without /proc/stat). */
  machineBusyUs: number | null;
  serverRss: number;
}

export interface ServerRun {
  server: string;
  rep: number;
  setupMs: number;
  rssIdle: number;
  rssConnected: number;
  phases: PhaseRun[];
  /** Why the run stopped early (the phases before it are kept), or null. */
  failure: string | null;
}

export interface ReportInput {
  settings: BenchSettings;
  machine: MachineInfo;
  runs: ServerRun[];
  baseline: string;
  servers: ServerDefinition[];
  workloads: string[];
  elapsedS: number;
}

/** The figures of one phase, derived once. */
interface Figures {
  deliveredPerSec: number;
  /** Server process CPU (all threads) per delivery. */
  usPerDelivery: number;
  /**
   * Main-thread time per delivery: on a CPU plus blocked in synchronous calls, without the time other processes
   * held the core. A single event loop saturates at about 1e6 / this deliveries per second.
   */
  mainUsPerDelivery: number;
  p50: number;
  p99: number;
  max: number;
  serverCores: number;
  /** Share of the window the server's event loop was active. */
  loopBusy: number;
  /** Shares of the window the main thread was on a CPU, waiting for one, and blocked in a synchronous call. */
  mainOnCpu: number;
  mainWaiting: number;
  mainBlocked: number;
  /** Deliveries per committed store transaction (servers that report `commits`). */
  perCommit: number;
  loadgenCores: number;
  otherCores: number;
  /** Longest the server's event loop made a ready callback wait, ms. */
  serverLoopDelayMax: number;
  undelivered: number;
  rejected: number;
  loopDelayP99: number;
}

/** A load generator this busy (of one core) limits what it can offer: the figures are then its limit, too. */
const LOADGEN_SATURATED_CORES = 0.9;

function figures(phase: PhaseRun): Figures {
  const r = phase.result;
  const windowUs = r.windowMs * 1000;
  const serverCores = phase.serverCpuUs / windowUs;
  const loadgenCores = r.loadgenCpuUs / windowUs;
  const main = phase.serverMainThread;
  // The loop's active time is on-CPU + waiting for a CPU + blocked; the rest is the blocked part (fsync and such).
  const blockedMs =
    main === null ? Number.NaN : Math.max(0, phase.serverLoopActiveMs - main.onCpuMs - main.runQueueWaitMs);
  const perDelivery = (us: number): number => (r.delivered > 0 ? us / r.delivered : Number.NaN);
  return {
    deliveredPerSec: (r.delivered * 1000) / r.windowMs,
    usPerDelivery: perDelivery(phase.serverCpuUs),
    mainUsPerDelivery: main === null ? Number.NaN : perDelivery((main.onCpuMs + blockedMs) * 1000),
    p50: r.latencyMs?.p50 ?? Number.NaN,
    p99: r.latencyMs?.p99 ?? Number.NaN,
    max: r.latencyMs?.max ?? Number.NaN,
    serverCores,
    loopBusy: phase.serverLoopActiveMs / r.windowMs,
    mainOnCpu: main === null ? Number.NaN : main.onCpuMs / r.windowMs,
    mainWaiting: main === null ? Number.NaN : main.runQueueWaitMs / r.windowMs,
    mainBlocked: blockedMs / r.windowMs,
    perCommit:
      phase.serverCounters.commits !== undefined && phase.serverCounters.commits > 0
        ? r.delivered / phase.serverCounters.commits
        : Number.NaN,
    loadgenCores,
    otherCores: phase.machineBusyUs === null ? Number.NaN : phase.machineBusyUs / windowUs - serverCores - loadgenCores,
    serverLoopDelayMax: phase.serverLoopDelay.maxMs,
    undelivered: r.undelivered,
    rejected: r.rejected,
    loopDelayP99: r.loadgenLoopDelayP99Ms,
  };
}

const fmt = (value: number, digits = 0): string =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '–';

const mib = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(0)} MiB` : '–');

function table(header: string[], rows: string[][]): string {
  const align = header.map((_, i) => (i < 2 ? '---' : '---:'));
  return [header, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** The two-node server and what it is compared with (one node on SQLite, one node on the same FerretDB store). */
export const TWO_NODE = 'weconnect-2node';
const TWO_NODE_REFERENCES = ['weconnect', 'weconnect-ferret'];
export const TWO_NODE_HEADING = '## Two nodes through Redis';

/**
 * The "Two nodes through Redis" section: per workload, one node vs two nodes side by side (delivered/s, p99, server
 * CPU per delivery summed over the node processes) and the two-node figures as ratios of each one-node run. Empty
 * when the two-node server did not run.
 */
export function renderTwoNodeSection(input: ReportInput): string {
  const { settings, runs, workloads } = input;
  if (!settings.servers.includes(TWO_NODE)) return '';
  const shown = [...TWO_NODE_REFERENCES, TWO_NODE].filter((s) => settings.servers.includes(s));
  const reps = Array.from({ length: settings.reps }, (_, i) => i);
  const get = (server: string, rep: number, w: number): Figures | undefined => {
    const phase = runs.find((run) => run.server === server && run.rep === rep)?.phases[w];
    return phase === undefined ? undefined : figures(phase);
  };
  const med = (server: string, w: number, pick: (f: Figures) => number): number =>
    median(reps.flatMap((rep) => (get(server, rep, w) === undefined ? [] : [pick(get(server, rep, w) as Figures)])));
  /** Median over repetitions of two-node ÷ reference, both from the same repetition. */
  const ratio = (reference: string, w: number, pick: (f: Figures) => number): number =>
    median(
      reps.flatMap((rep) => {
        const two = get(TWO_NODE, rep, w);
        const one = get(reference, rep, w);
        return two === undefined || one === undefined ? [] : [pick(two) / pick(one)];
      }),
    );
  const references = TWO_NODE_REFERENCES.filter((s) => settings.servers.includes(s));
  const rows = workloads.flatMap((label, w) =>
    shown.map((server) => [
      label,
      server,
      fmt(med(server, w, (f) => f.deliveredPerSec)),
      fmt(
        med(server, w, (f) => f.p99),
        1,
      ),
      fmt(
        med(server, w, (f) => f.usPerDelivery),
        1,
      ),
      fmt(med(server, w, (f) => f.undelivered)),
      ...references.flatMap((reference) =>
        server === TWO_NODE
          ? [
              fmt(
                ratio(reference, w, (f) => f.deliveredPerSec),
                2,
              ),
              fmt(
                ratio(reference, w, (f) => f.p99),
                2,
              ),
              fmt(
                ratio(reference, w, (f) => f.usPerDelivery),
                2,
              ),
            ]
          : ['', '', ''],
      ),
    ]),
  );
  // Undelivered messages while the node processes sat nearly idle: the relay was waiting (on the store, or stalled),
  // not short of CPU. Said explicitly, since the table alone reads like a slow relay.
  const stalls = workloads.flatMap((label, w) =>
    shown.flatMap((server) => {
      const undelivered = med(server, w, (f) => f.undelivered);
      const cores = med(server, w, (f) => f.serverCores);
      const other = med(server, w, (f) => f.otherCores);
      return undelivered > 0 && cores < 0.1
        ? [
            `- \`${server}\`, ${label}: ${fmt(undelivered)} messages undelivered while its node process(es) used ` +
              `${fmt(cores, 2)} core and everything else on the machine ${fmt(other, 2)}: deliveries waited, not ` +
              'for relay CPU.',
          ]
        : [];
    }),
  );
  const stallNote = stalls.length === 0 ? '' : `\n${stalls.join('\n')}\n`;
  const ratioHeaders = references.flatMap((reference) => [
    `delivered/s ÷ ${reference}`,
    `p99 ÷ ${reference}`,
    `CPU ÷ ${reference}`,
  ]);
  return `${TWO_NODE_HEADING}

\`${TWO_NODE}\`: two relay processes sharing one FerretDB store, fan-out through Redis; every sender is connected to
node 1 and its recipient to node 2, so every delivery crosses Redis. Same load as the one-node runs (same pairs,
body size and workloads, in the same invocation). Server CPU µs/delivery is the CPU of both node processes summed
(FerretDB's and redis-server's own CPU is **not** counted: it shows in "other load" of the full report). Ratios
are two nodes ÷ one node, within each repetition: above 1 for delivered/s is better, above 1 for p99 and CPU is
worse. \`weconnect\` is one node on SQLite; \`weconnect-ferret\` is one node on the same kind of FerretDB store, so
two nodes ÷ \`weconnect-ferret\` isolates the Redis fan-out cost, while two nodes ÷ \`weconnect\` mixes it with the
store change. **FerretDB (SQLite backend, a Go proxy translating the wire protocol) is far slower than a real
MongoDB**: the FerretDB runs are bounded by the store, and open-loop rates above its capacity leave most messages
undelivered (p99 then only covers the few that arrived). Do not read their absolute figures as what a two-node
deployment on MongoDB would do.

${table(
  ['workload', 'server', 'delivered/s', 'p99 ms', 'server CPU µs/delivery', 'undelivered', ...ratioHeaders],
  rows,
)}
${stallNote}`;
}

export function renderReport(input: ReportInput): string {
  const { settings, machine, runs, baseline, workloads } = input;
  const byKey = new Map<string, Figures>();
  for (const run of runs) {
    run.phases.forEach((phase, w) => byKey.set(`${run.server}|${run.rep}|${w}`, figures(phase)));
  }
  const get = (server: string, rep: number, w: number): Figures | undefined => byKey.get(`${server}|${rep}|${w}`);
  const reps = Array.from({ length: settings.reps }, (_, i) => i);
  const med = (server: string, w: number, pick: (f: Figures) => number): number =>
    median(reps.map((rep) => get(server, rep, w)).flatMap((f) => (f === undefined ? [] : [pick(f)])));
  /** Median over repetitions of a ratio taken within each repetition (same run, same background load). */
  const ratio = (server: string, w: number, pick: (f: Figures) => number, invert: boolean): number =>
    median(
      reps.flatMap((rep) => {
        const mine = get(server, rep, w);
        const base = get(baseline, rep, w);
        if (mine === undefined || base === undefined) return [];
        return [invert ? pick(base) / pick(mine) : pick(mine) / pick(base)];
      }),
    );
  const rowsFor = (
    cells: (
      m: (pick: (f: Figures) => number, digits?: number) => string,
      r: (pick: (f: Figures) => number, invert: boolean) => string,
      server: string,
      w: number,
    ) => string[],
  ): string[][] =>
    workloads.flatMap((label, w) =>
      settings.servers.map((server) => [
        label,
        server,
        ...cells(
          (pick, digits = 0) => fmt(med(server, w, pick), digits),
          (pick, invert) => (server === baseline ? '1' : fmt(ratio(server, w, pick, invert), 2)),
          server,
          w,
        ),
      ]),
    );

  const throughputRows = rowsFor((m, r, server, w) => [
    m((f) => f.deliveredPerSec),
    r((f) => f.deliveredPerSec, true),
    m((f) => f.p50, 1),
    m((f) => f.p99, 1),
    m((f) => f.max, 1),
    m((f) => f.serverLoopDelayMax),
    m((f) => f.undelivered),
    `${m((f) => f.loadgenCores, 2)}${med(server, w, (f) => f.loadgenCores) >= LOADGEN_SATURATED_CORES ? ' (saturated)' : ''}`,
    m((f) => f.otherCores, 2),
  ]);
  const costRows = rowsFor((m, r) => [
    m((f) => f.usPerDelivery, 1),
    r((f) => f.usPerDelivery, false),
    m((f) => f.mainUsPerDelivery, 1),
    r((f) => f.mainUsPerDelivery, false),
    m((f) => 1e6 / f.mainUsPerDelivery),
    m((f) => f.serverCores, 2),
    m((f) => f.loopBusy, 2),
    m((f) => f.mainOnCpu, 2),
    m((f) => f.mainWaiting, 2),
    m((f) => f.mainBlocked, 2),
    m((f) => f.perCommit, 1),
  ]);

  const rawRows: string[][] = [];
  for (const run of runs) {
    run.phases.forEach((phase, w) => {
      const f = figures(phase);
      rawRows.push([
        workloads[w] ?? '?',
        run.server,
        String(run.rep + 1),
        fmt(f.deliveredPerSec),
        fmt(f.p50, 1),
        fmt(f.p99, 1),
        fmt(f.max, 1),
        fmt(f.usPerDelivery, 1),
        fmt(f.mainUsPerDelivery, 1),
        fmt(f.serverCores, 2),
        fmt(f.loopBusy, 2),
        fmt(f.mainOnCpu, 2),
        fmt(f.mainWaiting, 2),
        fmt(f.mainBlocked, 2),
        fmt(f.perCommit, 1),
        fmt(f.serverLoopDelayMax),
        fmt(f.loadgenCores, 2),
        fmt(f.loopDelayP99, 1),
        fmt(f.otherCores, 2),
        String(f.undelivered),
        String(f.rejected),
        mib(phase.serverRss),
      ]);
    });
  }

  const setupRows = runs.map((run) => [
    run.server,
    String(run.rep + 1),
    fmt(run.setupMs / 1000, 1),
    mib(run.rssIdle),
    mib(run.rssConnected),
    fmt((run.rssConnected - run.rssIdle) / 1024 / (settings.pairs * 2), 1),
  ]);

  const verdicts = (settings.closed && settings.servers.includes(baseline) ? settings.servers : [])
    .filter((s) => s !== baseline)
    .map((server) => {
      const t = ratio(server, 0, (f) => f.deliveredPerSec, true);
      const c = ratio(server, 0, (f) => f.mainUsPerDelivery, false);
      const within = (x: number): string => (Number.isFinite(x) && x <= 2 ? 'within' : 'NOT within');
      return (
        `- **${server}**, closed loop: measured \`${baseline}\` ÷ ${server} throughput ${fmt(t, 2)} ` +
        `(${within(t)} the 2x bar); main-thread time per delivery ${fmt(c, 2)}x that of \`${baseline}\` ` +
        `(capacity ${within(c)} the 2x bar).`
      );
    });

  const busyBackground = median(runs.flatMap((run) => run.phases.map((phase) => figures(phase).otherCores)));
  const backgroundNote =
    busyBackground > 0.3
      ? `**Background load**: other processes used a median ${fmt(busyBackground, 2)} of the ${machine.cores} ` +
        'cores during the windows: measured throughput and latency are depressed and noisy; the per-delivery costs ' +
        '(and their ratios) hold up better. Rerun on a quiet machine before quoting absolute figures.'
      : `Background load was low (median ${fmt(busyBackground, 2)} cores used by other processes).`;

  const loadgenLimited =
    settings.closed &&
    runs.some((run) => {
      const first = run.phases[0];
      return first !== undefined && figures(first).loadgenCores >= LOADGEN_SATURATED_CORES;
    });
  const loadgenNote = loadgenLimited
    ? '\nThe load generator saturated its core in at least one closed-loop run: that server was then held back by ' +
      'the generator, so its measured throughput understates its capacity (compare the capacity column).\n'
    : '';

  const failed = runs.filter((run) => run.failure !== null);
  const failures =
    failed.length === 0
      ? ''
      : `\n## Failures\n\n${failed.map((run) => `- \`${run.server}\` rep ${run.rep + 1}: ${run.failure ?? ''}`).join('\n')}\n`;

  return `# Relay benchmark results

Generated by \`npm run bench -w relay -- --write\` (relay/bench/run.ts) on ${machine.date}, in ${input.elapsedS} s.
Figures are medians over ${settings.reps} repetition(s); ratios are taken within each repetition against
\`${baseline}\`, then the median is shown. Servers ran interleaved: ${settings.servers.join(', ')}${settings.reps > 1 ? ', then the same again' : ''}.
Read them as ratios: the machine is small and shared.

## Machine

- ${machine.cores} cores (${machine.cpuModel}), ${machine.memGiB} GiB, Node ${machine.node}
- load average when the run started: ${machine.loadAvgAtStart.join(', ')}; "other load" is the busy CPU of the whole
  machine during each window minus the server and the load generator (other engineers' work, the orchestrator,
  the kernel)

## Servers (each in its own child process)

${input.servers.map((s) => `- \`${s.name}\`: ${s.description}`).join('\n')}

## Workloads and measures

The load generator is one child process with the real socket.io-client: ${settings.pairs * 2} connected devices,
${settings.pairs} sender → recipient pairs, ${settings.bodyBytes}-byte binary bodies, one envelope per send. A
delivery is complete when the relay acked the send and the recipient got the \`messages\` push (which it acks at
once). Each workload warms up for ${settings.warmupMs / 1000} s, then measures for ${settings.durationMs / 1000} s;
messages of the window still undelivered ${settings.drainMs / 1000} s after it are counted as undelivered.

- \`closed K=${settings.inFlightPerSender}\`: each sender keeps ${settings.inFlightPerSender} messages in flight
  (saturation; latency from the send).
- \`open R/s\`: fixed offered rate R over all senders; latency from the scheduled send time to receipt, so a
  generator or server that falls behind shows up in the latency (no coordinated omission).
- Server CPU µs/delivery: \`process.cpuUsage()\` of the server process (all threads) over the window ÷ deliveries.
- Main-thread µs/delivery: the event-loop thread's time on a CPU plus its time blocked in synchronous calls (SQLite's
  fsync, for instance), without the time it waited for a CPU other processes held (Linux schedstat). A Node server
  saturates when its one event loop does, so 1e6 ÷ this is its capacity in deliveries/s on an uncontended core,
  and the ratio of this figure is the capacity ratio, much less sensitive to background load than throughput.
- Loop busy = on CPU + waiting for a CPU + blocked (shares of the window, from \`eventLoopUtilization\` and schedstat).
  Blocked is derived as loop busy − on CPU − waiting, so it is a lower bound: a wait for the CPU right after a
  wake-up from idle counts in schedstat but not in the loop's busy time. With little background load it is exact
  enough; under heavy load it (and the main-thread figure) can understate time blocked in fsync.
- A load generator at ≥ ${LOADGEN_SATURATED_CORES} of a core is marked saturated: it limited what it offered.

## Summary

${verdicts.join('\n')}

${backgroundNote}
${loadgenNote}
### Throughput and latency

${table(
  [
    'workload',
    'server',
    'delivered/s',
    `${baseline} ÷ this`,
    'p50 ms',
    'p99 ms',
    'max ms',
    'server loop delay max ms',
    'undelivered',
    'load generator cores',
    'other load, cores',
  ],
  throughputRows,
)}

### Server cost per delivery

${table(
  [
    'workload',
    'server',
    'server CPU µs',
    `÷ ${baseline}`,
    'main-thread µs',
    `÷ ${baseline}`,
    'capacity/s',
    'server cores',
    'loop busy',
    'on CPU',
    'waiting for CPU',
    'blocked',
    'deliveries per commit',
  ],
  costRows,
)}

${renderTwoNodeSection(input)}${failures}
## Setup and memory

${table(['server', 'rep', 'setup s', 'RSS idle', 'RSS with devices', 'RSS growth per device, KiB (WeConnect: includes sign-up garbage)'], setupRows)}

## Every run

${table(
  [
    'workload',
    'server',
    'rep',
    'delivered/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'CPU µs',
    'main µs',
    'server cores',
    'loop busy',
    'on CPU',
    'waiting',
    'blocked',
    'per commit',
    'server loop delay max ms',
    'loadgen cores',
    'loadgen loop delay p99 ms',
    'other cores',
    'undelivered',
    'rejected',
    'server RSS',
  ],
  rawRows,
)}
`;
}
