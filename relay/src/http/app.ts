// The Express application: security headers, logs, JSON limits, the /api routes, the web app, and errors.
import express from 'express';
import type { Express } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { RelayMetrics } from '../metrics.js';
import { LIMITS } from '../protocol.js';
import type { HealthAnswer } from '../protocol.js';
import { PROFILE_BYTES } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { DeviceService } from '../service/devices.js';
import type { BlobService } from '../service/blobs.js';
import type { BlockService } from '../service/blocks.js';
import type { DirectoryService } from '../service/directory.js';
import type { GroupService } from '../service/groups.js';
import type { ProfileService } from '../service/profiles.js';
import type { Readiness } from '../service/readiness.js';
import { accountsRoutes } from './accounts.js';
import { backupRoutes } from './backup.js';
import { BLOB_DATA_PATH, blobsRoutes } from './blobs.js';
import { devicesRoutes } from './devices.js';
import { blocksRoutes } from './blocks.js';
import { groupsRoutes } from './groups.js';
import { healthRoutes } from './health.js';
import { errorHandler, jsonBodies, notFound, requestLog } from './middleware.js';
import { prekeysRoutes } from './prekeys.js';
import { profileRoutes } from './profiles.js';
import { securityHeaders } from './security.js';
import { sessionsRoutes } from './sessions.js';
import { settingsRoutes } from './settings.js';
import { usersRoutes } from './users.js';
import { webApp } from './web.js';
import { transparencyRoutes } from './transparency.js';
import type { KeyTransparency } from '../service/transparency.js';

export interface HttpDeps {
  config: Config;
  log: Logger;
  health: HealthAnswer;
  readiness: Readiness;
  /** Prometheus metrics, when METRICS_PORT is set: refusals by a rate limit are counted here. */
  metrics?: RelayMetrics;
  accounts: AccountService;
  directory: DirectoryService;
  groups: GroupService;
  devices: DeviceService;
  profiles: ProfileService;
  /** The block-list routes (issue #14); absent in apps built without them. */
  blocks?: BlockService;
  /** The attachment blob routes (issue #15); absent in apps built without them. */
  blobs?: BlobService;
  /** The key transparency routes (issue #16); absent in apps built without them. */
  kt?: KeyTransparency;
}

/** The backup route's own limit: 64 KiB before base64url encoding, plus room for the JSON around it. */
const BACKUP_BODY_LIMIT = Math.ceil((LIMITS.backupBytes * 4) / 3) + 1024;
/** The profile route's own limit: a sealed profile (a 64 KiB picture inside) before encoding, plus the JSON. */
const PROFILE_BODY_LIMIT = Math.ceil((PROFILE_BYTES * 4) / 3) + 1024;

export function createHttpApp(deps: HttpDeps): Express {
  const { config, log, accounts, directory, groups } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);
  app.use(securityHeaders());
  app.use(requestLog(log));
  const metrics = deps.metrics;
  if (metrics) {
    app.use((req, res, next) => {
      res.on('finish', () => {
        if (res.statusCode !== 429) return;
        const limit = req.path.startsWith('/api/sessions')
          ? 'signin'
          : req.path.endsWith('/bundle')
            ? 'bundle'
            : 'other';
        metrics.rateLimited.inc({ limit });
      });
      next();
    });
  }

  const api = express.Router();
  const json = jsonBodies(config.jsonBodyLimitBytes, {
    '/backup': BACKUP_BODY_LIMIT,
    '/accounts/self/password': BACKUP_BODY_LIMIT,
    '/profile': PROFILE_BODY_LIMIT,
  });
  // A blob data request's body is raw bytes, streamed by its route: no parser may read (or buffer) it.
  api.use((req, res, next) => (BLOB_DATA_PATH.test(req.path) ? next() : json(req, res, next)));
  api.use(healthRoutes(deps.health, deps.readiness));
  api.use(accountsRoutes(accounts));
  api.use(sessionsRoutes(accounts));
  api.use(prekeysRoutes(accounts, directory));
  api.use(usersRoutes(accounts, directory, { burst: config.bundleRateBurst, perMinute: config.bundleRatePerMinute }));
  api.use(groupsRoutes(accounts, groups));
  api.use(backupRoutes(accounts, directory));
  api.use(settingsRoutes(accounts, directory));
  api.use(devicesRoutes(accounts, deps.devices));
  api.use(profileRoutes(accounts, deps.profiles));
  if (deps.blocks) api.use(blocksRoutes(accounts, deps.blocks));
  if (deps.blobs) api.use(blobsRoutes(accounts, deps.blobs));
  if (deps.kt) api.use(transparencyRoutes(accounts, deps.kt));
  api.use(notFound);
  app.use('/api', api);

  const kt = deps.kt;
  const web = webApp(config.webDist, kt ? (bytes) => kt.logRelease(bytes) : undefined);
  if (web) app.use(...web);
  app.use(notFound);
  app.use(errorHandler(log));
  return app;
}
