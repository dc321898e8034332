// The relay's structured logger (pino, JSON lines on stdout). Bodies, keys and tokens are never logged; the
// redaction below is a second line of defence for headers and token-like fields.
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { LogLevel } from './config.js';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  '*.authKey',
  '*.backup',
  '*.body',
];

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { service: 'weconnect-relay' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

/** A URL as it may be logged or shown: without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}
