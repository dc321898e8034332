// GET /api/users?query=<prefix> and GET /api/users/:userId/bundle[?devices=<id>,<id>].
import { Router } from 'express';
import { RelayError } from '../errors.js';
import { bundleQuery, idSchema, userSearchQuery } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { DirectoryService } from '../service/directory.js';
import { TokenBuckets } from '../service/rate-limit.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

/** Bundle fetches per (requesting user, target user): each fetch hands out one-time prekeys, so a loop drains them. */
export interface BundleRate {
  burst: number;
  perMinute: number;
}

/** How many fetches between sweeps of the refilled buckets (keeps the map bounded without a timer). */
const PRUNE_EVERY = 1000;

export function usersRoutes(accounts: AccountService, directory: DirectoryService, bundleRate: BundleRate): Router {
  const router = Router();
  const buckets = new TokenBuckets(bundleRate.burst, bundleRate.perMinute / 60);
  const retryAfterSeconds = Math.max(1, Math.ceil(60 / bundleRate.perMinute));
  let fetches = 0;
  router.get('/users', requireAuth(accounts), async (req, res) => {
    const { query } = parseInput(userSearchQuery, req.query, 'query');
    res.json(await directory.search(query));
  });
  router.get('/users/:userId/bundle', requireAuth(accounts), async (req, res) => {
    const userId = parseInput(idSchema, req.params.userId, 'userId');
    const { devices } = parseInput(bundleQuery, req.query, 'query');
    const takeFor = devices ?? null;
    const now = Date.now();
    if (++fetches % PRUNE_EVERY === 0) buckets.prune(now);
    // Fetching one's own bundle (clients look for their own other devices) drains no one else's prekeys, and
    // neither does a fetch that takes none (`devices=`: the device list a client checks now and then).
    const requester = authOf(res).userId;
    const drains = requester !== userId && (takeFor === null || takeFor.size > 0);
    if (drains && !buckets.take(`${requester}:${userId}`, now)) {
      throw new RelayError('rate_limited', 'too many bundle fetches for this user; slow down', { retryAfterSeconds });
    }
    res.json(await directory.bundle(userId, takeFor));
  });
  return router;
}
