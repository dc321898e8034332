// The load generator's non-messaging tasks: opening idle connections (connects/s, then memory per connection),
// the offline drain (WeConnect: 10,000 stored messages delivered on connect) and sign-ins at the real bcrypt cost.
import { performance } from 'node:perf_hooks';
import { signIn, signUp, uniqueUsername } from '../test/helpers.js';
import type { TestAccount } from '../test/helpers.js';
import type { DrainResult, IdleResult, LoadgenSetup, SignInResult, Task } from './ipc.js';
import { summarizeLatencies } from './stats.js';
import { connectEventSocket } from './transports.js';
import { IdSource, senderOf, sleep } from './workloads.js';
import type { Transport, WindowHooks } from './workloads.js';

/** Opens and closes the extra connections of the idle task (one server's client protocol). */
export interface Connector {
  /** Connection number `i` (WeConnect: the token of device i mod devices, several sockets per device). */
  open(i: number): Promise<unknown>;
  close(socket: unknown): void;
}

/** Runs `make(0..count-1)` with at most `parallel` in flight; the results in order. */
export async function inBatches<T>(count: number, parallel: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      results[i] = await make(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return results;
}

const cpuSince = (start: NodeJS.CpuUsage): number => {
  const cpu = process.cpuUsage(start);
  return cpu.user + cpu.system;
};

/** Opens `connections` connections, `concurrency` at a time; the window is the whole opening. */
export async function runIdle(
  task: Extract<Task, { kind: 'idle' }>,
  connector: Connector,
  hooks: WindowHooks,
): Promise<{ result: IdleResult; sockets: unknown[] }> {
  const cpu = process.cpuUsage();
  hooks.onWindowStart();
  const started = performance.now();
  const sockets = await inBatches(task.connections, task.concurrency, (i) => connector.open(i));
  const windowMs = performance.now() - started;
  hooks.onWindowEnd();
  return {
    sockets,
    result: { kind: 'idle', windowMs, connections: sockets.length, loadgenCpuUs: cpuSince(cpu) },
  };
}

/**
 * The offline drain: senders send `messages` messages to the offline device (each acked by the relay, so stored),
 * then the device connects; the window runs from the connect call until it has received every message and acked
 * the batch that held the last one. Duplicates and strays are counted for a further 200 ms.
 */
export async function runDrain(
  task: Extract<Task, { kind: 'drain' }>,
  setup: LoadgenSetup,
  transport: Transport,
  offline: { device: number; wireId: string; token: string },
  hooks: WindowHooks,
): Promise<DrainResult> {
  const ids = new IdSource();
  const body = Buffer.alloc(setup.bodyBytes, 7);
  const expected = new Set<string>();
  let rejected = 0;
  const fillStarted = performance.now();
  // 16 senders with 16 sends in flight each.
  let issued = 0;
  await new Promise<void>((resolve) => {
    let settled = 0;
    const sendNext = (sender: number): void => {
      if (issued >= task.messages) return;
      issued++;
      const id = ids.next();
      expected.add(id);
      transport.send(sender, offline.device, id, body, (ok) => {
        if (!ok) {
          rejected++;
          expected.delete(id);
        }
        if (++settled === task.messages) resolve();
        else sendNext(sender);
      });
    };
    for (let k = 0; k < 16; k++) for (let s = 0; s < 16; s++) sendNext(senderOf(s % setup.pairs));
  });
  const fillMs = performance.now() - fillStarted;

  const cpu = process.cpuUsage();
  let received = 0;
  let duplicates = 0;
  let strays = 0;
  const got = new Set<string>();
  hooks.onWindowStart();
  const started = performance.now();
  let finishedAt = 0;
  let onDone: () => void = () => {};
  let timer: NodeJS.Timeout | undefined;
  const drained = new Promise<void>((resolve) => {
    onDone = resolve;
    timer = setTimeout(resolve, task.timeoutMs);
  });
  const socket = await connectEventSocket(setup.socketIoClient, setup.url, { token: offline.token }, 'msgpack', (s) =>
    s.on('messages', (...args: unknown[]) => {
      const [batch, ack] = args as [{ id: string }[], (() => void) | undefined];
      for (const { id } of batch) {
        if (got.has(id)) duplicates++;
        else if (!expected.has(id)) strays++;
        else {
          got.add(id);
          received++;
        }
      }
      if (typeof ack === 'function') ack();
      if (received === expected.size && finishedAt === 0) {
        finishedAt = performance.now();
        clearTimeout(timer);
        onDone();
      }
    }),
  );
  await drained;
  const complete = finishedAt > 0;
  const windowMs = (complete ? finishedAt : performance.now()) - started;
  hooks.onWindowEnd();
  const loadgenCpuUs = cpuSince(cpu);
  await sleep(200);
  socket.close();
  return {
    kind: 'drain',
    fillMs,
    windowMs,
    complete,
    messages: expected.size,
    lost: expected.size - received,
    duplicates,
    strays,
    rejected,
    loadgenCpuUs,
  };
}

/**
 * Sign-ins at the relay's configured bcrypt cost: `accounts` accounts, then `parallel` sign-ins in flight (a new
 * device each, as a browser signing in) for the window. Few accounts, few in flight per account: the relay counts
 * attempts in flight against its per-account failure limit.
 */
export async function runSignIns(task: Extract<Task, { kind: 'signin' }>, hooks: WindowHooks): Promise<SignInResult> {
  const accounts: TestAccount[] = await inBatches(task.accounts, task.accounts, () =>
    signUp(task.url, uniqueUsername('bsi'), { oneTimePrekeys: 0 }),
  );
  const cpu = process.cpuUsage();
  const latencies: number[] = [];
  let failures = 0;
  let open = true;
  hooks.onWindowStart();
  const started = performance.now();
  const loop = async (worker: number): Promise<void> => {
    const account = accounts[worker % accounts.length] as TestAccount;
    while (open) {
      const at = performance.now();
      try {
        await signIn(task.url, account);
        if (open) latencies.push(performance.now() - at);
      } catch {
        if (open) failures++;
      }
    }
  };
  const loops = Array.from({ length: task.parallel }, (_, w) => loop(w));
  await sleep(task.durationMs);
  open = false;
  const windowMs = performance.now() - started;
  hooks.onWindowEnd();
  const loadgenCpuUs = cpuSince(cpu);
  await Promise.all(loops);
  return {
    kind: 'signin',
    windowMs,
    signIns: latencies.length,
    failures,
    latencyMs: summarizeLatencies(latencies),
    loadgenCpuUs,
  };
}
