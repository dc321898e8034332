// The servers the bench can drive. Each runs as its own child process (see host.ts); add a server here to bench it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadgenSetup } from '../ipc.js';

export interface ServerDefinition {
  /** Short name used on the command line and in the tables. */
  name: string;
  /** One line for RESULTS.md. */
  description: string;
  script: string;
  args: string[];
  /** Environment of one start (each start gets a fresh data directory) and how to clean up after it. */
  prepare(): { env: NodeJS.ProcessEnv; cleanup(): void };
  auth: LoadgenSetup['auth'];
  parser: LoadgenSetup['parser'];
  /** Run when --servers is not given. */
  byDefault: boolean;
}

const here = fileURLToPath(new URL('.', import.meta.url));

/** Rate limits are raised so that the bench measures the relay, not its limiter. */
export const WECONNECT_BENCH_ENV = {
  BCRYPT_COST: '4',
  SEND_RATE_BURST: '1000000',
  SEND_RATE_PER_SEC: '1000000',
  LOG_LEVEL: 'warn',
} as const;

/** The WeConnect relay with the bench environment plus `extraEnv`, in a fresh temp DATA_DIR per start. */
function weconnect(
  name: string,
  extraEnv: Record<string, string>,
  description: string,
  byDefault: boolean,
): ServerDefinition {
  return {
    name,
    description,
    byDefault,
    script: join(here, 'weconnect.ts'),
    args: [],
    prepare: () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-bench-'));
      return {
        env: {
          ...process.env,
          ...WECONNECT_BENCH_ENV,
          ...extraEnv,
          NODE_ENV: 'production',
          HOST: '127.0.0.1',
          PORT: '0',
          DATA_DIR: dataDir,
          JWT_SECRET: 'bench-only-secret-bench-only-secret-0123456789',
        },
        cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
      };
    },
    auth: 'weconnect',
    parser: 'msgpack',
  };
}

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
  {
    name: 'bare',
    description:
      "bare Socket.IO relay (servers/bare.ts): no auth, no storage, rooms by device id, Socket.IO's default parser " +
      '(binary bodies travel as separate attachment frames)',
    script: join(here, 'bare.ts'),
    args: ['--parser', 'default'],
    prepare: () => ({ env: { ...process.env, NODE_ENV: 'production' }, cleanup: () => {} }),
    auth: 'bare',
    parser: 'default',
    byDefault: true,
  },
  {
    name: 'bare-msgpack',
    description: 'the same bare relay with socket.io-msgpack-parser, to separate parser cost from our own logic',
    script: join(here, 'bare.ts'),
    args: ['--parser', 'msgpack'],
    prepare: () => ({ env: { ...process.env, NODE_ENV: 'production' }, cleanup: () => {} }),
    auth: 'bare',
    parser: 'msgpack',
    byDefault: true,
  },
];

/** The baseline every other server's figures are divided by. */
export const BASELINE = 'bare';
