// GET /api/health: liveness plus which store and fan-out this relay runs on (a constant answer: the process is up).
// GET /api/ready: readiness — the store (and Redis, when configured) answered within READY_TIMEOUT_MS.
import { Router } from 'express';
import type { HealthAnswer, ReadyAnswer } from '../protocol.js';
import type { Readiness } from '../service/readiness.js';

export function healthRoutes(health: HealthAnswer, readiness: Readiness): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    res.json(health);
  });
  router.get('/ready', async (_req, res) => {
    const checked = await readiness.check();
    res.setHeader('Cache-Control', 'no-store');
    res.json({ status: 'ready', checked } satisfies ReadyAnswer);
  });
  return router;
}
