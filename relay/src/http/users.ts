// GET /api/users?query=<prefix> and GET /api/users/:userId/bundle.
import { Router } from 'express';
import { idSchema, userSearchQuery } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { DirectoryService } from '../service/directory.js';
import { parseInput } from '../validation.js';
import { requireAuth } from './middleware.js';

export function usersRoutes(accounts: AccountService, directory: DirectoryService): Router {
  const router = Router();
  router.get('/users', requireAuth(accounts), async (req, res) => {
    const { query } = parseInput(userSearchQuery, req.query, 'query');
    res.json(await directory.search(query));
  });
  router.get('/users/:userId/bundle', requireAuth(accounts), async (req, res) => {
    const userId = parseInput(idSchema, req.params.userId, 'userId');
    res.json(await directory.bundle(userId));
  });
  return router;
}
