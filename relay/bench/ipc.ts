// The messages that the bench orchestrator exchanges with its server and load-generator child processes.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

/** CPU time of a process in microseconds, as `process.cpuUsage()` reports it. */
export interface CpuSample {
  user: number;
  system: number;
}

/** Cumulative scheduler times of a server's main (event-loop) thread. */
export interface MainThreadSample {
  onCpuMs: number;
  /** Runnable but waiting for a CPU: time other processes took from it. */
  runQueueWaitMs: number;
}

/** A server's cumulative resource counters at one moment; the orchestrator takes differences over a window. */
export interface ServerSample {
  cpu: CpuSample;
  rss: number;
  /** Event-loop active time, ms (`performance.eventLoopUtilization().active`): CPU plus time blocked in syscalls. */
  loopActiveMs: number;
  mainThread: MainThreadSample | null;
  /** Event-loop delay since the previous sample, ms: how long a ready callback (an IPC message, a frame) waited. */
  loopDelay: { p99Ms: number; maxMs: number };
  /** Server-specific counters, e.g. the WeConnect relay's committed transactions. */
  counters: Record<string, number>;
}

/** Server child → orchestrator. */
export type ServerEvent =
  { type: 'ready'; port: number; rss: number } | ({ type: 'sample' } & ServerSample) | { type: 'stopped' };

/** Orchestrator → server child. */
export type ServerCommand = { type: 'sample' } | { type: 'stop' };

/** What the load generator drives: the server's URL and how devices authenticate. */
export interface LoadgenSetup {
  /** Where devices sign up and senders connect. */
  url: string;
  /** Where recipients connect: `url` for one node, the second node for a two-node run. */
  recipientUrl: string;
  /** `weconnect` signs up accounts and sends access tokens; `bare` sends a made-up device id. */
  auth: 'weconnect' | 'bare';
  parser: 'default' | 'msgpack';
  pairs: number;
  bodyBytes: number;
}

export type Workload =
  | { kind: 'closed'; inFlightPerSender: number; warmupMs: number; durationMs: number; drainMs: number }
  | { kind: 'open'; ratePerSec: number; warmupMs: number; durationMs: number; drainMs: number };

/** Figures of one workload run, measured by the load generator over its measurement window. */
export interface WorkloadResult {
  workload: Workload;
  windowMs: number;
  /** Deliveries (recipient got the message and the sender got the relay's ack) completed inside the window. */
  delivered: number;
  /** Messages sent inside the window (open loop: scheduled inside the window). */
  sent: number;
  /** Latency from the scheduled send time to the recipient's receipt, in ms; open loop only. */
  latencyMs: { p50: number; p99: number; max: number; count: number } | null;
  /** Messages of the window still undelivered when the drain time ran out. */
  undelivered: number;
  /** Send acks with `ok: false` (e.g. rate_limited) over the whole run. */
  rejected: number;
  /** Load generator's own CPU over the window, microseconds. */
  loadgenCpuUs: number;
  /** Event-loop delay p99 of the load generator over the window, ms (high = the generator itself fell behind). */
  loadgenLoopDelayP99Ms: number;
  /** Open loop: how far sending fell behind its schedule at worst, ms. */
  maxSendLagMs: number;
}

/** Load generator child → orchestrator. */
export type LoadgenEvent =
  | { type: 'ready'; setupMs: number }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'result'; result: WorkloadResult }
  | { type: 'error'; message: string };

/** Orchestrator → load generator child. */
export type LoadgenCommand =
  { type: 'setup'; setup: LoadgenSetup } | { type: 'run'; workload: Workload } | { type: 'stop' };

/** Starts a TypeScript file as a child process with an IPC channel (tsx loader, `source` export condition). */
export function forkTs(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  extraExecArgv: string[] = [],
): ChildProcess {
  return fork(script, args, {
    execArgv: ['--conditions=source', '--import', 'tsx', ...extraExecArgv],
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

/**
 * A child process seen as a queue of IPC messages: nothing is lost between two waits. Every wait is bounded and
 * fails fast when the child exits or reports `{type: 'error'}`.
 */
export class ChildChannel<Event extends { type: string }, Command> {
  private readonly queue: Event[] = [];
  private waiter: (() => void) | null = null;
  private exited: string | null = null;

  constructor(
    readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.on('message', (message: Event) => {
      this.queue.push(message);
      this.waiter?.();
    });
    child.on('exit', (code, signal) => {
      this.exited = `exited (code ${String(code)}, signal ${String(signal)})`;
      this.waiter?.();
    });
  }

  send(command: Command): void {
    if (this.exited === null && this.child.connected) this.child.send(command as object);
  }

  /** The next message of type `type`; messages of other types that arrive first are dropped. */
  async next<T extends Event['type']>(type: T, timeoutMs: number): Promise<Extract<Event, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.queue.length > 0) {
        const message = this.queue.shift() as Event;
        if (message.type === type) return message as Extract<Event, { type: T }>;
        if (message.type === 'error') {
          throw new Error(`${this.name}: ${(message as { message?: string }).message ?? 'reported an error'}`);
        }
      }
      if (this.exited !== null) throw new Error(`${this.name} ${this.exited} while waiting for '${type}'`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no '${type}' within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** Waits up to `timeoutMs` for the child to exit, then kills it with SIGKILL. */
  async exit(timeoutMs: number): Promise<void> {
    if (this.exited !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, timeoutMs);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Sends an IPC message to the parent; a no-op when there is none (the script was started by hand). */
export function toParent(message: ServerEvent | LoadgenEvent): void {
  process.send?.(message);
}
