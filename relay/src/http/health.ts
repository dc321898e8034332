// GET /api/health: liveness plus which store and fan-out this relay runs on.
import { Router } from 'express';
import type { HealthAnswer } from '../protocol.js';

export function healthRoutes(health: HealthAnswer): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    res.json(health);
  });
  return router;
}
