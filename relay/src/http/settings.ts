// PUT /api/settings (sharePresence) and GET /api/settings (an extension: reads them back).
import { Router } from 'express';
import { settingsBody } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { DirectoryService } from '../service/directory.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

export function settingsRoutes(accounts: AccountService, directory: DirectoryService): Router {
  const router = Router();
  router.put('/settings', requireAuth(accounts), async (req, res) => {
    const body = parseInput(settingsBody, req.body, 'body');
    await directory.putSettings(authOf(res), body);
    res.status(204).end();
  });
  router.get('/settings', requireAuth(accounts), async (_req, res) => {
    res.json(await directory.getSettings(authOf(res)));
  });
  return router;
}
