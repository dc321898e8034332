// The servers the bench can drive. Each runs as its own child process (see host.ts); add a server here to bench it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMongo, startRedis, withDatabase } from '../../test/services.js';
import type { Service, Started } from '../../test/services.js';
import type { LoadgenSetup } from '../ipc.js';

export interface ServerDefinition {
  /** Short name used on the command line and in the tables. */
  name: string;
  /** One line for RESULTS.md. */
  description: string;
  script: string;
  args: string[];
  /**
   * Environment of one start, one per node process (each start gets fresh data directories and, for the scale-out
   * servers, a fresh FerretDB and redis-server), and how to clean up after it (stops what it started).
   */
  prepare(): Promise<{ envs: NodeJS.ProcessEnv[]; cleanup(): Promise<void> }>;
  auth: LoadgenSetup['auth'];
  parser: LoadgenSetup['parser'];
  /** Run when --servers is not given. */
  byDefault: boolean;
}

/** Fails with the starter's reason when the service cannot be had (no FerretDB build, no redis-server). */
function serviceOf(started: Started, what: string): Service {
  if ('skip' in started) throw new Error(`cannot start ${what}: ${started.skip}`);
  return started.service;
}

type Topology = 'sqlite' | 'ferret' | 'ferret-redis';

const here = fileURLToPath(new URL('.', import.meta.url));

/** Rate limits are raised so that the bench measures the relay, not its limiter. */
export const WECONNECT_BENCH_ENV = {
  BCRYPT_COST: '4',
  SEND_RATE_BURST: '1000000',
  SEND_RATE_PER_SEC: '1000000',
  BUNDLE_RATE_BURST: '1000000',
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
): ServerDefinition {
  const nodes = topology === 'ferret-redis' ? 2 : 1;
  return {
    name,
    description,
    byDefault,
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
    auth: 'weconnect',
    parser: 'msgpack',
  };
}

const noServices = async (): Promise<{ envs: NodeJS.ProcessEnv[]; cleanup(): Promise<void> }> => ({
  envs: [{ ...process.env, NODE_ENV: 'production' }],
  cleanup: async () => {},
});

export const SERVERS: ServerDefinition[] = [
  weconnect(
    'weconnect',
    {},
    'the WeConnect relay (src/server.ts in-process in its own child): JWT auth, SQLite mailbox (WAL, ' +
      'synchronous=FULL, the default) in a fresh temp DATA_DIR, ack after the group commit, msgpack parser; ' +
      `BCRYPT_COST=${WECONNECT_BENCH_ENV.BCRYPT_COST} and send rate limits raised to ` +
      `${WECONNECT_BENCH_ENV.SEND_RATE_PER_SEC}/s for the run`,
    true,
  ),
  weconnect(
    'weconnect-normal',
    { SQLITE_SYNCHRONOUS: 'NORMAL' },
    'the same with SQLITE_SYNCHRONOUS=NORMAL (WAL commits without fsync: safe across a process crash, not ' +
      'across power loss), to show what the fsync costs; not run by default',
    false,
  ),
  weconnect(
    'weconnect-ferret',
    {},
    'the same relay, one node, on a fresh FerretDB (SQLite backend, ~/.local/bin/ferretdb, started by ' +
      'test/services.ts) through MONGODB_URI, no REDIS_URL: the reference for the two-node run on the same store. ' +
      'FerretDB is much slower than a real MongoDB, so read its figures as ratios; not run by default',
    false,
    'ferret',
  ),
  weconnect(
    'weconnect-2node',
    {},
    'two relay processes (each as weconnect above, own DATA_DIR, same JWT_SECRET) sharing one fresh FerretDB ' +
      '(MONGODB_URI) with REDIS_URL on a fresh redis-server; every sender is connected to node 1 and its recipient ' +
      'to node 2, so every delivery crosses Redis; server CPU is summed over both processes; not run by default',
    false,
    'ferret-redis',
  ),
  {
    name: 'bare',
    description:
      "bare Socket.IO relay (servers/bare.ts): no auth, no storage, rooms by device id, Socket.IO's default parser " +
      '(binary bodies travel as separate attachment frames)',
    script: join(here, 'bare.ts'),
    args: ['--parser', 'default'],
    prepare: noServices,
    auth: 'bare',
    parser: 'default',
    byDefault: true,
  },
  {
    name: 'bare-msgpack',
    description: 'the same bare relay with socket.io-msgpack-parser, to separate parser cost from our own logic',
    script: join(here, 'bare.ts'),
    args: ['--parser', 'msgpack'],
    prepare: noServices,
    auth: 'bare',
    parser: 'msgpack',
    byDefault: true,
  },
];

/** The baseline every other server's figures are divided by. */
export const BASELINE = 'bare';
