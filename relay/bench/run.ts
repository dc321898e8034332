// Benchmark orchestrator: for each repetition and each server, start the server and a load generator as separate
// child processes, run the workloads, sample the server's CPU at the window edges, then print (and with --write
// save as RESULTS.md) the report. See README.md for the options; bounded by a 10-minute watchdog.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ChildChannel, forkTs } from './ipc.js';
import type {
  CpuSample,
  LoadgenCommand,
  LoadgenEvent,
  ServerCommand,
  ServerEvent,
  ServerSample,
  Workload,
} from './ipc.js';
import { machineIdleUs, machineInfo } from './machine.js';
import type { MachineInfo } from './machine.js';
import { TWO_NODE, TWO_NODE_HEADING, renderReport, renderTwoNodeSection } from './report.js';
import type { BenchSettings, PhaseRun, ServerRun } from './report.js';
import { BASELINE, SERVERS } from './servers/index.js';
import type { ServerDefinition } from './servers/index.js';

const HARD_LIMIT_MS = 10 * 60_000;

function parseArgs(argv: string[]): BenchSettings & { write: boolean; append: boolean; profileDir: string | null } {
  const flag = (name: string): boolean => argv.includes(`--${name}`);
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = flag('quick');
  const number = (name: string, fallback: number): number => {
    const raw = value(name);
    const parsed = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`--${name} needs a positive number`);
    return parsed;
  };
  const servers = (
    value('servers') ??
    SERVERS.filter((s) => s.byDefault)
      .map((s) => s.name)
      .join(',')
  ).split(',');
  for (const name of servers) {
    if (!SERVERS.some((s) => s.name === name)) throw new Error(`unknown server '${name}'`);
  }
  return {
    reps: number('reps', quick ? 1 : 2),
    servers,
    pairs: number('pairs', 100),
    bodyBytes: number('body', 300),
    inFlightPerSender: number('inflight', 8),
    closed: !flag('no-closed'),
    rates: (value('rates') ?? (quick ? '2000,5000' : '2000,5000,10000'))
      .split(',')
      .filter((r) => r !== 'none')
      .map(Number),
    warmupMs: number('warmup', quick ? 1 : 2) * 1000,
    durationMs: number('duration', quick ? 4 : 8) * 1000,
    drainMs: number('drain', 5) * 1000,
    write: flag('write'),
    append: flag('append-two-node'),
    profileDir: flag('profile') ? join(tmpdir(), `weconnect-bench-profiles-${Date.now()}`) : null,
  };
}

function workloadsOf(settings: BenchSettings): Workload[] {
  const common = { warmupMs: settings.warmupMs, durationMs: settings.durationMs, drainMs: settings.drainMs };
  return [
    ...(settings.closed
      ? [{ kind: 'closed', inFlightPerSender: settings.inFlightPerSender, ...common } satisfies Workload]
      : []),
    ...settings.rates.map((ratePerSec): Workload => ({ kind: 'open', ratePerSec, ...common })),
  ];
}

type ServerChannel = ChildChannel<ServerEvent, ServerCommand>;

async function sampleOne(server: ServerChannel): Promise<ServerSample> {
  server.send({ type: 'sample' });
  return server.next('sample', 30_000);
}

/**
 * Samples every node process of a server at once and sums them (CPU, RSS, loop and main-thread times, counters);
 * the loop delay is the worst node's.
 */
async function sampleServer(nodes: ServerChannel[]): Promise<ServerSample> {
  const samples = await Promise.all(nodes.map(sampleOne));
  const [first, ...rest] = samples;
  if (first === undefined) throw new Error('no server process');
  return rest.reduce<ServerSample>(
    (sum, s) => ({
      cpu: { user: sum.cpu.user + s.cpu.user, system: sum.cpu.system + s.cpu.system },
      rss: sum.rss + s.rss,
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
      counters: Object.fromEntries(
        [...new Set([...Object.keys(sum.counters), ...Object.keys(s.counters)])].map((name) => [
          name,
          (sum.counters[name] ?? 0) + (s.counters[name] ?? 0),
        ]),
      ),
    }),
    first,
  );
}

const cpuUs = (c: CpuSample): number => c.user + c.system;

const live = new Set<ChildChannel<{ type: string }, unknown>>();

async function runServer(
  definition: ServerDefinition,
  settings: BenchSettings,
  rep: number,
  profileDir: string | null,
  machine: MachineInfo,
): Promise<ServerRun> {
  const execArgv = profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  const servers: ServerChannel[] = [];
  let loadgen: ChildChannel<LoadgenEvent, LoadgenCommand> | null = null;
  let cleanup = async (): Promise<void> => {};
  try {
    const prepared = await definition.prepare();
    cleanup = prepared.cleanup;
    prepared.envs.forEach((env, i) => {
      const server: ServerChannel = new ChildChannel(
        forkTs(definition.script, definition.args, env, execArgv),
        `server ${definition.name}${prepared.envs.length > 1 ? ` node ${i + 1}` : ''}`,
      );
      servers.push(server);
      live.add(server as ChildChannel<{ type: string }, unknown>);
    });
    const readies = await Promise.all(servers.map((server) => server.next('ready', 30_000)));
    const urls = readies.map((ready) => `http://127.0.0.1:${ready.port}`);
    const url = urls[0] ?? '';
    const ready = { rss: readies.reduce((sum, r) => sum + r.rss, 0) };
    loadgen = new ChildChannel(
      forkTs(fileURLToPath(new URL('./loadgen.ts', import.meta.url)), [], process.env),
      'load generator',
    );
    live.add(loadgen as ChildChannel<{ type: string }, unknown>);
    loadgen.send({
      type: 'setup',
      setup: {
        url,
        recipientUrl: urls[urls.length - 1] ?? url,
        auth: definition.auth,
        parser: definition.parser,
        pairs: settings.pairs,
        bodyBytes: settings.bodyBytes,
      },
    });
    const { setupMs } = await loadgen.next('ready', 120_000);
    const connected = await sampleServer(servers);

    const phases: PhaseRun[] = [];
    let failure: string | null = null;
    for (const workload of workloadsOf(settings)) {
      if (failure !== null) break;
      try {
        loadgen.send({ type: 'run', workload });
        await loadgen.next('window-start', workload.warmupMs + 30_000);
        const machineStart = machineIdleUs();
        const wallStart = performance.now();
        const before = await sampleServer(servers);
        await loadgen.next('window-end', workload.durationMs + 30_000);
        const after = await sampleServer(servers);
        const machineEnd = machineIdleUs();
        const wallUs = (performance.now() - wallStart) * 1000;
        const { result } = await loadgen.next('result', workload.drainMs + 30_000);
        phases.push({
          result,
          serverCpuUs: cpuUs(after.cpu) - cpuUs(before.cpu),
          serverLoopActiveMs: after.loopActiveMs - before.loopActiveMs,
          serverLoopDelay: after.loopDelay,
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
        });
        process.stdout.write(
          `  ${definition.name.padEnd(13)} rep ${rep + 1} ${describe(workload).padEnd(16)} ` +
            `${Math.round((result.delivered * 1000) / result.windowMs)} delivered/s` +
            (result.latencyMs === null ? '' : `, p99 ${result.latencyMs.p99.toFixed(1)} ms`) +
            (result.undelivered > 0 ? `, ${result.undelivered} undelivered` : '') +
            '\n',
        );
      } catch (error) {
        failure = `${describe(workload)}: ${error instanceof Error ? error.message : String(error)}`;
        console.error(`  ${definition.name} rep ${rep + 1} failed at ${failure}`);
      }
    }
    return { server: definition.name, rep, setupMs, rssConnected: connected.rss, rssIdle: ready.rss, phases, failure };
  } catch (error) {
    const failure = `setup: ${error instanceof Error ? error.message : String(error)}`;
    console.error(`  ${definition.name} rep ${rep + 1} failed at ${failure}`);
    return {
      server: definition.name,
      rep,
      setupMs: Number.NaN,
      rssConnected: Number.NaN,
      rssIdle: Number.NaN,
      phases: [],
      failure,
    };
  } finally {
    if (loadgen !== null) {
      loadgen.send({ type: 'stop' });
      await loadgen.exit(5_000);
      live.delete(loadgen as ChildChannel<{ type: string }, unknown>);
    }
    for (const server of servers) server.send({ type: 'stop' });
    await Promise.all(servers.map((server) => server.exit(10_000)));
    for (const server of servers) live.delete(server as ChildChannel<{ type: string }, unknown>);
    await cleanup().catch((error: unknown) => console.error(`  ${definition.name}: cleanup failed: ${String(error)}`));
  }
}

function describe(workload: Workload): string {
  return workload.kind === 'closed' ? `closed K=${workload.inFlightPerSender}` : `open ${workload.ratePerSec}/s`;
}

async function main(): Promise<void> {
  const settings = parseArgs(process.argv.slice(2));
  if (settings.profileDir !== null) mkdirSync(settings.profileDir, { recursive: true });
  const machine = machineInfo();
  const started = Date.now();
  const perServerMs = workloadsOf(settings).reduce((sum, w) => sum + w.warmupMs + w.durationMs + 500, 0) + 8_000;
  const estimateS = Math.round((perServerMs * settings.reps * settings.servers.length) / 1000);
  console.log(
    `bench: ${settings.reps} rep(s) × [${settings.servers.join(', ')}], ${settings.pairs} pairs, ` +
      `${settings.bodyBytes}-byte bodies, about ${estimateS} s; load average ${machine.loadAvgAtStart.join(' ')}`,
  );
  if (estimateS * 1000 > HARD_LIMIT_MS) throw new Error('these settings would run past the 10-minute limit');

  const runs: ServerRun[] = [];
  for (let rep = 0; rep < settings.reps; rep++) {
    for (const name of settings.servers) {
      const definition = SERVERS.find((s) => s.name === name);
      if (definition !== undefined) runs.push(await runServer(definition, settings, rep, settings.profileDir, machine));
    }
  }
  const input = {
    settings,
    machine,
    runs,
    baseline: BASELINE,
    servers: SERVERS.filter((s) => settings.servers.includes(s.name)),
    workloads: workloadsOf(settings).map(describe),
    elapsedS: Math.round((Date.now() - started) / 1000),
  };
  const report = renderReport(input);
  console.log(`\n${report}`);
  const target = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
  if (settings.write) {
    await writeFile(target, report);
    console.log(`wrote ${target}`);
  } else if (settings.append) {
    // Keeps RESULTS.md up to the two-node section and replaces that section with this run's: the section's table,
    // then this run's whole report with its headings demoted.
    if (!settings.servers.includes(TWO_NODE)) throw new Error(`--append-two-node needs ${TWO_NODE} in --servers`);
    const existing = await readFile(target, 'utf8').catch(() => '');
    const at = existing.indexOf(`\n${TWO_NODE_HEADING}\n`);
    const kept = (at >= 0 ? existing.slice(0, at) : existing).trimEnd();
    const demoted = report.replace(/^(#+) /gm, '$1## ');
    const section =
      `${renderTwoNodeSection(input).trimEnd()}\n\nCommand: \`npm run bench -w relay -- ${process.argv.slice(2).join(' ')}\`` +
      `\n\n<details><summary>The whole report of that run</summary>\n\n${demoted.trimEnd()}\n\n</details>\n`;
    await writeFile(target, `${kept}\n\n${section}`);
    console.log(`updated the "${TWO_NODE_HEADING.slice(3)}" section of ${target}`);
  }
  if (settings.profileDir !== null) console.log(`server CPU profiles in ${settings.profileDir}`);
}

const watchdog = setTimeout(() => {
  console.error('bench: hard time limit reached, stopping');
  for (const channel of live) channel.child.kill('SIGKILL');
  process.exit(1);
}, HARD_LIMIT_MS);
watchdog.unref();

// Ctrl-C or a kill: take the children down too (test/services.ts kills FerretDB and redis-server on exit).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const channel of live) channel.child.kill('SIGKILL');
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    for (const channel of live) channel.child.kill('SIGKILL');
    process.exit(1);
  },
);
