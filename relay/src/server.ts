// createRelay: builds one relay (store → services → HTTP + Socket.IO) from a Config, ready to listen and to close
// gracefully. Tests and the benchmark run it in-process on port 0.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RELAY_PACKAGE_DIR } from './config.js';
import type { Config } from './config.js';
import { createHttpApp } from './http/app.js';
import { manifestFileOf } from './http/web.js';
import { createLogger } from './log.js';
import { RelayMetrics, listenMetrics } from './metrics.js';
import { LIMITS } from './protocol.js';
import type { HealthAnswer } from './protocol.js';
import { deriveKey, loadOrCreateSecret, transparencyKey } from './secrets.js';
import { KeyTransparency, loggingStore } from './service/transparency.js';
import { AccountService } from './service/accounts.js';
import { Delivery } from './service/delivery.js';
import { DeviceService } from './service/devices.js';
import { DirectoryService } from './service/directory.js';
import { ProfileService } from './service/profiles.js';
import { GroupService } from './service/groups.js';
import { HashQueue } from './service/hash-queue.js';
import { BlockService } from './service/blocks.js';
import { MailboxService } from './service/mailbox.js';
import { Readiness } from './service/readiness.js';
import type { ReadinessProbe } from './service/readiness.js';
import { LocalPresenceRegistry, PresenceService } from './service/presence.js';
import { FailureLimiter, TokenBuckets } from './service/rate-limit.js';
import { BlobService } from './service/blobs.js';
import { TokenService } from './service/tokens.js';
import { WriteBatcher } from './service/write-batcher.js';
import { attachSocket } from './socket.js';
import type { RelayServer } from './socket.js';
import { LocalBus } from './cluster/bus.js';
import { BlockIndex } from './service/block-index.js';
import { connectRedisCluster } from './cluster/redis.js';
import type { RedisCluster } from './cluster/redis.js';
import { MongoStore } from './store/mongo/mongo-store.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import type { Store, SweepResult } from './store/store.js';

export interface RelayOptions {
  logger?: Logger;
  /** The relay's clock (ms since the epoch); tests inject one. */
  now?: () => number;
  /** How often expired mailbox entries, idempotency records and refresh tokens are swept (default 1 hour). */
  sweepIntervalMs?: number;
  /** How long a mailbox batch waits for its ack before it is sent again (default 30 s). */
  ackTimeoutMs?: number;
  /** The write batcher's commit window, in ms (default: config.commitWindowMs, from COMMIT_WINDOW_MS). */
  commitWindowMs?: number;
}

export interface Relay {
  readonly config: Config;
  readonly log: Logger;
  readonly httpServer: HttpServer;
  readonly io: RelayServer;
  /** For operations and tests; the services own all writes during normal running. */
  readonly store: Store;
  /** The key transparency log (issue #16). */
  readonly kt: KeyTransparency;
  /** Which store and fan-out this relay uses. */
  readonly health: HealthAnswer;
  /** Transactions committed by the write batcher so far. */
  commits(): number;
  /** `message:send` events received and not answered yet (parsing, limits, store, delivery): operations, the bench. */
  sendsUnanswered(): number;
  /** Of those, the sends in the write batcher: in the commit that runs and queued behind it. */
  sendsWaitingOnStore(): number;
  /**
   * Listens for HTTP and Socket.IO, and (when METRICS_PORT is set) starts the metrics listener: `metricsUrl` is its
   * GET /metrics address.
   */
  listen(port?: number, host?: string): Promise<{ url: string; port: number; metricsUrl?: string }>;
  /** Runs the expiry sweep now (it also runs periodically). */
  sweep(): Promise<SweepResult>;
  /** Stops accepting, drops sockets, lets in-flight requests finish, commits queued writes, closes the store. */
  close(): Promise<void>;
}

const DAY_MS = 24 * 3600 * 1000;
const CLOSE_GRACE_MS = 5000;
/**
 * Free pages in a SQLite file that the start notes (64 MiB, and a quarter of the file or more): a mailbox that once
 * held much more than it holds, or migration 016's copy of the mailbox. SQLite reuses them; `compact` gives them back.
 */
const FREE_PAGES_NOTED_BYTES = 64 * 1024 * 1024;
/** How long close() waits for queued writes to commit. */
const CLOSE_WRITES_MS = 10_000;

/** Whether an address the server listens on is reachable only from this host. */
function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === 'localhost' || address === '::ffff:127.0.0.1';
}

/**
 * What to say at start about TRUST_PROXY: with `true` or a hop count, whoever connects is believed about the client
 * address (X-Forwarded-For), which is only safe when nobody but the proxy can connect.
 */
export function proxyTrustNotice(
  trustProxy: Config['trustProxy'],
  listening: string,
): { level: 'warn' | 'info'; message: string } | null {
  if (trustProxy === false || isLoopback(listening)) return null;
  if (trustProxy === true || typeof trustProxy === 'number') {
    return {
      level: 'warn',
      message:
        `TRUST_PROXY=${String(trustProxy)} believes X-Forwarded-For from whoever connects, and the relay listens on ` +
        `${listening}: a client that reaches it directly picks the address its sign-in limits count. Set TRUST_PROXY ` +
        'to the address of your proxy, or listen only where the proxy alone can connect',
    };
  }
  return {
    level: 'info',
    message: `X-Forwarded-For is believed only from ${trustProxy} (TRUST_PROXY); the relay listens on ${listening}`,
  };
}

/** Whether `promise` settles within `ms` (its rejection counts as settled). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}

function relayVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(join(RELAY_PACKAGE_DIR, 'package.json'), 'utf8'));
  const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
  return typeof version === 'string' ? version : 'unknown';
}

/** The SQLite store's database file, in DATA_DIR. */
export const sqliteFile = (config: Config): string => join(config.dataDir, 'weconnect.db');

/** Opens the configured store: MongoDB when MONGODB_URI is set (failing within 5 s without a server), else SQLite. */
export async function openStore(config: Config): Promise<Store> {
  if (config.mongodbUri === undefined) {
    return new SqliteStore({
      file: sqliteFile(config),
      synchronous: config.sqliteSynchronous,
      writer: config.sqliteWriter,
      newFilePageSize: config.sqlitePageSize,
    });
  }
  return MongoStore.open({
    uri: config.mongodbUri,
    retentionDays: Math.max(config.mailboxTtlDays, LIMITS.idempotencyDays),
  });
}

/** Whether the start mentions a SQLite file's free pages: 64 MiB or more of them, and a quarter of the file or more. */
export function freePagesWorthNoting(pages: { fileBytes: number; freeBytes: number }): boolean {
  return pages.freeBytes >= FREE_PAGES_NOTED_BYTES && pages.freeBytes * 4 >= pages.fileBytes;
}

/**
 * What the start says about the SQLite file: a page size other than SQLITE_PAGE_SIZE (which applies to new files
 * only), and free pages past FREE_PAGES_NOTED_BYTES and a quarter of the file. Each names the admin command for it.
 */
function noteSqliteFile(backend: SqliteStore, config: Config, log: Logger): void {
  if (backend.pageSize !== config.sqlitePageSize) {
    log.info(
      { pageSize: backend.pageSize, configured: config.sqlitePageSize },
      'the database file keeps the page size it was created with; SQLITE_PAGE_SIZE applies to new files, and ' +
        '`npm run admin -- page-size <bytes>` rewrites this one while the relay is stopped',
    );
  }
  const { fileBytes, freeBytes } = backend.pages();
  if (freePagesWorthNoting({ fileBytes, freeBytes })) {
    log.info(
      { freeMB: Math.round(freeBytes / 1e6), fileMB: Math.round(fileBytes / 1e6) },
      'part of the database file is free pages (SQLite reuses them); `npm run admin -- compact` gives them back to ' +
        'the disk while the relay is stopped',
    );
  }
}

export async function createRelay(config: Config, options: RelayOptions = {}): Promise<Relay> {
  const log = options.logger ?? createLogger(config.logLevel);
  const now = options.now ?? Date.now;

  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  let jwtSecret = config.jwtSecret;
  if (jwtSecret === undefined) {
    const file = join(config.dataDir, 'jwt-secret');
    const loaded = loadOrCreateSecret(file);
    jwtSecret = loaded.secret;
    if (loaded.created) log.info({ file }, 'generated a new JWT secret');
    if (loaded.looseMode) log.warn({ file }, 'the JWT secret file is readable by other users: chmod 600 it');
  }

  const backend = await openStore(config);
  if (backend instanceof MongoStore && !backend.ttlIndexes) {
    log.warn('the MongoDB server has no TTL indexes (FerretDB?): expiry relies on the relay sweep alone');
  }
  if (backend instanceof SqliteStore) noteSqliteFile(backend, config, log);
  // Every change to an account's keys or devices appends to the key transparency log (issue #16).
  const kt = new KeyTransparency(backend, transparencyKey(jwtSecret), config.ktWitnesses ?? []);
  const store = loggingStore(backend, kt);
  // The release manifest this relay serves enters the log before it is served (a no-op when it is logged already).
  const manifestFile = manifestFileOf(config.webDist);
  if (existsSync(join(config.webDist, 'index.html')) && existsSync(manifestFile)) {
    try {
      const leaf = await kt.logRelease(readFileSync(manifestFile));
      log.info({ index: leaf.index }, 'the release manifest served is in the transparency log');
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  let cluster: RedisCluster | null = null;
  if (config.redisUrl !== undefined) {
    try {
      cluster = await connectRedisCluster({
        url: config.redisUrl,
        log,
        now,
        nodeTimeoutMs: config.clusterNodeTimeoutSeconds * 1000,
        signin: { maxFailures: config.signinMaxFailures, windowMs: config.signinWindowSeconds * 1000 },
        signinAddress: { maxFailures: config.signinAddressMaxFailures, windowMs: config.signinWindowSeconds * 1000 },
        events: { burst: config.sendRateBurst, perSecond: config.sendRatePerSecond },
        signups: { burst: config.signupRateBurst, perSecond: config.signupRatePerHour / 3600 },
      });
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  const bus = cluster?.bus ?? new LocalBus();
  const metrics = config.metrics ? new RelayMetrics(async () => (await store.counts()).mailboxEntries) : undefined;
  const health: HealthAnswer = {
    status: 'ok',
    version: relayVersion(),
    store: store.kind,
    fanout: cluster ? 'redis' : 'local',
  };

  const signinLimiter =
    cluster?.signinLimiter ?? new FailureLimiter(config.signinMaxFailures, config.signinWindowSeconds * 1000);
  const addressLimiter =
    cluster?.addressLimiter ?? new FailureLimiter(config.signinAddressMaxFailures, config.signinWindowSeconds * 1000);
  const signupLimiter =
    cluster?.signupLimiter ?? new TokenBuckets(config.signupRateBurst, config.signupRatePerHour / 3600);
  const eventLimiter = cluster?.eventLimiter ?? new TokenBuckets(config.sendRateBurst, config.sendRatePerSecond);
  const deliveryLimiter = {
    stored: new TokenBuckets(config.sendDeliveriesBurst, config.sendDeliveriesPerSecond),
    ephemeral: new TokenBuckets(config.sendDeliveriesBurst, config.sendDeliveriesPerSecond),
  };
  const tokens = new TokenService(jwtSecret, config.accessTokenTtlSeconds, config.refreshTokenTtlSeconds, now);

  // Wiring order: the batcher hands commits to delivery, delivery hands acks back to the batcher.
  const batcher: WriteBatcher = new WriteBatcher({
    store,
    now,
    log,
    onCommitted: (entries) => delivery.committed(entries),
    caps: { maxEntries: config.mailboxMaxEntries, maxBytes: config.mailboxMaxBytes },
    commitWindowMs: options.commitWindowMs ?? config.commitWindowMs,
    ackHoldMs: config.ackHoldMs,
    ...(metrics
      ? {
          observeCommit: (c: { seconds: number; sends: number; ackedEntries: number }) => {
            metrics.commitSeconds.observe(c.seconds);
            if (c.sends > 0) metrics.batchSends.observe(c.sends);
            metrics.ackedEntries.inc(c.ackedEntries);
          },
        }
      : {}),
  });
  const delivery: Delivery = new Delivery({
    store,
    writes: batcher,
    bus,
    log,
    windowBytes: config.deliveryWindowBytes,
    ...(options.ackTimeoutMs !== undefined ? { ackTimeoutMs: options.ackTimeoutMs } : {}),
  });
  const presence = new PresenceService({
    store,
    registry: cluster?.registry ?? new LocalPresenceRegistry(),
    bus,
    lastSeen: batcher,
    now,
    onError: (err) => log.warn({ err }, 'presence update failed'),
  });
  cluster?.onPresenceTransition((userId, online, at) => presence.registryTransition(userId, online, at));
  const accounts: AccountService = new AccountService({
    store,
    tokens,
    signinLimiter,
    addressLimiter,
    signupLimiter,
    hashQueue: new HashQueue({
      concurrency: config.bcryptConcurrency,
      perAddress: config.bcryptQueuePerAddress,
      maxQueued: config.bcryptQueueMax,
    }),
    registration: config.registration,
    maxDevices: config.devicesPerAccount,
    bcryptCost: config.bcryptCost,
    sessionMaxAgeMs: config.sessionMaxAgeSeconds * 1000,
    fakeSaltKey: deriveKey(jwtSecret, 'fake kdf salt'),
    now,
    onFamilyRevoked: (familyId) => sockets.disconnectFamily(familyId),
    onDeviceAdded: (userId) => sockets.devicesChanged(userId, 'added'),
    ...(metrics ? { bcryptInFlight: metrics.bcryptInFlight } : {}),
  });
  try {
    await accounts.init();
  } catch (err) {
    await cluster?.close();
    await store.close();
    throw err;
  }
  const directory = new DirectoryService(store, (userId, share) => {
    presence.sharingChanged(userId, share).catch((err: unknown) => log.warn({ err }, 'presence update failed'));
  });
  const groups = new GroupService(store, now, {
    groupsPerUser: config.groupsPerUser,
    addsPerHour: config.groupAddsPerHour,
  });
  const blockIndex = new BlockIndex(store);
  blockIndex.follow(bus, (err: unknown) => log.warn({ err }, 'block index rebuild failed'));
  const mailbox = new MailboxService(
    store,
    blockIndex,
    batcher,
    delivery,
    now,
    (err: unknown) => log.warn({ err }, 'recording contacts failed'),
    (fromUserId, toUserIds) => presence.contactsAdded(fromUserId, toUserIds),
    deliveryLimiter,
  );

  const devices = new DeviceService(store, now, {
    removed: (userId, deviceId, familyIds) => {
      sockets.deviceRemoved(familyIds);
      sockets.devicesChanged(userId, 'removed');
    },
    renamed: (userId) => sockets.devicesChanged(userId, 'renamed'),
  });

  const probes: ReadinessProbe[] = [{ name: 'store', ping: () => store.ping() }];
  if (cluster) probes.push({ name: 'redis', ping: () => cluster.ping() });
  const readiness = new Readiness(probes, config.readyTimeoutMs);

  const profiles = new ProfileService(store);
  const blocks = new BlockService(store, now, presence, blockIndex);
  const blobs = new BlobService(store.blobs, now);
  mailbox.linkBlobs = (sender, blobIds, id, ts) => blobs.link(sender, blobIds, id, ts);
  const app = createHttpApp({
    config,
    log,
    health,
    readiness,
    accounts,
    directory,
    groups,
    devices,
    profiles,
    blocks,
    blobs,
    metrics,
    kt,
  });
  const httpServer = createServer(app);
  const sendGauge = { unanswered: 0 };
  const sockets = attachSocket(httpServer, {
    config,
    log,
    sendGauge,
    accounts,
    mailbox,
    presence,
    delivery,
    eventLimiter,
    now,
    bus,
    ...(metrics ? { metrics } : {}),
    ...(cluster ? { adapter: cluster.adapter } : {}),
  });

  const sweep = async (): Promise<SweepResult> => {
    const t = now();
    signinLimiter.prune(t);
    addressLimiter.prune(t);
    signupLimiter.prune(t);
    eventLimiter.prune(t);
    deliveryLimiter.stored.prune(t);
    deliveryLimiter.ephemeral.prune(t);
    const result = await store.sweepExpired({
      mailboxBefore: t - config.mailboxTtlDays * DAY_MS,
      sentBefore: t - LIMITS.idempotencyDays * DAY_MS,
      now: t,
    });
    if (result.mailbox + result.sent + result.refreshTokens > 0) log.info(result, 'expired records swept');
    const blobResult = await blobs.sweep(); // after the mailbox sweep: an expired entry counts as acknowledged
    await blockIndex.rebuild(); // at start (before any send), then: users nobody blocks any more drop out
    if (blobResult.graced + blobResult.expired > 0) log.info(blobResult, 'blobs swept');
    return { ...result, blobs: blobResult.expired };
  };
  const sweepTimer = setInterval(
    () => {
      sweep().catch((err: unknown) => log.error({ err }, 'sweep failed'));
    },
    options.sweepIntervalMs ?? 3600 * 1000,
  );
  sweepTimer.unref();
  try {
    await sweep();
  } catch (err) {
    clearInterval(sweepTimer);
    await sockets.io.close().catch(() => undefined); // stops the adapter's readers
    await cluster?.close();
    await store.close();
    throw err;
  }

  let closing: Promise<void> | null = null;
  let metricsServer: HttpServer | null = null;
  return {
    kt,
    config,
    log,
    httpServer,
    io: sockets.io,
    store,
    health,
    commits: () => batcher.commits,
    sendsUnanswered: () => sendGauge.unanswered,
    sendsWaitingOnStore: () => batcher.waitingSends,
    sweep,
    async listen(port = config.port, host = config.host) {
      let metricsUrl: string | undefined;
      if (metrics && config.metrics && !metricsServer) {
        const started = await listenMetrics(metrics, config.metrics.port, config.metrics.host);
        metricsServer = started.server;
        metricsUrl = started.url;
        log.info({ url: metricsUrl }, 'metrics listening');
      }
      return new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          const address = httpServer.address() as AddressInfo;
          const notice = proxyTrustNotice(config.trustProxy, address.address);
          if (notice) log[notice.level]({ trustProxy: config.trustProxy, address: address.address }, notice.message);
          const shown = address.address.includes(':') ? `[${address.address}]` : address.address;
          resolve({
            url: `http://${shown}:${address.port}`,
            port: address.port,
            ...(metricsUrl ? { metricsUrl } : {}),
          });
        });
      });
    },
    close() {
      closing ??= (async () => {
        clearInterval(sweepTimer);
        const metricsClosed = metricsServer
          ? new Promise<void>((resolve) => {
              metricsServer?.close(() => resolve());
              metricsServer?.closeAllConnections();
            })
          : Promise.resolve();
        const force = setTimeout(() => httpServer.closeAllConnections(), CLOSE_GRACE_MS);
        force.unref();
        const stopped = sockets.io.close(); // disconnects sockets, then waits for the HTTP server to close
        httpServer.closeIdleConnections();
        await stopped;
        clearTimeout(force);
        await presence.idle(); // the last disconnects reach the shared registry: watchers elsewhere see them
        // A store that stops answering (seen with FerretDB under heavy CPU load) must not keep the relay from
        // stopping: whatever is still queued was never acknowledged, so the senders resend it.
        if (!(await settlesWithin(batcher.close(), CLOSE_WRITES_MS))) {
          log.error(
            { waitedMs: CLOSE_WRITES_MS },
            'queued writes did not commit before shutdown; they were not acknowledged',
          );
        }
        await metricsClosed;
        await cluster?.close();
        await store.close();
      })();
      return closing;
    },
  };
}
