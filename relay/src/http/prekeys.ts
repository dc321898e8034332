// PUT and GET /api/devices/self/prekeys: the calling device's signed and one-time prekeys.
import { Router } from 'express';
import { putPrekeysBody } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { DirectoryService } from '../service/directory.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

export function prekeysRoutes(accounts: AccountService, directory: DirectoryService): Router {
  const router = Router();
  router.put('/devices/self/prekeys', requireAuth(accounts), async (req, res) => {
    const body = parseInput(putPrekeysBody, req.body, 'body');
    await directory.putPrekeys(authOf(res), body);
    res.status(204).end();
  });
  router.get('/devices/self/prekeys', requireAuth(accounts), async (_req, res) => {
    res.json(await directory.prekeyCount(authOf(res)));
  });
  return router;
}
