// Runs a bench server inside its child process: reports its port, answers CPU samples, stops on request.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { PerformanceEntry } from 'node:perf_hooks';
import { toParent } from '../ipc.js';
import type { GcPauses, MainThreadSample, ServerCommand } from '../ipc.js';

export interface StartedServer {
  port: number;
  close(): Promise<void>;
  /** Cumulative counters worth reporting per window (optional). */
  counters?: () => Record<string, number>;
  /** What the server holds right now (optional): reported for a phase that lost messages, after its drain. */
  gauges?: () => Record<string, number>;
}

/**
 * The main thread's scheduler statistics (Linux /proc/<pid>/task/<pid>/schedstat): time on a CPU and time spent
 * runnable but waiting for one. The event loop runs on this thread, so the two separate "the relay worked" from
 * "another process held the core"; null where there is no such file.
 */
function mainThreadSample(): MainThreadSample | null {
  try {
    const [onCpuNs, waitNs] = readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (onCpuNs === undefined || waitNs === undefined || Number.isNaN(onCpuNs + waitNs)) return null;
    return { onCpuMs: onCpuNs / 1e6, runQueueWaitMs: waitNs / 1e6 };
  } catch {
    return null;
  }
}

/**
 * Bytes this process (all its threads: the relay's writer worker too) caused to be written to the disk so far, from
 * Linux's /proc/self/io `write_bytes`: each page of a file counted when it becomes dirty, and not again until it is
 * written back, so a WAL page rewritten before writeback counts once, as it reaches the disk once. Socket writes do
 * not count. Absent where there is no such file.
 */
export function diskCounters(): Record<string, number> {
  try {
    const bytes = /^write_bytes:\s*(\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1];
    return bytes === undefined ? {} : { diskWriteBytes: Number(bytes) };
  } catch {
    return {};
  }
}

/**
 * With BENCH_HEAP_PROFILE_DIR set, samples every allocation of the server's life, collected objects included, and
 * writes `heap.<pid>.heapprofile` there when it stops (bench/heap-summary.ts reads it): where the garbage that the
 * collector's time pays for comes from. The sampler slows the server down: never in a measured run.
 */
async function sampleHeap(dir: string): Promise<() => Promise<void>> {
  const session = new Session();
  session.connect();
  const post = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve, reject) =>
      session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
    );
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return async () => {
    const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
    writeFileSync(join(dir, `heap.${process.pid}.heapprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

/**
 * Starts the server and serves the orchestrator's IPC commands. The server's own CPU is sampled here with
 * `process.cpuUsage()`, so the figure is this process alone (the load generator runs elsewhere).
 */
export async function hostServer(start: () => Promise<StartedServer>): Promise<void> {
  const heapDir = process.env.BENCH_HEAP_PROFILE_DIR;
  const stopSampling = heapDir ? await sampleHeap(heapDir) : null;
  const server = await start();
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const forced = setTimeout(() => process.exit(0), 5_000);
    forced.unref();
    try {
      await stopSampling?.();
      await server.close();
    } finally {
      toParent({ type: 'stopped' });
      process.disconnect?.();
      process.exit(0);
    }
  };
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  // Each collection that stopped the main thread (scavenges, the pauses of mark-compact), for the p99 notes.
  let gcPause: GcPauses = { count: 0, totalMs: 0, maxMs: 0 };
  const addPauses = (entries: readonly PerformanceEntry[]): void => {
    for (const entry of entries) {
      gcPause.count += 1;
      gcPause.totalMs += entry.duration;
      gcPause.maxMs = Math.max(gcPause.maxMs, entry.duration);
    }
  };
  const gcObserver = new PerformanceObserver((list) => addPauses(list.getEntries()));
  gcObserver.observe({ entryTypes: ['gc'] });
  process.on('message', (message: ServerCommand) => {
    if (message.type === 'sample') {
      // For memory figures the orchestrator asks for a full collection first (servers run with --expose-gc), so
      // that garbage left by earlier work does not count as memory held by connections.
      if (message.gc === true) (globalThis as { gc?: () => void }).gc?.();
      const loopDelay = { p99Ms: delay.percentile(99) / 1e6, maxMs: delay.max / 1e6 };
      delay.reset();
      addPauses(gcObserver.takeRecords());
      const gcSince = gcPause;
      gcPause = { count: 0, totalMs: 0, maxMs: 0 };
      toParent({
        type: 'sample',
        cpu: process.cpuUsage(),
        rss: process.memoryUsage.rss(),
        heapUsed: process.memoryUsage().heapUsed,
        loopActiveMs: performance.eventLoopUtilization().active,
        mainThread: mainThreadSample(),
        loopDelay,
        gcPause: gcSince,
        counters: { ...server.counters?.(), ...diskCounters() },
        gauges: server.gauges?.() ?? {},
      });
    } else if (message.type === 'stop') void stop();
  });
  // The orchestrator died: do not linger.
  process.on('disconnect', () => void stop());
  toParent({ type: 'ready', port: server.port, rss: process.memoryUsage.rss() });
}
