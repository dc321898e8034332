// GET /api/accounts/:username/kdf, POST /api/accounts (sign-up), and the signed-in account's own password change
// and deletion (PUT /api/accounts/self/password, DELETE /api/accounts/self), each proving the current auth key.
import { Router } from 'express';
import { changePasswordBody, createAccountBody, deleteAccountBody, usernameSchema } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import { parseInput } from '../validation.js';
import { authOf, clientAddress, requireAuth } from './middleware.js';

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
  router.put('/accounts/self/password', requireAuth(accounts), async (req, res) => {
    const body = parseInput(changePasswordBody, req.body, 'body');
    await accounts.changePassword(authOf(res), body, clientAddress(req));
    res.status(204).end();
  });
  router.delete('/accounts/self', requireAuth(accounts), async (req, res) => {
    const body = parseInput(deleteAccountBody, req.body, 'body');
    await accounts.deleteOwnAccount(authOf(res), body.authKey, clientAddress(req));
    res.status(204).end();
  });
  return router;
}
