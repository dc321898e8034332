// POST /api/groups, GET /api/groups, PUT /api/groups/:groupId/members, PUT /api/groups/:groupId/admins.
import { Router } from 'express';
import { createGroupBody, idSchema, updateGroupAdminsBody, updateGroupMembersBody } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { GroupService } from '../service/groups.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

export function groupsRoutes(accounts: AccountService, groups: GroupService): Router {
  const router = Router();
  router.post('/groups', requireAuth(accounts), async (req, res) => {
    const body = parseInput(createGroupBody, req.body, 'body');
    res.status(201).json(await groups.create(authOf(res), body.members));
  });
  router.get('/groups', requireAuth(accounts), async (_req, res) => {
    res.json({ groups: await groups.list(authOf(res)) });
  });
  router.put('/groups/:groupId/members', requireAuth(accounts), async (req, res) => {
    const groupId = parseInput(idSchema, req.params.groupId, 'groupId');
    const body = parseInput(updateGroupMembersBody, req.body, 'body');
    res.json(await groups.updateMembers(authOf(res), groupId, body));
  });
  router.put('/groups/:groupId/admins', requireAuth(accounts), async (req, res) => {
    const groupId = parseInput(idSchema, req.params.groupId, 'groupId');
    const body = parseInput(updateGroupAdminsBody, req.body, 'body');
    res.json(await groups.updateAdmins(authOf(res), groupId, body));
  });
  return router;
}
