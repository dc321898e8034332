// Serves the built web app (one origin: no CORS): hashed assets cached for a year, everything else revalidated,
// and index.html for client-side routes.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import express from 'express';
import type { RequestHandler, Response } from 'express';
import { INTEGRITY_POLICY_HEADERS } from './security.js';

function setIntegrityPolicy(res: Pick<Response, 'setHeader'>): void {
  for (const [name, value] of Object.entries(INTEGRITY_POLICY_HEADERS)) res.setHeader(name, value);
}

/** Where a built web app keeps its release manifest. */
export const manifestFileOf = (dir: string): string => join(dir, '.well-known', 'weconnect', 'manifest.json');

/**
 * Middleware serving `dir`, or null when it holds no index.html (the web app is not built). `logManifest` enters the
 * release manifest's exact bytes in the transparency log; it resolves before those bytes are served.
 */
export function webApp(dir: string, logManifest?: (bytes: Buffer) => Promise<unknown>): RequestHandler[] | null {
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
  const manifest = manifestFileOf(dir);
  const releaseManifest: RequestHandler = async (req, res, next) => {
    if (req.path !== '/.well-known/weconnect/manifest.json' || !existsSync(manifest)) {
      next();
      return;
    }
    // The bytes logged are the bytes served: read once, logged (a no-op once logged), then sent.
    const bytes = await readFile(manifest);
    if (logManifest) await logManifest(bytes);
    res.setHeader('Cache-Control', 'no-cache');
    res.type('application/json').send(bytes);
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
