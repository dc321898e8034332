// PUT /api/profile (own sealed profile; its own body limit, see app.ts) and GET /api/users/:userId/profile.
import { Router } from 'express';
import { idSchema, putProfileBody } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { ProfileService } from '../service/profiles.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

export function profileRoutes(accounts: AccountService, profiles: ProfileService): Router {
  const router = Router();
  router.put('/profile', requireAuth(accounts), async (req, res) => {
    const body = parseInput(putProfileBody, req.body, 'body');
    await profiles.put(authOf(res), body.profile);
    res.status(204).end();
  });
  router.get('/users/:userId/profile', requireAuth(accounts), async (req, res) => {
    const userId = parseInput(idSchema, req.params.userId, 'userId');
    res.json(await profiles.get(userId));
  });
  return router;
}
