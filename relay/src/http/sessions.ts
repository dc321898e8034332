// POST /api/sessions (sign-in), POST /api/sessions/refresh, DELETE /api/sessions/current (sign-out).
import { Router } from 'express';
import { refreshBody, signInBody } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import { parseInput } from '../validation.js';
import { authOf, clientAddress, requireAuth } from './middleware.js';

export function sessionsRoutes(accounts: AccountService): Router {
  const router = Router();
  router.post('/sessions', async (req, res) => {
    const body = parseInput(signInBody, req.body, 'body');
    res.json(await accounts.signIn(body, clientAddress(req)));
  });
  router.post('/sessions/refresh', async (req, res) => {
    const body = parseInput(refreshBody, req.body, 'body');
    res.json(await accounts.refresh(body));
  });
  router.delete('/sessions/current', requireAuth(accounts), async (_req, res) => {
    await accounts.signOut(authOf(res));
    res.status(204).end();
  });
  return router;
}
