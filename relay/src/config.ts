// The relay's configuration: the only reader of the environment, parsed once with zod.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { LIMITS } from './protocol.js';
import { parseWitnessKey } from './service/kt-witness.js';
import { isPageSize } from './store/sqlite/page-size.js';

/** The relay package's directory (the same from src/ under tsx and from dist/ when built). */
export const RELAY_PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);
/** A rate that may be a fraction (`0.5`: one every two seconds). */
const rate = (min: number, max: number, fallback: number) =>
  z.coerce.number().finite().min(min).max(max).default(fallback);

const envSchema = z.object({
  PORT: int(0, 65535, 8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATA_DIR: z.string().min(1).default('./data'),
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  ACCESS_TOKEN_TTL: int(10, 24 * 3600, 15 * 60),
  REFRESH_TOKEN_TTL: int(60, 365 * 24 * 3600, 30 * 24 * 3600),
  SESSION_MAX_AGE: int(60, 3650 * 24 * 3600, 90 * 24 * 3600),
  BCRYPT_COST: int(4, 15, 12),
  JSON_BODY_LIMIT: int(1024, 16 * 1024 * 1024, LIMITS.jsonBodyBytes),
  SOCKET_FRAME_LIMIT: int(1024, 64 * 1024 * 1024, LIMITS.socketFrameBytes),
  SIGNIN_MAX_FAILURES: int(1, 1000, LIMITS.signinMaxFailures),
  SIGNIN_WINDOW: int(1, 24 * 3600, LIMITS.signinWindowSeconds),
  SIGNIN_ADDRESS_MAX_FAILURES: int(1, 100_000, LIMITS.signinAddressMaxFailures),
  SIGNUP_RATE_BURST: int(1, 100_000, LIMITS.signupBurst),
  SIGNUP_RATE_PER_HOUR: int(1, 1_000_000, LIMITS.signupsPerHour),
  REGISTRATION: z.enum(['open', 'closed', 'invite']).default('open'),
  BCRYPT_CONCURRENCY: int(1, 64, 2),
  BCRYPT_QUEUE_PER_ADDRESS: int(1, 1000, 4),
  BCRYPT_QUEUE_MAX: int(1, 100_000, 64),
  DEVICES_PER_ACCOUNT: int(1, 1_000_000, LIMITS.devicesPerAccount),
  MAILBOX_MAX_ENTRIES: int(1, 10_000_000, LIMITS.mailboxMaxEntries),
  MAILBOX_MAX_BYTES: int(64 * 1024, 64 * 1024 * 1024 * 1024, LIMITS.mailboxMaxBytes),
  SEND_RATE_BURST: int(1, 1_000_000, LIMITS.sendRateBurst),
  SEND_RATE_PER_SEC: int(1, 1_000_000, LIMITS.sendRatePerSecond),
  SEND_DELIVERIES_BURST: int(1, 100_000_000, LIMITS.sendDeliveriesBurst),
  SEND_DELIVERIES_PER_SEC: rate(0.001, 100_000_000, LIMITS.sendDeliveriesPerSecond),
  BUNDLE_RATE_BURST: int(1, 1_000_000, 30),
  BUNDLE_RATE_PER_MIN: int(1, 1_000_000, 2),
  MAILBOX_TTL_DAYS: int(1, 3650, LIMITS.mailboxTtlDays),
  SQLITE_SYNCHRONOUS: z.enum(['FULL', 'NORMAL']).default('NORMAL'),
  SQLITE_WRITER: z.enum(['auto', 'worker', 'inline']).default('auto'),
  SQLITE_PAGE_SIZE: int(512, 65536, 4096).refine(isPageSize, 'must be a power of two'),
  COMMIT_WINDOW_MS: int(0, 100, 1),
  ACK_HOLD_MS: z.coerce.number().int().min(0).max(10_000).optional(),
  TRUST_PROXY: z.string().default('false'),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  WEB_DIST: z.string().min(1).optional(),
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://')
    .optional(),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
    .optional(),
  CLUSTER_NODE_TIMEOUT: int(1, 600, 15),
  SOCKET_BUFFER_LIMIT: int(64 * 1024, 256 * 1024 * 1024, 4 * 1024 * 1024),
  SOCKET_BUFFER_GRACE_MS: int(100, 600_000, 10_000),
  DELIVERY_WINDOW_BYTES: int(1024, 256 * 1024 * 1024, 1024 * 1024),
  GROUPS_PER_USER: int(1, 100_000, LIMITS.groupsPerUser),
  GROUP_ADDS_PER_HOUR: int(1, 1_000_000, LIMITS.groupAddsPerHour),
  READY_TIMEOUT_MS: int(100, 60_000, 2000),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** Key transparency witnesses (issue #16): comma-separated C2SP cosignature verifier keys, at most 16. */
  KT_WITNESSES: z.string().optional(),
});

/**
 * The start of every placeholder value in `.env.example`: a relay started with one of them would sign tokens with a
 * secret that anyone can read in the repository.
 */
export const PLACEHOLDER_MARK = 'replace-with';

/** The names of every environment variable the relay reads. */
export type EnvName = keyof z.input<typeof envSchema>;
export const ENV_NAMES = Object.keys(envSchema.shape) as EnvName[];

export interface Config {
  port: number;
  host: string;
  /** Absolute. Holds weconnect.db (+ -wal, -shm) and jwt-secret. */
  dataDir: string;
  /** From JWT_SECRET; when undefined the relay generates one into DATA_DIR/jwt-secret on first start. */
  jwtSecret: string | undefined;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  /** A refresh family (one sign-in) ends this many seconds after it started, however often it was refreshed. */
  sessionMaxAgeSeconds: number;
  bcryptCost: number;
  jsonBodyLimitBytes: number;
  socketFrameLimitBytes: number;
  signinMaxFailures: number;
  signinWindowSeconds: number;
  /** Failed sign-ins per address (IPv6: per /64) across usernames, in the same window. */
  signinAddressMaxFailures: number;
  /** Sign-ups per address (IPv6: per /64): bucket size and refill per hour. */
  signupRateBurst: number;
  signupRatePerHour: number;
  /** open: anyone signs up; closed: nobody; invite: only with an unused invite token (service/invites.ts). */
  registration: 'open' | 'closed' | 'invite';
  /** bcrypt hashes running at once, per address running or waiting, and waiting in all (service/hash-queue.ts). */
  bcryptConcurrency: number;
  bcryptQueuePerAddress: number;
  bcryptQueueMax: number;
  devicesPerAccount: number;
  /** Per device: unacknowledged entries and bytes of their bodies before a send to it is refused (mailbox_full). */
  mailboxMaxEntries: number;
  mailboxMaxBytes: number;
  sendRateBurst: number;
  sendRatePerSecond: number;
  /** Devices one account's sends may reach (stored and ephemeral, a bucket each): bucket size and refill per second. */
  sendDeliveriesBurst: number;
  sendDeliveriesPerSecond: number;
  /** Bundle fetches (each takes one-time prekeys) per requesting user and target user: bucket size and refill. */
  bundleRateBurst: number;
  bundleRatePerMinute: number;
  mailboxTtlDays: number;
  sqliteSynchronous: 'FULL' | 'NORMAL';
  /** Who commits sends, acks and last-seen: a worker thread with its own connection (default), or the main thread. */
  sqliteWriter: 'worker' | 'inline';
  /** The page size of a database file the relay creates (an existing one keeps its own). */
  sqlitePageSize: number;
  /**
   * While writes arrive at least two per this many ms and the event loop is less than half busy, a commit waits this
   * long for more (or until 16 sends are queued); 0: every commit follows the loop turn (see WriteBatcher).
   */
  commitWindowMs: number;
  /**
   * How long acks (the deletions of delivered entries) and last-seen times wait for a send to commit with, when none
   * is queued (ms); 0: they commit after the loop turn, as sends do (see WriteBatcher). Default 1000 with SQLite, 0
   * with MongoDB.
   */
  ackHoldMs: number;
  /** Express `trust proxy`: false, true, a hop count, or a comma-separated list of addresses/subnets. */
  trustProxy: boolean | number | string;
  logLevel: LogLevel;
  /** Absolute path of the built web app; served when it exists. */
  webDist: string;
  /** The MongoDB store instead of SQLite (shared by every relay node). */
  mongodbUri: string | undefined;
  /** Fan-out, presence and rate limits shared with the other relay nodes through Redis. */
  redisUrl: string | undefined;
  /** With Redis: a node whose presence heartbeat is this many seconds old is taken for dead. */
  clusterNodeTimeoutSeconds: number;
  /**
   * Bytes a connection may have queued for writing (Engine.IO's write buffer and the WebSocket's); above this nothing
   * more is pushed to it, and a connection that stays above it for socketBufferGraceMs is dropped.
   */
  socketBufferLimitBytes: number;
  socketBufferGraceMs: number;
  /** Bodies of live pushes a connection may leave unacknowledged; later entries wait in its mailbox. */
  deliveryWindowBytes: number;
  /** Groups a user can be a member of; an add or a creation beyond it is refused (group_limit). */
  groupsPerUser: number;
  /** Users one account may add to groups (creations included) per hour (rate_limited beyond). */
  groupAddsPerHour: number;
  /** How long `GET /api/ready` waits for the store (and Redis) before it answers 503. */
  readyTimeoutMs: number;
  /** The Prometheus listener (METRICS_PORT, METRICS_HOST); null when METRICS_PORT is unset: no metrics. */
  metrics: { port: number; host: string } | null;
  /** The witnesses whose cosignatures of its checkpoints the relay takes and serves (KT_WITNESSES); none by default. */
  ktWitnesses?: string[];
}

/** Thrown when the environment does not parse; the message names every offending variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function parseTrustProxy(value: string): boolean | number | string {
  const v = value.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  if (/^\d+$/.test(v)) return Number(v);
  return v;
}

/** Parses the environment (empty values count as unset). Throws ConfigError. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, string> = {};
  for (const name of ENV_NAMES) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') raw[name] = value.trim();
  }
  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`Invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  for (const name of ['JWT_SECRET', 'MONGODB_URI', 'REDIS_URL'] as const) {
    if (e[name]?.includes(PLACEHOLDER_MARK)) {
      throw new ConfigError(
        `Invalid configuration: ${name}: still holds the placeholder of .env.example; make a secret with: openssl rand -hex 32`,
      );
    }
  }
  if (e.REDIS_URL !== undefined && e.JWT_SECRET === undefined) {
    throw new ConfigError(
      'Invalid configuration: JWT_SECRET: must be set when REDIS_URL is set (every relay node must sign and check tokens with the same secret)',
    );
  }
  if (e.REDIS_URL !== undefined && e.MONGODB_URI === undefined) {
    throw new ConfigError(
      'Invalid configuration: REDIS_URL: needs MONGODB_URI (relay nodes must share one store; SQLite serves one process)',
    );
  }
  const ktWitnesses = (e.KT_WITNESSES ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  for (const key of ktWitnesses) {
    try {
      parseWitnessKey(key);
    } catch (err) {
      throw new ConfigError(`Invalid configuration: KT_WITNESSES: ${(err as Error).message}`);
    }
  }
  if (ktWitnesses.length > 16 || new Set(ktWitnesses.map((k) => k.split('+')[0])).size !== ktWitnesses.length) {
    throw new ConfigError('Invalid configuration: KT_WITNESSES: at most 16 witnesses, each name once');
  }
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: resolve(e.DATA_DIR),
    jwtSecret: e.JWT_SECRET,
    accessTokenTtlSeconds: e.ACCESS_TOKEN_TTL,
    refreshTokenTtlSeconds: e.REFRESH_TOKEN_TTL,
    sessionMaxAgeSeconds: e.SESSION_MAX_AGE,
    bcryptCost: e.BCRYPT_COST,
    jsonBodyLimitBytes: e.JSON_BODY_LIMIT,
    socketFrameLimitBytes: e.SOCKET_FRAME_LIMIT,
    signinMaxFailures: e.SIGNIN_MAX_FAILURES,
    signinWindowSeconds: e.SIGNIN_WINDOW,
    signinAddressMaxFailures: e.SIGNIN_ADDRESS_MAX_FAILURES,
    signupRateBurst: e.SIGNUP_RATE_BURST,
    signupRatePerHour: e.SIGNUP_RATE_PER_HOUR,
    registration: e.REGISTRATION,
    bcryptConcurrency: e.BCRYPT_CONCURRENCY,
    bcryptQueuePerAddress: e.BCRYPT_QUEUE_PER_ADDRESS,
    bcryptQueueMax: e.BCRYPT_QUEUE_MAX,
    devicesPerAccount: e.DEVICES_PER_ACCOUNT,
    mailboxMaxEntries: e.MAILBOX_MAX_ENTRIES,
    mailboxMaxBytes: e.MAILBOX_MAX_BYTES,
    sendRateBurst: e.SEND_RATE_BURST,
    sendRatePerSecond: e.SEND_RATE_PER_SEC,
    sendDeliveriesBurst: e.SEND_DELIVERIES_BURST,
    sendDeliveriesPerSecond: e.SEND_DELIVERIES_PER_SEC,
    bundleRateBurst: e.BUNDLE_RATE_BURST,
    bundleRatePerMinute: e.BUNDLE_RATE_PER_MIN,
    mailboxTtlDays: e.MAILBOX_TTL_DAYS,
    sqliteSynchronous: e.SQLITE_SYNCHRONOUS,
    // auto: the writer thread only where commits fsync. Measured (relay/bench/BEFORE-AFTER-18.md, quiet machine): with
    // FULL it carried 1.6x the closed-loop deliveries at 0.73x the CPU each, and cut p99 at 5,000/s from 70 to 23 ms;
    // with NORMAL (no fsync per commit) handing batches to a thread cost more CPU than the commits it moved.
    sqliteWriter:
      e.SQLITE_WRITER === 'auto' ? (e.SQLITE_SYNCHRONOUS === 'FULL' ? 'worker' : 'inline') : e.SQLITE_WRITER,
    sqlitePageSize: e.SQLITE_PAGE_SIZE,
    commitWindowMs: e.COMMIT_WINDOW_MS,
    // MongoDB's mailbox reads are asynchronous: one that began before a held ack commits could send its entry again.
    ackHoldMs: e.ACK_HOLD_MS ?? (e.MONGODB_URI === undefined ? 1000 : 0),
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    logLevel: e.LOG_LEVEL,
    webDist: e.WEB_DIST ? resolve(e.WEB_DIST) : resolve(RELAY_PACKAGE_DIR, '../web/dist'),
    mongodbUri: e.MONGODB_URI,
    redisUrl: e.REDIS_URL,
    clusterNodeTimeoutSeconds: e.CLUSTER_NODE_TIMEOUT,
    socketBufferLimitBytes: e.SOCKET_BUFFER_LIMIT,
    socketBufferGraceMs: e.SOCKET_BUFFER_GRACE_MS,
    deliveryWindowBytes: e.DELIVERY_WINDOW_BYTES,
    groupsPerUser: e.GROUPS_PER_USER,
    groupAddsPerHour: e.GROUP_ADDS_PER_HOUR,
    readyTimeoutMs: e.READY_TIMEOUT_MS,
    metrics: e.METRICS_PORT === undefined ? null : { port: e.METRICS_PORT, host: e.METRICS_HOST },
    ktWitnesses,
  };
}
