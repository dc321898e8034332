// GET /api/accounts/:username/kdf and POST /api/accounts (sign-up).
import { Router } from 'express';
import { createAccountBody, usernameSchema } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import { parseInput } from '../validation.js';
import { clientAddress } from './middleware.js';

export function accountsRoutes(accounts: AccountService): Router {
  const router = Router();
  router.get('/accounts/:username/kdf', async (req, res) => {
    const username = parseInput(usernameSchema, req.params.username, 'username');
    res.json(await accounts.kdf(username));
  });
  router.post('/accounts', async (req, res) => {
    const body = parseInput(createAccountBody, req.body, 'body');
    res.status(201).json(await accounts.signUp(body, clientAddress(req)));
  });
  return router;
}
