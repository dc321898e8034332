// GET /api/devices, PUT /api/devices/self/name, DELETE /api/devices/:deviceId: the caller's own devices (issue #14).
import { Router } from 'express';
import { deviceIdParams, putDeviceNameBody } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import type { DeviceService } from '../service/devices.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

export function devicesRoutes(accounts: AccountService, devices: DeviceService): Router {
  const router = Router();
  router.get('/devices', requireAuth(accounts), async (_req, res) => {
    res.json(await devices.list(authOf(res)));
  });
  router.put('/devices/self/name', requireAuth(accounts), async (req, res) => {
    const body = parseInput(putDeviceNameBody, req.body, 'body');
    await devices.rename(authOf(res), body);
    res.status(204).end();
  });
  router.delete('/devices/:deviceId', requireAuth(accounts), async (req, res) => {
    const { deviceId } = parseInput(deviceIdParams, { ...req.params }, 'path');
    await devices.remove(authOf(res), deviceId);
    res.status(204).end();
  });
  return router;
}
