// The web app's page under a policy a verifiable client needs (issue #16): the relay sends the W3C Integrity-Policy
// with the HTML (every script the page loads must carry Subresource Integrity), and its CSP stays within what WEBCAT
// accepts for a verifiable web app (freedomofpress/webcat, "CSP" developer docs), checked here rule by rule.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP_HEADER } from '../src/http/security.js';
import { api, startRelay } from './helpers.js';
import type { TestRelay } from './helpers.js';

let web: TestRelay;
const dist = mkdtempSync(join(tmpdir(), 'weconnect-web-integrity-'));
beforeAll(async () => {
  mkdirSync(join(dist, 'assets'), { recursive: true });
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>WeConnect</title>');
  writeFileSync(join(dist, 'assets', 'app-abc123.js'), 'console.log(1)');
  web = await startRelay({ WEB_DIST: dist });
});
afterAll(async () => {
  await web.close();
  rmSync(dist, { recursive: true, force: true });
});

/** The reasons WEBCAT would refuse `header` as an app's CSP; empty when it accepts it. */
function webcatRefusals(header: string): string[] {
  if (header.includes(',')) return ['one policy only: no comma-separated policies'];
  const policy = new Map(
    header
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name, ...values]) => [name!, values]),
  );
  const out: string[] = [];
  const only = (directive: string, allowed: string[]) => {
    for (const v of policy.get(directive) ?? []) {
      if (!allowed.includes(v) && !/^'sha(256|384|512)-/.test(v)) out.push(`${directive} may not allow ${v}`);
    }
  };
  only('default-src', ["'self'", "'none'"]);
  only('script-src', ["'none'", "'self'", "'wasm-unsafe-eval'"]);
  only('script-src-elem', ["'none'", "'self'", "'wasm-unsafe-eval'"]);
  only('style-src', ["'none'", "'self'"]); // WEBCAT still tolerates 'unsafe-inline' here; we do not need it
  only('style-src-elem', ["'none'", "'self'"]);
  only('object-src', ["'none'"]);
  only('worker-src', ["'none'", "'self'"]);
  const defaultNone = (policy.get('default-src') ?? []).join(' ') === "'none'";
  if (!defaultNone) {
    if ((policy.get('object-src') ?? []).join(' ') !== "'none'") out.push("object-src must be 'none'");
    if (!policy.has('worker-src')) out.push('worker-src must be set');
    if (!policy.has('frame-src') && !policy.has('child-src')) out.push('frame-src or child-src must be set');
  }
  return out;
}

describe('the page the relay serves', () => {
  it('carries Integrity-Policy for scripts at /, /index.html and client-side routes', async () => {
    for (const path of ['/', '/index.html', '/chat/some-conversation']) {
      const res = await fetch(`${web.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('integrity-policy'), path).toBe('blocked-destinations=(script)');
      // No report-only policy for styles: Chromium does not support that destination and logged an error per load.
      expect(res.headers.get('integrity-policy-report-only'), path).toBeNull();
    }
  });

  it('does not put it on scripts or API answers (it is the document that enforces it)', async () => {
    const asset = await fetch(`${web.url}/assets/app-abc123.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('integrity-policy')).toBeNull();
    const health = await api(web.url, 'GET', '/api/health');
    expect(health.headers.get('integrity-policy')).toBeNull();
  });

  it('is served with a CSP that WEBCAT accepts (no inline script or style, no eval but WebAssembly)', async () => {
    const served = (await fetch(`${web.url}/`)).headers.get('content-security-policy') ?? '';
    for (const csp of [served, CSP_HEADER]) {
      expect(webcatRefusals(csp)).toEqual([]);
      for (const d of [
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "frame-src 'none'",
      ]) {
        expect(csp.split(';').map((x) => x.trim())).toContain(d);
      }
    }
    // The checker itself refuses what WEBCAT refuses.
    expect(webcatRefusals("default-src 'self'; script-src 'self' 'unsafe-inline'; object-src 'none'")).toEqual([
      "script-src may not allow 'unsafe-inline'",
      'worker-src must be set',
      'frame-src or child-src must be set',
    ]);
  });
});
