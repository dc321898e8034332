// PUT and GET /api/backup: the account's encrypted key backup (opaque; its own body limit, see app.ts).
import { Router } from 'express';
import { backupBody } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { DirectoryService } from '../service/directory.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

export function backupRoutes(accounts: AccountService, directory: DirectoryService): Router {
  const router = Router();
  router.put('/backup', requireAuth(accounts), async (req, res) => {
    const body = parseInput(backupBody, req.body, 'body');
    await directory.putBackup(authOf(res), body.backup);
    res.status(204).end();
  });
  router.get('/backup', requireAuth(accounts), async (_req, res) => {
    res.json(await directory.getBackup(authOf(res)));
  });
  return router;
}
