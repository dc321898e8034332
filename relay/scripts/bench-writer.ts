// The SQLite write path alone, inline against the writer worker: a WriteBatcher on a real store file, driven closed
// loop (a fixed number of sends in flight) and open loop (a fixed rate), every stored entry acknowledged (deleted)
// as the relay's recipients would. Prints per send: process CPU (both threads), main-thread busy time (event-loop
// utilization), commits, and the commit latency (send → resolved) p50/p99. No sockets: what the worker takes off the
// event loop shows without Socket.IO's share. Run: npx tsx --conditions=source relay/scripts/bench-writer.ts
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { WriteBatcher } from '../src/service/write-batcher.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { SendRequest } from '../src/store/store.js';
import { randomId, scriptAccount } from './store-accounts.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const writers = arg('writers', 'inline,worker').split(',') as ('inline' | 'worker')[];
const rates = arg('rates', '2000,5000,10000').split(',').map(Number);
const windows = arg('windows', '0').split(',').map(Number);
const seconds = Number(arg('seconds', '3'));
const inFlight = Number(arg('inflight', '1000'));
const BODY = 300;

interface Figures {
  sends: number;
  cpuUs: number;
  mainUs: number;
  commits: number;
  p50: number;
  p99: number;
}

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

async function run(writer: 'inline' | 'worker', windowMs: number, rate: number | null): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-writer-bench-'));
  const store = new SqliteStore({ file: join(dir, 'weconnect.db'), writer });
  const alice = scriptAccount('alice');
  const bob = scriptAccount('bob');
  await store.createAccount(alice);
  await store.createAccount(bob);
  const batcher: WriteBatcher = new WriteBatcher({
    store,
    now: Date.now,
    log: pino({ level: 'silent' }),
    commitWindowMs: windowMs,
    onCommitted: (entries) =>
      batcher.ack(
        bob.deviceId,
        entries.map((e) => e.seq),
      ),
  });
  const send = (): SendRequest => ({
    senderUserId: alice.userId,
    senderDeviceId: alice.deviceId,
    id: randomId(),
    target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: randomBytes(BODY) }] },
  });
  // Warm up: the worker's start, the statements' first runs.
  await Promise.all(Array.from({ length: 2000 }, () => batcher.send(send())));
  await batcher.idle();

  const latencies: number[] = [];
  let sends = 0;
  const commitsBefore = batcher.commits;
  const cpuBefore = process.cpuUsage();
  const eluBefore = performance.eventLoopUtilization();
  const started = performance.now();
  const end = started + seconds * 1000;
  const one = async (): Promise<void> => {
    const t = performance.now();
    const outcome = await batcher.send(send());
    if (outcome.status !== 'stored') throw new Error(`a send was ${outcome.status}`);
    latencies.push(performance.now() - t);
    sends++;
  };
  if (rate === null) {
    const loop = async (): Promise<void> => {
      while (performance.now() < end) await one();
    };
    await Promise.all(Array.from({ length: inFlight }, loop));
  } else {
    // One tick per ms, each sending what the schedule owes by then (no coordinated omission: latency is from the
    // moment of the send, which never lags the schedule by more than a tick unless the loop is saturated).
    const pending: Promise<void>[] = [];
    let due = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        const owed = Math.floor(((Math.min(now, end) - started) / 1000) * rate);
        for (; due < owed; due++) pending.push(one());
        if (now >= end) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    });
    await Promise.all(pending);
  }
  await batcher.idle();
  const cpu = process.cpuUsage(cpuBefore);
  const elu = performance.eventLoopUtilization(eluBefore);
  await batcher.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    sends,
    cpuUs: (cpu.user + cpu.system) / sends,
    mainUs: (elu.active * 1000) / sends,
    commits: batcher.commits - commitsBefore,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  };
}

const load = (await import('node:os'))
  .loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');
console.log(`writer bench: ${seconds} s per phase, ${BODY}-byte bodies, load average ${load}`);
console.log(
  '| phase | writer | window ms | sends/s | CPU µs/send | main-thread µs/send | sends/commit | p50 ms | p99 ms |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const rate of [null, ...rates]) {
  for (const windowMs of windows) {
    for (const writer of writers) {
      const f = await run(writer, windowMs, rate);
      console.log(
        `| ${rate === null ? `closed (${inFlight} in flight)` : `open ${rate}/s`} | ${writer} | ${windowMs} | ${Math.round(
          f.sends / seconds,
        )} | ${f.cpuUs.toFixed(1)} | ${f.mainUs.toFixed(1)} | ${(f.sends / Math.max(1, f.commits)).toFixed(1)} | ${f.p50.toFixed(
          2,
        )} | ${f.p99.toFixed(2)} |`,
      );
    }
  }
}
