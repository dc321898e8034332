// Runs a bench server inside its child process: reports its port, answers CPU samples, stops on request.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { toParent } from '../ipc.js';
import type { MainThreadSample, ServerCommand } from '../ipc.js';

export interface StartedServer {
  port: number;
  close(): Promise<void>;
  /** Cumulative counters worth reporting per window (optional). */
  counters?: () => Record<string, number>;
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
 * Starts the server and serves the orchestrator's IPC commands. The server's own CPU is sampled here with
 * `process.cpuUsage()`, so the figure is this process alone (the load generator runs elsewhere).
 */
export async function hostServer(start: () => Promise<StartedServer>): Promise<void> {
  const server = await start();
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const forced = setTimeout(() => process.exit(0), 5_000);
    forced.unref();
    try {
      await server.close();
    } finally {
      toParent({ type: 'stopped' });
      process.disconnect?.();
      process.exit(0);
    }
  };
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  process.on('message', (message: ServerCommand) => {
    if (message.type === 'sample') {
      // For memory figures the orchestrator asks for a full collection first (servers run with --expose-gc), so
      // that garbage left by earlier work does not count as memory held by connections.
      if (message.gc === true) (globalThis as { gc?: () => void }).gc?.();
      const loopDelay = { p99Ms: delay.percentile(99) / 1e6, maxMs: delay.max / 1e6 };
      delay.reset();
      toParent({
        type: 'sample',
        cpu: process.cpuUsage(),
        rss: process.memoryUsage.rss(),
        heapUsed: process.memoryUsage().heapUsed,
        loopActiveMs: performance.eventLoopUtilization().active,
        mainThread: mainThreadSample(),
        loopDelay,
        counters: server.counters?.() ?? {},
      });
    } else if (message.type === 'stop') void stop();
  });
  // The orchestrator died: do not linger.
  process.on('disconnect', () => void stop());
  toParent({ type: 'ready', port: server.port, rss: process.memoryUsage.rss() });
}
