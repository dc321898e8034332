// The page checks its own release in the relay's log (issue #16): the real web engine asks the real relay (through a
// malicious proxy, ./malicious-relay.ts) for the log entry of the release manifest the relay serves, and verifies its
// inclusion proof against a checkpoint signed by the pinned key and consistent with the newest one it holds. A relay
// that serves a validly signed manifest it never logged, answers with another manifest's entry, a proof that does not
// reach its signed root, or a log signed with another key is caught; the background check after sign-in says so.
import 'fake-indexeddb/auto';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReleaseKey, MANIFEST_PATH, signDist } from '../../../scripts/release';
import type { ChatEngineApi } from '../../src/client/types';
import { signUpUser, until } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';
import { startMaliciousRelay, type MaliciousRelay } from './malicious-relay';

const key = generateReleaseKey();
const dirs: string[] = [];
let relay: TestRelay;
/** Another relay, with its own log key, that did log the manifest the honest relay never served. */
let fork: TestRelay;
let evil: MaliciousRelay;
let logged: Buffer;
let unlogged: Buffer;
let engine: ChatEngineApi;
const engines: ChatEngineApi[] = [];

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const MANIFEST_URL = `/${MANIFEST_PATH}`;

/** A tiny signed build: a page binding one script by integrity, signed at `at`. */
function signedBuild(at: Date): string {
  const dist = mkdtempSync(join(tmpdir(), 'weconnect-rlog-'));
  dirs.push(dist);
  const script = Buffer.from('console.log("WeConnect");\n');
  mkdirSync(join(dist, 'assets'));
  writeFileSync(join(dist, 'assets', 'app.js'), script);
  const sri = `sha256-${createHash('sha256').update(script).digest('base64')}`;
  writeFileSync(
    join(dist, 'index.html'),
    `<!doctype html><html><head><script type="module" src="/assets/app.js" integrity="${sri}"></script></head></html>\n`,
  );
  signDist(dist, key.privateKeyPem, at);
  return dist;
}

/** The relay's own answer for the release entry of `manifest`. */
async function releaseAnswer(at: TestRelay, manifest: Uint8Array): Promise<{ checkpoint: string; leaf: unknown }> {
  const res = await fetch(`${at.url}/api/kt/releases/${sha256Hex(manifest)}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { checkpoint: string; leaf: { index: number; entry: string; proof: string[] } };
}

beforeAll(async () => {
  const served = signedBuild(new Date('2026-12-01T00:00:00Z'));
  const other = mkdtempSync(join(tmpdir(), 'weconnect-rlog-'));
  dirs.push(other);
  cpSync(served, other, { recursive: true });
  signDist(other, key.privateKeyPem, new Date('2026-12-02T00:00:00Z'));
  logged = readFileSync(join(served, MANIFEST_PATH));
  unlogged = readFileSync(join(other, MANIFEST_PATH));
  expect(logged.equals(unlogged)).toBe(false);
  relay = await startTestRelay({ WEB_DIST: served });
  fork = await startTestRelay({ WEB_DIST: other });
  evil = await startMaliciousRelay(relay.url);
  // The relays log the manifest they serve before serving it.
  expect((await fetch(`${relay.url}${MANIFEST_URL}`)).status).toBe(200);
  expect((await fetch(`${fork.url}${MANIFEST_URL}`)).status).toBe(200);
  engine = (await signUpUser(evil.url, 'rlog')).engine;
  engines.push(engine);
}, 60_000);

afterAll(async () => {
  for (const e of engines) await e.signOut(false).catch(() => undefined);
  await evil?.close();
  await relay?.close();
  await fork?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the page checking its release manifest in the relay log', () => {
  it('finds the manifest the relay serves as an entry of its log, proved against a verified checkpoint', async () => {
    const honest = (await releaseAnswer(relay, logged)).leaf as { index: number };
    const check = await engine.verifyRelease(logged);
    expect(check).toMatchObject({ kind: 'logged', index: honest.index });
    const status = await engine.keyTransparencyStatus();
    expect(check.kind === 'logged' && check.treeSize).toBe(status?.treeSize);
  });

  it('refuses a validly signed manifest the relay never logged, and the background check after sign-in says so', async () => {
    expect(await engine.verifyRelease(unlogged)).toEqual({
      kind: 'failed',
      reason: 'Key transparency check failed: the release manifest this relay serves is not in its public log.',
    });
    // A relay that serves that manifest: the check that runs once after sign-in raises an error notice.
    evil.forgeHttp = (path) => (path === MANIFEST_URL ? JSON.parse(unlogged.toString('utf8')) : undefined);
    try {
      const fooled = (await signUpUser(evil.url, 'rlog2')).engine;
      engines.push(fooled);
      await until('the release notice', () =>
        fooled.getSnapshot().notices.some((n) => n.kind === 'error' && /not in its public log/.test(n.text)),
      );
    } finally {
      evil.forgeHttp = null;
    }
  });

  it("refuses an answer that carries another manifest's entry (with a valid proof)", async () => {
    const other = await releaseAnswer(relay, logged);
    evil.forgeHttp = (path) => (path.startsWith('/api/kt/releases/') ? other : undefined);
    try {
      // Baseline: the forged route answers the logged manifest correctly.
      expect((await engine.verifyRelease(logged)).kind).toBe('logged');
      expect(await engine.verifyRelease(unlogged)).toEqual({
        kind: 'failed',
        reason: 'Key transparency check failed: the log entry the relay answered with is for another release manifest.',
      });
    } finally {
      evil.forgeHttp = null;
    }
  });

  it('refuses an inclusion proof that does not reach the signed root', async () => {
    const answer = (await releaseAnswer(relay, logged)) as {
      checkpoint: string;
      leaf: { index: number; entry: string; proof: string[] };
    };
    const bent = { ...answer, leaf: { ...answer.leaf, index: answer.leaf.index + 1 } };
    evil.forgeHttp = (path) => (path.startsWith('/api/kt/releases/') ? bent : undefined);
    try {
      expect(await engine.verifyRelease(logged)).toEqual({
        kind: 'failed',
        reason:
          "Key transparency check failed: the release manifest's log entry is not in the relay's signed checkpoint.",
      });
    } finally {
      evil.forgeHttp = null;
    }
  });

  it('refuses a log signed with another key (a forked log that did record the manifest)', async () => {
    const forked = await releaseAnswer(fork, unlogged);
    evil.forgeHttp = (path) => (path.startsWith('/api/kt/releases/') ? forked : undefined);
    try {
      const check = await engine.verifyRelease(unlogged);
      expect(check.kind).toBe('failed');
      expect(check.kind === 'failed' && check.reason).toMatch(/not signed as required/);
    } finally {
      evil.forgeHttp = null;
    }
  });
});
