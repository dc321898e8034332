// Serves the built web app (one origin: no CORS): hashed assets cached for a year, everything else revalidated,
// and index.html for client-side routes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import type { RequestHandler, Response } from 'express';
import { INTEGRITY_POLICY_HEADERS } from './security.js';

function setIntegrityPolicy(res: Pick<Response, 'setHeader'>): void {
  for (const [name, value] of Object.entries(INTEGRITY_POLICY_HEADERS)) res.setHeader(name, value);
}

/** Middleware serving `dir`, or null when it holds no index.html (the web app is not built). */
export function webApp(dir: string): RequestHandler[] | null {
  const index = join(dir, 'index.html');
  if (!existsSync(index)) return null;
  const files = express.static(dir, {
    index: 'index.html',
    setHeaders(res, path) {
      const hashed = path.startsWith(join(dir, 'assets'));
      res.setHeader('Cache-Control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache');
      if (path.endsWith('.html')) setIntegrityPolicy(res);
    },
  });
  // The release manifest (scripts/release.ts) lives in a dot-directory, which express.static never serves.
  const manifest = join(dir, '.well-known', 'weconnect', 'manifest.json');
  const releaseManifest: RequestHandler = (req, res, next) => {
    if (req.path !== '/.well-known/weconnect/manifest.json' || !existsSync(manifest)) {
      next();
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.type('application/json').sendFile(manifest, { dotfiles: 'allow' });
  };
  const spaFallback: RequestHandler = (req, res, next) => {
    const lastSegment = req.path.split('/').pop() ?? '';
    const isPage = (req.method === 'GET' || req.method === 'HEAD') && !lastSegment.includes('.');
    if (!isPage || req.path === '/api' || req.path.startsWith('/api/')) {
      next();
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    setIntegrityPolicy(res);
    res.sendFile(index);
  };
  return [releaseManifest, files, spaFallback];
}
