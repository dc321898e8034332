// PUT /api/blocks/:userId, DELETE /api/blocks/:userId, GET /api/blocks: the caller's own block list only.
import { Router } from 'express';
import { blockBody, blockParams } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { BlockService } from '../service/blocks.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

export function blocksRoutes(accounts: AccountService, blocks: BlockService): Router {
  const router = Router();
  router.put('/blocks/:userId', requireAuth(accounts), async (req, res) => {
    const { userId } = parseInput(blockParams, { ...req.params }, 'path');
    parseInput(blockBody, req.body, 'body');
    await blocks.block(authOf(res), userId);
    res.status(204).end();
  });
  router.delete('/blocks/:userId', requireAuth(accounts), async (req, res) => {
    const { userId } = parseInput(blockParams, { ...req.params }, 'path');
    parseInput(blockBody, req.body, 'body');
    await blocks.unblock(authOf(res), userId);
    res.status(204).end();
  });
  router.get('/blocks', requireAuth(accounts), async (_req, res) => {
    res.json(await blocks.list(authOf(res)));
  });
  return router;
}
