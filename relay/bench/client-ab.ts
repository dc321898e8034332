// What one delivery costs the load generator with each Socket.IO client, in one run: the bare relay (its own child
// process, so its CPU is not counted) with the msgpack and the default parser, driven alternately by the raw client
// (raw-socketio.ts) and socket.io-client over the same closed loop; the generator's CPU (process.cpuUsage, so another
// process holding the core does not inflate it) per delivery, and the ratio raw ÷ socket.io-client per round.
//   npx tsx --conditions=source relay/bench/client-ab.ts [--pairs 100] [--rounds 3] [--duration 3]
import { fileURLToPath } from 'node:url';
import { ChildChannel, forkTs } from './ipc.js';
import type { ServerCommand, ServerEvent } from './ipc.js';
import { inBatches } from './tasks.js';
import { SocketIoTransport, connectEventSocket } from './transports.js';
import type { SocketIoClient } from './transports.js';
import { LoadDriver, sleep } from './workloads.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const pairs = arg('pairs', 100);
const rounds = arg('rounds', 3);
const durationMs = arg('duration', 3) * 1000;

async function measure(url: string, parser: 'default' | 'msgpack', client: SocketIoClient): Promise<number> {
  const ids = Array.from({ length: pairs * 2 }, (_, d) => `ab-${client}-${d}-${Date.now()}`);
  const sockets = await inBatches(ids.length, 50, (d) =>
    connectEventSocket(client, url, { deviceId: ids[d] as string }, parser),
  );
  try {
    const driver = new LoadDriver(new SocketIoTransport(sockets, ids, new Map()), pairs, 300, ids.length);
    const hooks = { onWindowStart: () => undefined, onWindowEnd: () => undefined };
    const result = await driver.run({ kind: 'closed', inFlight: 2, warmupMs: 500, durationMs, drainMs: 5000 }, hooks);
    if (result.lost + result.duplicates + result.strays > 0) throw new Error(`${client}: messages lost or duplicated`);
    return result.loadgenCpuUs / Math.max(1, result.delivered);
  } finally {
    for (const socket of sockets) socket.close();
    await sleep(200);
  }
}

async function main(): Promise<void> {
  const script = fileURLToPath(new URL('./servers/bare.ts', import.meta.url));
  console.log(`load generator CPU µs per delivery, closed loop, ${pairs} pairs, ${durationMs / 1000} s windows`);
  console.log('| server parser | round | raw | socket.io-client | raw ÷ socket.io-client |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const parser of ['msgpack', 'default'] as const) {
    const server = new ChildChannel<ServerEvent, ServerCommand>(
      forkTs(script, ['--parser', parser], { ...process.env, NODE_ENV: 'production' }),
      `bare ${parser}`,
    );
    try {
      const { port } = await server.next('ready', 30_000);
      const url = `http://127.0.0.1:${port}`;
      for (let round = 1; round <= rounds; round++) {
        const raw = await measure(url, parser, 'raw');
        const socketio = await measure(url, parser, 'socketio');
        console.log(
          `| ${parser} | ${round} | ${raw.toFixed(1)} | ${socketio.toFixed(1)} | ${(raw / socketio).toFixed(2)} |`,
        );
      }
    } finally {
      server.send({ type: 'stop' });
      await server.exit(3000);
    }
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
