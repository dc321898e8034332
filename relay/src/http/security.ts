// Security headers on every response: helmet for Express, and the same essentials for Socket.IO's own HTTP answers.
import helmet from 'helmet';
import type { RequestHandler } from 'express';

/**
 * Nothing inline, no eval (only WebAssembly compilation, which libsodium needs), no framing; connections (fetch and
 * the Socket.IO WebSocket) only to the relay's own origin: CSP Level 3 lets 'self' match ws: and wss: on the same
 * host and port (Chromium, Firefox and Safari do), so no scheme-wide `ws:`/`wss:` that would reach any host.
 */
export const CSP_DIRECTIVES = {
  'default-src': ["'self'"],
  'script-src': ["'self'", "'wasm-unsafe-eval'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:', 'blob:'],
  'font-src': ["'self'"],
  'connect-src': ["'self'"],
  'worker-src': ["'self'"],
  // WEBCAT requires frame-src or child-src whenever default-src is not 'none'; the app frames nothing.
  'frame-src': ["'none'"],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
} as const;

export const CSP_HEADER = Object.entries(CSP_DIRECTIVES)
  .map(([name, values]) => `${name} ${values.join(' ')}`)
  .join('; ');

/**
 * Sent with the HTML page (http/web.ts): the W3C Integrity-Policy makes the browser refuse any script request that
 * carries no integrity metadata, so every script the page runs is bound to a hash in index.html (the build adds them:
 * web/build/subresource-integrity.ts). Stylesheets carry integrity too, which the browser checks, but no policy
 * names them: Chromium knows no destination but `script` and logged an error on every page load for a report-only
 * `style` policy, which, with no reporting endpoint, reported nothing anywhere.
 */
export const INTEGRITY_POLICY_HEADERS: Record<string, string> = {
  'Integrity-Policy': 'blocked-destinations=(script)',
};

export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: Object.fromEntries(Object.entries(CSP_DIRECTIVES).map(([k, v]) => [k, [...v]])),
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
  });
}

/** For answers Express never sees (the Socket.IO handshake and polling transport). */
export const ENGINE_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CSP_HEADER,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Resource-Policy': 'same-origin',
};
