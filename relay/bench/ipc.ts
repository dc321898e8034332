// The messages that the bench orchestrator exchanges with its server and load-generator child processes.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { LatencySummary } from './stats.js';

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

/** Garbage-collector pauses of a server's main thread over a window (V8's `gc` performance entries). */
export interface GcPauses {
  count: number;
  totalMs: number;
  maxMs: number;
}

/** A server's cumulative resource counters at one moment; the orchestrator takes differences over a window. */
export interface ServerSample {
  cpu: CpuSample;
  rss: number;
  heapUsed: number;
  /** Event-loop active time, ms (`performance.eventLoopUtilization().active`): CPU plus time blocked in syscalls. */
  loopActiveMs: number;
  mainThread: MainThreadSample | null;
  /** Event-loop delay since the previous sample, ms: how long a ready callback (an IPC message, a frame) waited. */
  loopDelay: { p99Ms: number; maxMs: number };
  /** Garbage-collector pauses of the main thread since the previous sample. */
  gcPause: GcPauses;
  /** Server-specific counters, e.g. the WeConnect relay's committed transactions. */
  counters: Record<string, number>;
  /** Server-specific values at this moment, e.g. the WeConnect relay's sends not answered yet. */
  gauges: Record<string, number>;
}

/** Server child → orchestrator. */
export type ServerEvent =
  { type: 'ready'; port: number; rss: number } | ({ type: 'sample' } & ServerSample) | { type: 'stopped' };

/** Orchestrator → server child. `gc`: collect garbage before sampling (memory figures). */
export type ServerCommand = { type: 'sample'; gc?: boolean } | { type: 'stop' };

/**
 * How the load generator talks to a server: `weconnect` (signed-up accounts, access tokens, msgpack, the relay's
 * groups), `bare` (made-up device ids, `group:create`), `ws` (the raw frames of wire.ts).
 */
export type ClientKind = 'weconnect' | 'bare' | 'ws';

/** What the load generator drives. */
export interface LoadgenSetup {
  /** Where devices sign up and senders connect. */
  url: string;
  /** Where recipients connect: `url` for one node, the second node for a two-node run. */
  recipientUrl: string;
  client: ClientKind;
  parser: 'default' | 'msgpack';
  /** Which Socket.IO client speaks to the Socket.IO servers: `raw` (raw-socketio.ts) or `socketio` (socket.io-client). */
  socketIoClient: 'raw' | 'socketio';
  pairs: number;
  bodyBytes: number;
  /** Group sizes (recipient devices) to create; each must be at most `pairs`. */
  groups: number[];
  /** Set up one extra device that stays offline, for the offline-drain task. */
  offlineDevice: boolean;
}

interface Windowed {
  /** Drive only the first `pairs` pairs of the start (the one-node reference of a reduced plan); default all. */
  pairs?: number;
  warmupMs: number;
  durationMs: number;
  /**
   * The wait after the window for every message of the run: it goes on while messages keep arriving and ends when
   * none arrived for this long (at most 4x it in all); what is still missing then is lost.
   */
  drainMs: number;
}

/** What the load generator runs after setup, one at a time. Every task reports window-start, window-end, result. */
export type Task =
  | ({ kind: 'closed'; inFlight: number } & Windowed)
  | ({ kind: 'open'; ratePerSec: number; maxInFlight: number } & Windowed)
  | ({ kind: 'group'; size: number; inFlight: number } & Windowed)
  | { kind: 'idle'; connections: number; concurrency: number; accounts: number; setup?: LoadgenSetup }
  | { kind: 'drain'; messages: number; timeoutMs: number }
  | { kind: 'signin'; url: string; accounts: number; parallel: number; durationMs: number };

/** Losses and duplicates of one task: any of them makes the bench exit non-zero. */
export interface Integrity {
  /** Messages sent in the task (warm-up included). */
  messages: number;
  /** Expected deliveries (recipient, message) that had not arrived when the drain time ran out. */
  lost: number;
  /** A recipient received a message it had already received. */
  duplicates: number;
  /** A message arrived at a device it was not sent to, or an id nobody sent (or one already given up as lost). */
  strays: number;
  /** Send acks with `ok: false` (e.g. rate_limited). */
  rejected: number;
}

/** Figures of a messaging task (closed, open, group), measured by the load generator over its window. */
export interface MessagingResult extends Integrity {
  kind: 'messaging';
  /** Open loop (a fixed schedule): the generator's lateness then matters. */
  open: boolean;
  /** Open loop: scheduled sends skipped because `maxInFlight` messages were already on their way (overload). */
  skipped: number;
  windowMs: number;
  /** Deliveries (a recipient got the message and the sender had the relay's ack) completed inside the window. */
  delivered: number;
  /** Messages sent inside the window (open loop: scheduled inside the window). */
  sent: number;
  /** From the scheduled (open loop) or actual send to each recipient's receipt, in ms, messages of the window. */
  latencyMs: LatencySummary | null;
  /** Receipts of messages given up as lost in an earlier phase of the start (they came, after its drain ended). */
  late: number;
  /** How long the wait after the window took for the messages still on their way, ms. */
  drainWaitMs: number;
  /** Load generator's own CPU over the window, microseconds. */
  loadgenCpuUs: number;
  /** Event-loop delay p99 of the load generator over the window, ms (high = the generator itself fell behind). */
  loadgenLoopDelayP99Ms: number;
  /** Open loop: how far sending fell behind its schedule at worst, ms. */
  maxSendLagMs: number;
}

export interface IdleResult {
  kind: 'idle';
  windowMs: number;
  connections: number;
  loadgenCpuUs: number;
}

export interface DrainResult extends Integrity {
  kind: 'drain';
  /** Time to send and have acked the messages while the device was offline. */
  fillMs: number;
  /** From the connect call until the last message was received and acked (the timeout when incomplete). */
  windowMs: number;
  complete: boolean;
  loadgenCpuUs: number;
}

export interface SignInResult {
  kind: 'signin';
  windowMs: number;
  signIns: number;
  failures: number;
  latencyMs: LatencySummary | null;
  loadgenCpuUs: number;
}

export type TaskResult = MessagingResult | IdleResult | DrainResult | SignInResult;

/** Load generator child → orchestrator. */
export type LoadgenEvent =
  | { type: 'ready'; setupMs: number; connectMs: number }
  | { type: 'armed' }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'result'; result: TaskResult }
  | { type: 'closed' }
  | { type: 'error'; message: string };

/**
 * Orchestrator → load generator child. An `idle` task runs before `setup` (its own setup is in the task): it
 * prepares its accounts, reports `armed` and waits for `go`, so the server's memory is sampled in between;
 * `close-idle` drops its connections.
 */
export type LoadgenCommand =
  | { type: 'setup'; setup: LoadgenSetup }
  | { type: 'run'; task: Task }
  | { type: 'go' }
  | { type: 'close-idle' }
  | { type: 'stop' };

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
