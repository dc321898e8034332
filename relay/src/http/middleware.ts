// Express plumbing shared by every route: request logs, JSON parsing with limits, bearer auth, and turning every
// error into the protocol's one error shape.
import express from 'express';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { RelayError, asRelayError } from '../errors.js';
import type { AccountService } from '../service/accounts.js';
import type { AccessClaims } from '../service/tokens.js';

/** Logs method, path (never the query, headers or body), status and duration of each request. */
export function requestLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const path = req.originalUrl.split('?')[0];
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.info({ method: req.method, path, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'http');
    });
    next();
  };
}

/** JSON bodies under /api: `limit` bytes, except the routes given their own limit. */
export function jsonBodies(limit: number, perRoute: Record<string, number>): RequestHandler {
  const parsers = new Map(Object.entries(perRoute).map(([path, l]) => [path, express.json({ limit: l })]));
  const fallback = express.json({ limit });
  return (req, res, next) => (parsers.get(req.path) ?? fallback)(req, res, next);
}

/** Requires `Authorization: Bearer <accessToken>` and stores its claims for authOf(). */
export function requireAuth(accounts: AccountService): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    const match = header ? /^Bearer ([^\s]+)$/i.exec(header) : null;
    if (!match) throw new RelayError('unauthorized', 'missing bearer token');
    res.locals.auth = await accounts.authenticate(match[1]);
    next();
  };
}

/** The claims requireAuth stored. */
export function authOf(res: Response): AccessClaims {
  const auth = res.locals.auth as AccessClaims | undefined;
  if (!auth) throw new RelayError('unauthorized', 'not authenticated');
  return auth;
}

/** The client's address (honours TRUST_PROXY). */
export function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

export function sendError(res: Response, err: RelayError): void {
  if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(err.retryAfterSeconds));
  res.status(err.status).json(err.toWire());
}

export function notFound(_req: Request, _res: Response, next: NextFunction): void {
  next(new RelayError('not_found', 'no such route'));
}

/** Errors raised by body-parser and other middleware carry `type` and/or `status`. */
function fromMiddleware(err: unknown): RelayError | null {
  if (typeof err !== 'object' || err === null) return null;
  const e = err as { type?: unknown; status?: unknown };
  if (e.type === 'entity.too.large') return new RelayError('payload_too_large', 'the request body is too large');
  if (e.type === 'entity.parse.failed') return new RelayError('invalid_input', 'the request body is not valid JSON');
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    if (e.status === 404) return new RelayError('not_found', 'not found');
    if (e.status === 413) return new RelayError('payload_too_large', 'the request body is too large');
    return new RelayError('invalid_input', 'the request could not be read');
  }
  return null;
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const known = err instanceof RelayError ? err : fromMiddleware(err);
    if (!known) log.error({ err, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    sendError(res, known ?? asRelayError(err));
  };
}
