// Benchmark orchestrator: for each repetition and each server (interleaved), start the server and a load generator
// as separate child processes, run the tasks, sample the server's CPU and memory at the window edges; then the
// client-cost script; then print (and with --write save as BENCHMARKS.md at the repository root) the report.
// Exits non-zero when any message was lost or duplicated, or a run failed. See README.md; bounded by a watchdog.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { renderBlobBench, runBlobBench } from './blobs.js';
import type { BlobBenchResult } from './blobs.js';
import { CLIENT_COST_SCRIPT, killClientCost, runClientCost } from './client-cost.js';
import { ChildChannel, forkTs } from './ipc.js';
import type { LoadgenCommand, LoadgenEvent, ServerCommand, ServerEvent, ServerSample, Task } from './ipc.js';
import { machineIdleUs, machineInfo } from './machine.js';
import type { MachineInfo } from './machine.js';
import { parseSettings, plannedTasks } from './plan.js';
import { mergeSummaries, profilesOf, renderProfileSection, summarizeProfile } from './profile-summary.js';
import type { CpuProfile, ProfiledPhase } from './profile-summary.js';
import type { BenchSettings, PlannedTask } from './plan.js';
import { CHART_FILES, integrityProblems, renderReport } from './report.js';
import type { PhaseRun, ServerRun } from './report.js';
import { BASELINE, FLOOR, SERVERS, SkipServer } from './servers/index.js';
import type { ServerDefinition } from './servers/index.js';

/** The watchdog: everything is killed and the process exits 1. */
const HARD_LIMIT_MS = 10 * 60_000;
/** Time kept for the blob workload at the end (32 MiB up and down takes a few seconds on a quiet machine). */
const BLOB_RESERVE_MS = 20_000;
/** Runs that would end after this are skipped (with the reason in the report), so the report is always written. */
const SOFT_LIMIT_MS = HARD_LIMIT_MS - 25_000;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

type ServerChannel = ChildChannel<ServerEvent, ServerCommand>;
type LoadgenChannel = ChildChannel<LoadgenEvent, LoadgenCommand>;
const live = new Set<ChildChannel<{ type: string }, unknown>>();
const started = performance.now();
const elapsedMs = (): number => performance.now() - started;

async function sampleOne(server: ServerChannel, gc: boolean): Promise<ServerSample> {
  server.send({ type: 'sample', gc });
  return server.next('sample', 30_000);
}

/**
 * Samples every node process of a server at once and sums them (CPU, memory, loop and main-thread times,
 * counters); the loop delay is the worst node's.
 */
async function sampleServer(nodes: ServerChannel[], gc = false): Promise<ServerSample> {
  const samples = await Promise.all(nodes.map((node) => sampleOne(node, gc)));
  const [first, ...rest] = samples;
  if (first === undefined) throw new Error('no server process');
  return rest.reduce<ServerSample>(
    (sum, s) => ({
      cpu: { user: sum.cpu.user + s.cpu.user, system: sum.cpu.system + s.cpu.system },
      rss: sum.rss + s.rss,
      heapUsed: sum.heapUsed + s.heapUsed,
      loopActiveMs: sum.loopActiveMs + s.loopActiveMs,
      mainThread:
        sum.mainThread === null || s.mainThread === null
          ? null
          : {
              onCpuMs: sum.mainThread.onCpuMs + s.mainThread.onCpuMs,
              runQueueWaitMs: sum.mainThread.runQueueWaitMs + s.mainThread.runQueueWaitMs,
            },
      loopDelay: {
        p99Ms: Math.max(sum.loopDelay.p99Ms, s.loopDelay.p99Ms),
        maxMs: Math.max(sum.loopDelay.maxMs, s.loopDelay.maxMs),
      },
      gcPause: {
        count: sum.gcPause.count + s.gcPause.count,
        totalMs: sum.gcPause.totalMs + s.gcPause.totalMs,
        maxMs: Math.max(sum.gcPause.maxMs, s.gcPause.maxMs),
      },
      counters: addUp(sum.counters, s.counters),
      gauges: addUp(sum.gauges, s.gauges),
    }),
    first,
  );
}

/** "151 sends unanswered, 151 of them waiting on the store" from the WeConnect relay's gauges; else name=value. */
function describeHeld(gauges: Record<string, number>): string {
  const { sendsUnanswered, sendsWaitingOnStore, ...rest } = gauges;
  const parts: string[] = [];
  if (sendsUnanswered !== undefined) {
    parts.push(
      `${sendsUnanswered} sends unanswered` +
        (sendsWaitingOnStore !== undefined ? `, ${sendsWaitingOnStore} of them waiting on the store` : ''),
    );
  }
  for (const [name, value] of Object.entries(rest)) parts.push(`${name}=${value}`);
  return parts.join(', ') || 'nothing reported';
}

function addUp(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    [...new Set([...Object.keys(a), ...Object.keys(b)])].map((name) => [name, (a[name] ?? 0) + (b[name] ?? 0)]),
  );
}

/** Now on the monotonic clock in µs: the clock V8 CPU profiles time their samples with (CLOCK_MONOTONIC). */
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

const cpuUs = (s: ServerSample): number => s.cpu.user + s.cpu.system;

/** How long the load generator may take to reach each point of a task. */
function timeouts(task: Task): { start: number; end: number; result: number } {
  switch (task.kind) {
    case 'closed':
    case 'open':
    case 'group':
      return { start: task.warmupMs + 30_000, end: task.durationMs + 30_000, result: task.drainMs + 30_000 };
    case 'idle':
      return { start: 30_000, end: 180_000, result: 30_000 };
    case 'drain':
      return { start: 120_000, end: task.timeoutMs + 30_000, result: 30_000 };
    case 'signin':
      return { start: 60_000, end: task.durationMs + 30_000, result: 60_000 };
  }
}

/** One task on a started server: samples at the window edges (and, for idle connections, memory around it). */
async function runTask(
  servers: ServerChannel[],
  loadgen: LoadgenChannel,
  planned: PlannedTask,
  machine: MachineInfo,
): Promise<PhaseRun> {
  const { task } = planned;
  const limits = timeouts(task);
  loadgen.send({ type: 'run', task });
  let memoryBefore: ServerSample | null = null;
  if (task.kind === 'idle') {
    await loadgen.next('armed', 60_000);
    memoryBefore = await sampleServer(servers, true);
    loadgen.send({ type: 'go' });
  }
  await loadgen.next('window-start', limits.start);
  const monoStart = monotonicUs();
  const machineStart = machineIdleUs();
  const wallStart = performance.now();
  const before = await sampleServer(servers);
  await loadgen.next('window-end', limits.end);
  const monoEnd = monotonicUs();
  const after = await sampleServer(servers);
  const machineEnd = machineIdleUs();
  const wallUs = (performance.now() - wallStart) * 1000;
  const { result } = await loadgen.next('result', limits.result);
  // Messages were lost: where the server holds them now (a send it never answered, one waiting on its store).
  const heldAtEnd = integrityProblems(result).length > 0 ? (await sampleServer(servers)).gauges : undefined;
  let memory: PhaseRun['memory'] = null;
  if (memoryBefore !== null) {
    const memoryAfter = await sampleServer(servers, true);
    memory = {
      rssBefore: memoryBefore.rss,
      rssAfter: memoryAfter.rss,
      heapBefore: memoryBefore.heapUsed,
      heapAfter: memoryAfter.heapUsed,
    };
    loadgen.send({ type: 'close-idle' });
    await loadgen.next('closed', 60_000);
  }
  return {
    label: planned.label,
    result,
    serverCpuUs: cpuUs(after) - cpuUs(before),
    serverLoopActiveMs: after.loopActiveMs - before.loopActiveMs,
    serverLoopDelay: after.loopDelay,
    serverGcPause: after.gcPause,
    serverMainThread:
      after.mainThread === null || before.mainThread === null
        ? null
        : {
            onCpuMs: after.mainThread.onCpuMs - before.mainThread.onCpuMs,
            runQueueWaitMs: after.mainThread.runQueueWaitMs - before.mainThread.runQueueWaitMs,
          },
    serverCounters: Object.fromEntries(
      Object.entries(after.counters).map(([name, value]) => [name, value - (before.counters[name] ?? 0)]),
    ),
    machineBusyUs:
      machineStart === null || machineEnd === null ? null : wallUs * machine.cores - (machineEnd - machineStart),
    serverRss: after.rss,
    memory,
    windowMonoUs: [monoStart, monoEnd],
    ...(heldAtEnd ? { serverHeldAtEnd: heldAtEnd } : {}),
  };
}

function progress(server: string, rep: number, phase: PhaseRun): void {
  const r = phase.result;
  const problems = integrityProblems(r);
  let figures: string;
  switch (r.kind) {
    case 'messaging':
      figures =
        `${Math.round((r.delivered * 1000) / r.windowMs)} delivered/s` +
        (r.latencyMs === null ? '' : `, p99 ${r.latencyMs.p99.toFixed(1)} ms`) +
        `, ${(phase.serverCpuUs / Math.max(1, r.delivered)).toFixed(1)} µs/delivery`;
      break;
    case 'idle':
      figures =
        `${Math.round((r.connections * 1000) / r.windowMs)} connects/s` +
        (phase.memory === null
          ? ''
          : `, ${((phase.memory.rssAfter - phase.memory.rssBefore) / 1024 / r.connections).toFixed(1)} KiB RSS/conn`);
      break;
    case 'drain':
      figures = `${r.messages} messages in ${(r.windowMs / 1000).toFixed(2)} s${r.complete ? '' : ' (timed out)'}`;
      break;
    case 'signin':
      figures = `${((r.signIns * 1000) / r.windowMs).toFixed(1)} sign-ins/s`;
      break;
  }
  process.stdout.write(
    `  [${Math.round(elapsedMs() / 1000)} s] ${server.padEnd(15)} rep ${rep + 1} ${phase.label.padEnd(16)} ${figures}` +
      (problems.length > 0 ? ` — ${problems.join(', ')}` : '') +
      (phase.serverHeldAtEnd ? ` (server after the drain: ${describeHeld(phase.serverHeldAtEnd)})` : '') +
      '\n',
  );
}

/** Starts a server's node processes and a load generator, runs `tasks`, stops everything. */
async function withServer(
  definition: ServerDefinition,
  extraEnv: Record<string, string>,
  settings: BenchSettings,
  body: (servers: ServerChannel[], loadgen: LoadgenChannel, urls: string[]) => Promise<void>,
): Promise<void> {
  const execArgv = [
    '--expose-gc',
    ...(settings.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`]),
  ];
  const servers: ServerChannel[] = [];
  let loadgen: LoadgenChannel | null = null;
  let cleanup = async (): Promise<void> => {};
  try {
    const prepared = await definition.prepare();
    cleanup = prepared.cleanup;
    prepared.envs.forEach((env, i) => {
      const server: ServerChannel = new ChildChannel(
        forkTs(definition.script, definition.args, { ...env, ...extraEnv }, [
          ...execArgv,
          ...(definition.client === 'weconnect' ? (settings.relayNodeFlags ?? []) : []),
        ]),
        `server ${definition.name}${prepared.envs.length > 1 ? ` node ${i + 1}` : ''}`,
      );
      servers.push(server);
      live.add(server as ChildChannel<{ type: string }, unknown>);
    });
    const readies = await Promise.all(servers.map((server) => server.next('ready', 30_000)));
    loadgen = new ChildChannel(
      forkTs(fileURLToPath(new URL('./loadgen.ts', import.meta.url)), [], process.env),
      'load generator',
    );
    live.add(loadgen as ChildChannel<{ type: string }, unknown>);
    await body(
      servers,
      loadgen,
      readies.map((ready) => `http://127.0.0.1:${ready.port}`),
    );
  } finally {
    if (loadgen !== null) {
      loadgen.send({ type: 'stop' });
      await loadgen.exit(5_000);
      live.delete(loadgen as ChildChannel<{ type: string }, unknown>);
    }
    for (const server of servers) server.send({ type: 'stop' });
    // Stopping is not measured: a server still running after 3 s is killed (with Redis the relay closes slowly).
    await Promise.all(servers.map((server) => server.exit(3_000)));
    for (const server of servers) live.delete(server as ChildChannel<{ type: string }, unknown>);
    await cleanup().catch((error: unknown) => console.error(`  ${definition.name}: cleanup failed: ${String(error)}`));
  }
}

/** The reduced plan of the first FerretDB server in the run, if any: its one-node reference runs it too. */
const reducedInRun = (settings: BenchSettings): ServerDefinition['reduced'] =>
  SERVERS.find((s) => settings.servers.includes(s.name) && s.reduced !== undefined)?.reduced;

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** A server run with no figures yet (or never: `skipped` says why it did not run). */
function emptyRun(server: string, rep: number, skipped: string | null): ServerRun {
  return {
    server,
    rep,
    setupMs: Number.NaN,
    connectMs: Number.NaN,
    devices: 0,
    rssReady: Number.NaN,
    rssConnected: Number.NaN,
    phases: [],
    failure: null,
    skipped,
    durationMs: 0,
  };
}

async function runServer(
  definition: ServerDefinition,
  settings: BenchSettings,
  rep: number,
  machine: MachineInfo,
): Promise<ServerRun> {
  const run = emptyRun(definition.name, rep, null);
  const runStarted = performance.now();
  const plan = plannedTasks(definition, settings, rep, reducedInRun(settings));
  try {
    await withServer(definition, {}, settings, async (servers, loadgen, urls) => {
      const url = urls[0] ?? '';
      run.pids = servers.flatMap((server) => (server.child.pid === undefined ? [] : [server.child.pid]));
      run.rssReady = (await sampleServer(servers, true)).rss;
      const setup = {
        url,
        recipientUrl: urls[urls.length - 1] ?? url,
        client: definition.client,
        parser: definition.parser,
        socketIoClient: settings.client,
        pairs: plan.pairs,
        bodyBytes: settings.bodyBytes,
        groups: plan.groups,
        offlineDevice: plan.tasks.some((t) => t.task.kind === 'drain'),
      };
      // Idle connections first, on the fresh server: its memory is then least disturbed by earlier work.
      const idle = plan.tasks.find((t) => t.task.kind === 'idle');
      if (idle !== undefined) {
        const phase = await runTask(
          servers,
          loadgen,
          { ...idle, task: { ...idle.task, setup } as Task },
          machine,
        ).catch((error: unknown) => {
          throw new Error(`${idle.label}: ${message(error)}`);
        });
        run.phases.push(phase);
        progress(definition.name, rep, phase);
      }
      loadgen.send({ type: 'setup', setup });
      const ready = await loadgen.next('ready', 180_000);
      run.setupMs = ready.setupMs;
      run.connectMs = ready.connectMs;
      run.devices = plan.pairs * 2;
      run.rssConnected = (await sampleServer(servers, true)).rss;
      for (const planned of plan.tasks) {
        if (planned.task.kind === 'signin' || planned.task.kind === 'idle') continue;
        const phase = await runTask(servers, loadgen, planned, machine).catch((error: unknown) => {
          throw new Error(`${planned.label}: ${message(error)}`);
        });
        run.phases.push(phase);
        progress(definition.name, rep, phase);
      }
    });
    // Sign-ins at the production bcrypt cost get their own short start of the same server (not in durationMs, which
    // predicts the next repetition's start).
    run.durationMs = performance.now() - runStarted;
    const signin = plan.tasks.find((t) => t.task.kind === 'signin');
    if (signin !== undefined) {
      await withServer(definition, { BCRYPT_COST: '12' }, settings, async (servers, loadgen, urls) => {
        const task = { ...signin, task: { ...signin.task, url: urls[0] ?? '' } as Task };
        const phase = await runTask(servers, loadgen, task, machine).catch((error: unknown) => {
          throw new Error(`${signin.label}: ${message(error)}`);
        });
        run.phases.push(phase);
        progress(definition.name, rep, phase);
      });
    }
  } catch (error) {
    if (error instanceof SkipServer) {
      run.skipped = error.message;
      console.log(`  ${definition.name} rep ${rep + 1} skipped: ${error.message}`);
    } else {
      run.failure = message(error);
      console.error(`  ${definition.name} rep ${rep + 1} failed: ${run.failure}`);
    }
  }
  if (run.durationMs === 0) run.durationMs = performance.now() - runStarted;
  return run;
}

/**
 * "Where the CPU goes" from this run's profiles: per server (those on the full plan), the profiled phase is the
 * closed loop (else the server's first messaging phase), all repetitions; its CPU µs per delivery from the same
 * windows.
 */
function profileReport(dir: string, runs: ServerRun[], definitions: ServerDefinition[], reps: number): string {
  const phases: ProfiledPhase[] = [];
  const command = ['npm run bench', '--', ...process.argv.slice(2)].join(' ');
  for (const definition of definitions.filter((d) => d.reduced === undefined)) {
    const mine = runs.filter((r) => r.server === definition.name && r.pids !== undefined);
    const label =
      mine.flatMap((r) => r.phases).find((p) => p.label === 'closed')?.label ??
      mine.flatMap((r) => r.phases).find((p) => p.result.kind === 'messaging')?.label;
    if (label === undefined) continue;
    const summaries = [];
    let cpu = 0;
    let delivered = 0;
    for (const run of mine.slice(0, reps)) {
      const phase = run.phases.find((p) => p.label === label);
      if (phase?.windowMonoUs === undefined || phase.result.kind !== 'messaging') continue;
      cpu += phase.serverCpuUs;
      delivered += phase.result.delivered;
      for (const pid of run.pids ?? []) {
        for (const file of profilesOf(dir, pid)) {
          const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
          summaries.push(summarizeProfile(profile, [phase.windowMonoUs]));
        }
      }
    }
    if (summaries.length === 0 || delivered === 0) continue;
    phases.push({
      server: definition.name,
      label,
      cpuUsPerDelivery: cpu / delivered,
      summary: mergeSummaries(summaries),
    });
  }
  return renderProfileSection(phases, command);
}

/** `--blobs [--blob-mib N]`: the blob workload alone (bench/blobs.ts): upload and download MiB/s, relay RSS. */
async function blobsMain(argv: string[]): Promise<number> {
  const i = argv.indexOf('--blob-mib');
  const mib = i >= 0 ? Number(argv[i + 1]) : 100;
  if (!Number.isFinite(mib) || mib <= 0) throw new Error('--blob-mib needs a positive number');
  console.log(`bench: blobs, ${mib} MiB through a relay process (SQLite, files under DATA_DIR)`);
  const result = await runBlobBench({ bytes: Math.round(mib * 1024 * 1024) });
  console.log(`\n${renderBlobBench(result)}\n`);
  return result.intact ? 0 : 1;
}

async function main(): Promise<number> {
  if (process.argv.includes('--blobs')) return blobsMain(process.argv.slice(2));
  const settings = parseSettings(process.argv.slice(2), SERVERS);
  if (settings.profileDir !== null) mkdirSync(settings.profileDir, { recursive: true });
  const machine = machineInfo();
  const definitions = settings.servers.map((name) => SERVERS.find((s) => s.name === name) as ServerDefinition);
  console.log(
    `bench: ${settings.reps} rep(s) × [${settings.servers.join(', ')}], ${settings.pairs} pairs, ` +
      `${settings.bodyBytes}-byte bodies; load average ${machine.loadAvgAtStart.join(' ')}; ` +
      `stops itself after ${HARD_LIMIT_MS / 60_000} minutes`,
  );

  const runs: ServerRun[] = [];
  const skipReason = new Map<string, string>();
  // Time kept for the client-cost script at the end, when it exists.
  const reserveMs =
    (settings.clientCost && existsSync(join(ROOT, CLIENT_COST_SCRIPT)) ? 40_000 : 0) +
    (settings.blobMiB > 0 ? BLOB_RESERVE_MS : 0);
  for (let rep = 0; rep < settings.reps; rep++) {
    for (const definition of definitions) {
      const previous = runs.filter((r) => r.server === definition.name && r.skipped === null);
      const expectMs =
        previous.length > 0
          ? Math.max(...previous.map((r) => r.durationMs))
          : plannedTasks(definition, settings, rep, reducedInRun(settings)).estimateMs;
      const known = skipReason.get(definition.name);
      const skipped =
        known ??
        (elapsedMs() + expectMs + reserveMs > SOFT_LIMIT_MS
          ? `not started: it would end past the time budget (${Math.round(SOFT_LIMIT_MS / 1000)} s)`
          : null);
      if (skipped !== null) {
        console.log(`  ${definition.name} rep ${rep + 1} skipped: ${skipped}`);
        runs.push(emptyRun(definition.name, rep, skipped));
        continue;
      }
      const run = await runServer(definition, settings, rep, machine);
      if (run.skipped !== null) skipReason.set(definition.name, run.skipped);
      runs.push(run);
    }
  }

  let blobs: BlobBenchResult | { failed: string } | null = null;
  if (settings.blobMiB > 0) {
    console.log(`  [${Math.round(elapsedMs() / 1000)} s] blobs, ${settings.blobMiB} MiB up and down (bench/blobs.ts)`);
    blobs = await runBlobBench({ bytes: Math.round(settings.blobMiB * 2 ** 20) }).catch((error: unknown) => ({
      failed: message(error),
    }));
    if ('failed' in blobs) console.error(`  blobs failed: ${blobs.failed}`);
    else
      console.log(
        `  blobs: upload ${blobs.uploadMBps} MiB/s, download ${blobs.downloadMBps} MiB/s, ` +
          `relay RSS +${blobs.rssGrowthMiB} MiB, ${blobs.intact ? 'intact' : 'NOT INTACT'}`,
      );
  }

  const clientCostTimeout = Math.min(180_000, HARD_LIMIT_MS - 15_000 - elapsedMs());
  if (settings.clientCost)
    console.log(`  [${Math.round(elapsedMs() / 1000)} s] client cost (crypto/bench/client-cost.ts)`);
  const clientCost = settings.clientCost
    ? await runClientCost(ROOT, clientCostTimeout)
    : { measured: false as const, reason: 'skipped with --no-client-cost', command: '' };
  if (!clientCost.measured) console.log(`  client cost not measured: ${clientCost.reason}`);

  const profileSection =
    settings.profileDir === null ? null : profileReport(settings.profileDir, runs, definitions, settings.reps);

  const report = renderReport({
    profileSection,
    settings,
    machine,
    runs,
    baseline: BASELINE,
    floor: FLOOR,
    servers: definitions,
    clientCost,
    blobs,
    elapsedS: Math.round(elapsedMs() / 1000),
    command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
  });
  console.log(`\n${report.markdown}`);
  if (settings.write) {
    const target = join(ROOT, 'BENCHMARKS.md');
    await writeFile(target, report.markdown);
    await writeFile(join(ROOT, CHART_FILES.latency), report.charts.latency);
    await writeFile(join(ROOT, CHART_FILES.cpu), report.charts.cpu);
    console.log(`wrote ${target}, ${CHART_FILES.latency} and ${CHART_FILES.cpu} beside it`);
  }
  if (settings.profileDir !== null) console.log(`server CPU profiles in ${settings.profileDir}`);
  console.log(`bench: finished in ${Math.round(elapsedMs() / 1000)} s`);
  if (report.problems.length > 0) {
    console.error(`bench: FAILED — ${report.problems.join('; ')}`);
    return 1;
  }
  return 0;
}

function killAll(): void {
  for (const channel of live) channel.child.kill('SIGKILL');
  killClientCost();
}

const watchdog = setTimeout(() => {
  console.error('bench: hard time limit reached, stopping');
  killAll();
  process.exit(1);
}, HARD_LIMIT_MS);
watchdog.unref();

// Ctrl-C or a kill: take the children down too (test/services.ts kills FerretDB and redis-server on exit).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(message(error));
    killAll();
    process.exit(1);
  },
);
