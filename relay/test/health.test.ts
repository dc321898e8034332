// GET /api/health, unknown paths, security headers on every answer, and serving the built web app.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startRelay } from './helpers.js';
import type { TestRelay } from './helpers.js';

let t: TestRelay;
beforeAll(async () => {
  t = await startRelay();
});
afterAll(() => t.close());

function expectSecurityHeaders(headers: Headers): void {
  const csp = headers.get('content-security-policy') ?? '';
  expect(csp).toContain("default-src 'self'");
  expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
  expect(csp).toContain("style-src 'self'");
  expect(csp).toMatch(/(^|;) ?connect-src 'self'(;|$)/);
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(csp).not.toMatch(/'unsafe-eval'/);
  expect(headers.get('x-content-type-options')).toBe('nosniff');
}

describe('GET /api/health', () => {
  it('answers status, version, store and fan-out', async () => {
    const res = await api(t.url, 'GET', '/api/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: 'ok',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      store: 'sqlite',
      fanout: 'local',
    });
    expectSecurityHeaders(res.headers);
  });
});

describe('every other path', () => {
  it('answers an unknown /api path with 404 not_found in the error shape, with security headers', async () => {
    for (const [method, path] of [
      ['GET', '/api/nope'],
      ['POST', '/api/health'],
      ['GET', '/api'],
    ] as const) {
      const res = await api(t.url, method, path);
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
      expectSecurityHeaders(res.headers);
    }
  });

  it('puts the security headers on error answers too', async () => {
    const res = await api(t.url, 'POST', '/api/accounts', { rawBody: '{' });
    expect(res.status).toBe(400);
    expectSecurityHeaders(res.headers);
  });

  it('answers non-API paths with 404 when no web app is built', async () => {
    const res = await api(t.url, 'GET', '/some/page');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('puts the CSP on Socket.IO handshake answers', async () => {
    const res = await fetch(`${t.url}/socket.io/?EIO=4&transport=polling`);
    await res.text();
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });
});

describe('the web app', () => {
  let web: TestRelay;
  beforeAll(async () => {
    const dist = join(t.dataDir, 'web-dist');
    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>WeConnect</title>');
    writeFileSync(join(dist, 'assets', 'app-abc123.js'), 'console.log(1)');
    web = await startRelay({ WEB_DIST: dist });
  });
  afterAll(() => web.close());

  it('serves index.html at / and for client-side routes, with the CSP', async () => {
    for (const path of ['/', '/chat/some-conversation']) {
      const res = await fetch(`${web.url}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<title>WeConnect</title>');
      expectSecurityHeaders(res.headers);
    }
  });

  it('serves hashed assets as immutable and 404s a missing one', async () => {
    const asset = await fetch(`${web.url}/assets/app-abc123.js`);
    expect(await asset.text()).toBe('console.log(1)');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect((await api(web.url, 'GET', '/assets/missing.js')).status).toBe(404);
  });

  it('still answers unknown /api paths with the JSON 404', async () => {
    const res = await api(web.url, 'GET', '/api/missing');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });
});
