// The servers the bench can drive. Each runs as its own child process (see host.ts); add a server here to bench it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMongo, startRedis, withDatabase } from '../../test/services.js';
import type { Service, Started } from '../../test/services.js';
import type { ClientKind, LoadgenSetup } from '../ipc.js';

export interface ServerDefinition {
  /** Short name used on the command line and in the tables. */
  name: string;
  /** One line for BENCHMARKS.md. */
  description: string;
  script: string;
  args: string[];
  /**
   * Environment of one start, one per node process (each start gets fresh data directories and, for the scale-out
   * servers, a fresh FerretDB and redis-server), and how to clean up after it (stops what it started).
   */
  prepare(): Promise<{ envs: NodeJS.ProcessEnv[]; cleanup(): Promise<void> }>;
  client: ClientKind;
  parser: LoadgenSetup['parser'];
  /** Run when --servers is not given. */
  byDefault: boolean;
  /** Keeps messages for offline devices (the offline-drain task runs) and has accounts (the sign-in task runs). */
  stores: boolean;
  /**
   * A reduced plan for a server that cannot take the full one in the time budget (FerretDB does ~200 msg/s):
   * its own pair count, closed-loop depth and open rates, and no groups, idle connections or drain.
   */
  reduced?: { pairs: number; inFlightPerSender: number; rates: number[]; drainMs: number; openFirst: boolean };
  /**
   * The one-node reference of the reduced servers: when one of them is in the run, this server also runs the
   * reduced plan's phases on its first pairs (same labels), so their figures can be divided by its.
   */
  reducedReference?: boolean;
}

/** A server that cannot run on this machine (a missing binary): the bench skips it with the reason, not a failure. */
export class SkipServer extends Error {
  override name = 'SkipServer';
}

/** Skips with the starter's reason when the service cannot be had (no FerretDB build, no redis-server). */
function serviceOf(started: Started, what: string): Service {
  if ('skip' in started) throw new SkipServer(`cannot start ${what}: ${started.skip}`);
  return started.service;
}

type Topology = 'sqlite' | 'ferret' | 'ferret-redis';

const here = fileURLToPath(new URL('.', import.meta.url));

/** Rate limits are raised so that the bench measures the relay, not its limiter. */
export const WECONNECT_BENCH_ENV = {
  BCRYPT_COST: '4',
  SEND_RATE_BURST: '1000000',
  SEND_RATE_PER_SEC: '1000000',
  SEND_DELIVERIES_BURST: '100000000',
  SEND_DELIVERIES_PER_SEC: '100000000',
  BUNDLE_RATE_BURST: '1000000',
  // The load generator signs in every device from 127.0.0.1, many at once (in-flight sign-ins count as failures).
  SIGNUP_RATE_BURST: '100000',
  SIGNIN_ADDRESS_MAX_FAILURES: '100000',
  BCRYPT_QUEUE_PER_ADDRESS: '1000',
  BCRYPT_QUEUE_MAX: '100000',
  DEVICES_PER_ACCOUNT: '1000000',
  MAILBOX_MAX_ENTRIES: '10000000',
  MAILBOX_MAX_BYTES: '68719476736',
  LOG_LEVEL: 'warn',
} as const;

/**
 * The WeConnect relay with the bench environment plus `extraEnv`, in a fresh temp DATA_DIR per start and node.
 * `ferret`: one node on a fresh FerretDB (MONGODB_URI). `ferret-redis`: two nodes sharing a fresh FerretDB, with
 * REDIS_URL on a fresh redis-server; the load generator puts senders on node 1 and recipients on node 2.
 */
function weconnect(
  name: string,
  extraEnv: Record<string, string>,
  description: string,
  byDefault: boolean,
  topology: Topology = 'sqlite',
  reduced?: ServerDefinition['reduced'],
  reducedReference = false,
): ServerDefinition {
  const nodes = topology === 'ferret-redis' ? 2 : 1;
  return {
    name,
    description,
    byDefault,
    stores: true,
    ...(reducedReference ? { reducedReference } : {}),
    ...(reduced === undefined ? {} : { reduced }),
    script: join(here, 'weconnect.ts'),
    args: [],
    prepare: async () => {
      const dataDirs = Array.from({ length: nodes }, () => mkdtempSync(join(tmpdir(), 'weconnect-bench-')));
      const services: Service[] = [];
      const cleanup = async (): Promise<void> => {
        for (const service of services) await service.stop();
        for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
      };
      // One secret per run, shared by the nodes so a token from one is accepted by the other.
      const jwtSecret = randomBytes(32).toString('base64url');
      const storeEnv: Record<string, string> = {};
      try {
        if (topology !== 'sqlite') {
          const mongo = serviceOf(await startMongo(), 'FerretDB');
          services.push(mongo);
          storeEnv.MONGODB_URI = withDatabase(mongo.url, `bench_${Date.now()}`);
        }
        if (topology === 'ferret-redis') {
          const redis = serviceOf(await startRedis(), 'redis-server');
          services.push(redis);
          storeEnv.REDIS_URL = redis.url;
        }
      } catch (error) {
        await cleanup();
        throw error;
      }
      return {
        envs: dataDirs.map((dataDir) => ({
          ...process.env,
          ...WECONNECT_BENCH_ENV,
          ...extraEnv,
          ...storeEnv,
          // Mongoose prints a deprecation warning per findOneAndUpdate call site; keep the bench output readable.
          ...(topology === 'sqlite' ? {} : { NODE_NO_WARNINGS: '1' }),
          NODE_ENV: 'production',
          HOST: '127.0.0.1',
          PORT: '0',
          DATA_DIR: dataDir,
          JWT_SECRET: jwtSecret,
        })),
        cleanup,
      };
    },
    client: 'weconnect',
    parser: 'msgpack',
  };
}

const noServices = async (): Promise<{ envs: NodeJS.ProcessEnv[]; cleanup(): Promise<void> }> => ({
  envs: [{ ...process.env, NODE_ENV: 'production' }],
  cleanup: async () => {},
});

/**
 * FerretDB's share: 50 pairs, 50/s offered (first, on the fresh store), then a closed loop with one message in flight
 * per sender; at most 5 s to drain each.
 */
const FERRET_PLAN = { pairs: 50, inFlightPerSender: 1, rates: [50], drainMs: 5_000, openFirst: true };

export const SERVERS: ServerDefinition[] = [
  weconnect(
    'weconnect',
    {},
    'the WeConnect relay (src/server.ts in-process in its own child): JWT auth, SQLite mailbox (WAL, ' +
      'synchronous=NORMAL, the default) in a fresh temp DATA_DIR, ack after the group commit, msgpack parser; ' +
      `BCRYPT_COST=${WECONNECT_BENCH_ENV.BCRYPT_COST} and send rate limits raised to ` +
      `${WECONNECT_BENCH_ENV.SEND_RATE_PER_SEC}/s for the run (the sign-in task has its own start at cost 12); ` +
      'when a FerretDB server is in the run it also runs their reduced phases on its first 50 pairs, the one-node ' +
      'reference of their ratios',
    true,
    'sqlite',
    undefined,
    true,
  ),
  weconnect(
    'weconnect-full',
    { SQLITE_SYNCHRONOUS: 'FULL' },
    'the same with SQLITE_SYNCHRONOUS=FULL (an fsync per commit: survives power loss), to show what the fsync ' +
      'costs; not run by default',
    false,
  ),
  weconnect(
    'weconnect-ferret',
    {},
    'the same relay, one node, on a fresh FerretDB (SQLite backend, ~/.local/bin/ferretdb, started by ' +
      'test/services.ts) through MONGODB_URI, no REDIS_URL: the reference for the two-node run on the same store. ' +
      'FerretDB is much slower than a real MongoDB, so read its figures as ratios; reduced plan; not run by default',
    false,
    'ferret',
    FERRET_PLAN,
  ),
  weconnect(
    'weconnect-2node',
    {},
    'two relay processes (each as weconnect above, own DATA_DIR, same JWT_SECRET) sharing one fresh FerretDB ' +
      '(MONGODB_URI) with REDIS_URL on a fresh redis-server; every sender is connected to node 1 and its recipient ' +
      "to node 2, so every delivery crosses Redis; server CPU is summed over both processes (not FerretDB's or " +
      "Redis's own); FerretDB does ~200 msg/s, so it gets a reduced plan: 50 pairs, closed loop with one message " +
      'in flight per sender, 50/s offered; skipped with the reason when FerretDB or redis-server is missing',
    true,
    'ferret-redis',
    FERRET_PLAN,
  ),
  {
    name: 'bare',
    description:
      "bare Socket.IO relay (servers/bare.ts): no auth, no storage, rooms by device id, Socket.IO's default parser " +
      '(binary bodies travel as separate attachment frames)',
    script: join(here, 'bare.ts'),
    args: ['--parser', 'default'],
    prepare: noServices,
    client: 'bare',
    parser: 'default',
    byDefault: true,
    stores: false,
  },
  {
    name: 'bare-msgpack',
    description:
      'the same bare relay with socket.io-msgpack-parser, to separate parser cost from our own logic; not run by ' +
      'default (time budget)',
    script: join(here, 'bare.ts'),
    args: ['--parser', 'msgpack'],
    prepare: noServices,
    client: 'bare',
    parser: 'msgpack',
    byDefault: false,
    stores: false,
  },
  {
    name: 'ws',
    description:
      'raw `ws` relay (servers/ws.ts): binary frames with a fixed header (kind byte, 16-byte id, recipient ' +
      'number, body; wire.ts), pushed to the recipient socket and acked, the push ack read and dropped: four ' +
      'frames per delivery like the others; a group send is one frame listing every recipient (no group state)',
    script: join(here, 'ws.ts'),
    args: [],
    prepare: noServices,
    client: 'ws',
    parser: 'default',
    byDefault: true,
    stores: false,
  },
];

/** The baseline every other server's figures are divided by, and the floor they are also compared with. */
export const BASELINE = 'bare';
export const FLOOR = 'ws';
