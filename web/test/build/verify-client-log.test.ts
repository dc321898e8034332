// `npm run verify-client` checks that the release manifest a relay serves is in the relay's key transparency log
// (issue #16): against a real relay that logged the signed build it serves, the check passes (with a pinned
// --kt-key, or trusting the relay's key with a warning); a relay serving a validly signed manifest it did not log
// fails; a forged answer (the entry of another manifest, a proof that does not reach the signed root, or a forked log
// signed with another key) fails; each with exit code 1 and the reason named.
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReleaseKey, MANIFEST_PATH, signDist } from '../../../scripts/release';
import { relayLogCheck, verifyClient } from '../../../scripts/verify-client';
import { startTestRelay, type TestRelay } from '../support/relay';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const key = generateReleaseKey();
const dirs: string[] = [];
let honest: TestRelay;
/** A second relay with its own log (another key), which did log the forged manifest: a forked log. */
let fork: TestRelay;
let logged: Buffer;
let unlogged: Buffer;
let pinned: string;
const servers: Server[] = [];

/** A tiny signed build: a page binding one script by integrity. */
function signedBuild(at: Date): string {
  const dist = mkdtempSync(join(tmpdir(), 'weconnect-mlog-'));
  dirs.push(dist);
  const script = Buffer.from('console.log("WeConnect");\n');
  const sri = `sha256-${createHash('sha256').update(script).digest('base64')}`;
  mkdirSync(join(dist, 'assets'));
  writeFileSync(join(dist, 'assets', 'app.js'), script);
  writeFileSync(
    join(dist, 'index.html'),
    `<!doctype html><html><head><script type="module" crossorigin src="/assets/app.js" integrity="${sri}"></script></head><body></body></html>\n`,
  );
  signDist(dist, key.privateKeyPem, at);
  return dist;
}

interface Forgery {
  /** The manifest bytes served instead of the relay's. */
  manifest?: Buffer;
  /** Where /api/kt/* goes (default: the honest relay). */
  log?: TestRelay;
  /** Rewrites the honest relay's /api/kt/releases answer. */
  release?: (path: string) => Promise<{ status: number; body: unknown }>;
}

/** A relay operator's front end: the honest relay's files and log, with the parts `forgery` names replaced. */
async function frontEnd(forgery: Forgery): Promise<string> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      if (forgery.manifest && path === `/${MANIFEST_PATH}`) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(forgery.manifest);
        return;
      }
      if (forgery.release && path.startsWith('/api/kt/releases/')) {
        const forged = await forgery.release(path);
        res.writeHead(forged.status, { 'content-type': 'application/json' }).end(JSON.stringify(forged.body));
        return;
      }
      const upstream = path.startsWith('/api/kt/') && forgery.log ? forgery.log : honest;
      const answer = await fetch(new URL(path, upstream.url), { redirect: 'manual' });
      const headers: Record<string, string> = {};
      answer.headers.forEach((value, name) => {
        if (!['content-encoding', 'content-length', 'transfer-encoding', 'connection'].includes(name)) {
          headers[name] = value;
        }
      });
      res.writeHead(answer.status, headers).end(Buffer.from(await answer.arrayBuffer()));
    })().catch(() => res.writeHead(502).end());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function verifierKeyOf(relay: TestRelay): Promise<string> {
  return ((await (await fetch(`${relay.url}/api/kt/checkpoint`)).json()) as { verifierKey: string }).verifierKey;
}

/** Each CLI run's config directory, removed after the suite. */
const configHomes: string[] = [];

/** Runs the npm script's command line as a user does; resolves to its exit code and output. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // A fresh config directory per run: no state kept from an earlier run (verify-client-state.test.ts tests that).
    const configHome = mkdtempSync(join(tmpdir(), 'weconnect-vc-config-'));
    configHomes.push(configHome);
    const env = { ...process.env, XDG_CONFIG_HOME: configHome };
    execFile('npx', ['tsx', 'scripts/verify-client.ts', ...args], { cwd: REPO, env }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The library call the CLI makes, with the log check pinned to `ktKey`. */
const check = (url: string, ktKey = pinned) => verifyClient(url, key.publicKey, relayLogCheck(url, ktKey));

beforeAll(async () => {
  const served = signedBuild(new Date('2026-12-01T00:00:00Z'));
  // The same files signed again later: a valid signed manifest with other bytes, which the honest relay never served.
  const other = mkdtempSync(join(tmpdir(), 'weconnect-mlog-'));
  dirs.push(other);
  cpSync(served, other, { recursive: true });
  signDist(other, key.privateKeyPem, new Date('2026-12-02T00:00:00Z'));
  logged = readFileSync(join(served, MANIFEST_PATH));
  unlogged = readFileSync(join(other, MANIFEST_PATH));
  expect(logged.equals(unlogged)).toBe(false);
  honest = await startTestRelay({ WEB_DIST: served });
  fork = await startTestRelay({ WEB_DIST: other });
  pinned = await verifierKeyOf(honest);
}, 60_000);

afterAll(async () => {
  for (const d of configHomes) rmSync(d, { recursive: true, force: true });
  for (const s of servers) s.close();
  await honest?.stop();
  await fork?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('npm run verify-client and the transparency log', () => {
  it('passes a signed build the relay serves and logged, with the log key pinned, exit 0', async () => {
    const run = await cli(honest.url, '--manifest-key', key.publicKey, '--kt-key', pinned);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain("PASS the manifest is in the relay's transparency log");
    expect(run.stdout).not.toMatch(/^(FAIL|WARNING)/m);
    expect(run.code).toBe(0);
  }, 60_000);

  it('without --kt-key, trusts the key the relay gives and warns that it did', async () => {
    const run = await cli(honest.url, '--manifest-key', key.publicKey);
    expect(run.stdout).toContain("PASS the manifest is in the relay's transparency log");
    expect(run.stdout).toContain(
      `WARNING: no --kt-key given: the log's verifier key was taken from the relay itself (${pinned})`,
    );
    expect(run.code).toBe(0);
  }, 60_000);

  it('fails, exit 1, when the relay serves a validly signed manifest it did not log', async () => {
    // Baseline: the same front end serving the logged manifest passes.
    expect((await check(await frontEnd({ manifest: logged }))).ok).toBe(true);
    const url = await frontEnd({ manifest: unlogged });
    const report = await check(url);
    expect(report.signatureChecked).toBe(true);
    expect(report.files.every((f) => f.ok)).toBe(true);
    expect(report.problems).toEqual([
      'the manifest is not in the transparency log: the relay has no log entry for the manifest it serves',
    ]);
    expect(report.ok).toBe(false);
    const run = await cli(url, '--manifest-key', key.publicKey, '--kt-key', pinned);
    expect(run.stdout).toContain('FAIL the manifest is not in the transparency log');
    expect(run.code).toBe(1);
  }, 60_000);

  it('fails when the relay answers with the logged entry and proof of another manifest', async () => {
    const loggedHash = createHash('sha256').update(logged).digest('hex');
    const url = await frontEnd({
      manifest: unlogged,
      release: async () => {
        const real = await fetch(`${honest.url}/api/kt/releases/${loggedHash}`);
        return { status: real.status, body: await real.json() };
      },
    });
    const report = await check(url);
    expect(report.problems).toEqual([
      'the manifest is not in the transparency log: the log entry is not the one of the manifest served',
    ]);
  });

  it('fails when the entry is the one of the manifest served but the proof does not reach the signed root', async () => {
    const loggedHash = createHash('sha256').update(logged).digest('hex');
    const url = await frontEnd({
      manifest: unlogged,
      release: async () => {
        const real = (await (await fetch(`${honest.url}/api/kt/releases/${loggedHash}`)).json()) as {
          checkpoint: string;
          leaf: { index: number; entry: string; proof: string[] };
        };
        // The entry the verifier expects, put where the logged one is, under the honest relay's signed checkpoint.
        const entry = Buffer.from(real.leaf.entry, 'base64url');
        const forged = Buffer.concat([
          entry.subarray(0, entry.length - 32),
          createHash('sha256').update(unlogged).digest(),
        ]);
        return { status: 200, body: { ...real, leaf: { ...real.leaf, entry: forged.toString('base64url') } } };
      },
    });
    const report = await check(url);
    expect(report.problems).toEqual([
      'the manifest is not in the transparency log: the inclusion proof does not verify against the signed checkpoint',
    ]);
  });

  it('fails when a one-leaf tree holding the entry comes with a checkpoint that names the pinned log but is signed by another key', async () => {
    const [origin, keyIdHex] = pinned.split('+') as [string, string];
    const entry = Buffer.concat([
      Buffer.from('WeConnect key transparency entry v1\n'),
      Buffer.of(3, 0, 0, 0, 0, 64),
      Buffer.from(JSON.parse(unlogged.toString('utf8')).keyId as string),
      Buffer.of(32),
      createHash('sha256').update(unlogged).digest(),
    ]);
    const root = createHash('sha256').update(Buffer.of(0)).update(entry).digest();
    const body = `${origin}\n1\n${root.toString('base64')}\n`;
    const impostor = generateKeyPairSync('ed25519').privateKey;
    const line = Buffer.concat([Buffer.from(keyIdHex, 'hex'), sign(null, Buffer.from(body), impostor)]).toString(
      'base64',
    );
    const url = await frontEnd({
      manifest: unlogged,
      release: () =>
        Promise.resolve({
          status: 200,
          body: {
            checkpoint: `${body}\n\u2014 ${origin} ${line}\n`,
            leaf: { index: 0, entry: entry.toString('base64url'), proof: [] },
          },
        }),
    });
    const report = await check(url);
    expect(report.problems).toEqual([
      `the manifest is not in the transparency log: checkpoint: no valid signature by ${origin}`,
    ]);
  });

  it('fails when the proof comes from a forked log that did log it, signed with another key than the pinned one', async () => {
    const url = await frontEnd({ manifest: unlogged, log: fork });
    // Baseline: that log does hold the manifest (trusting its own key, the check passes).
    expect((await check(url, await verifierKeyOf(fork))).ok).toBe(true);
    const report = await check(url);
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(/^the manifest is not in the transparency log: checkpoint: no valid signature/);
    const run = await cli(url, '--manifest-key', key.publicKey, '--kt-key', pinned);
    expect(run.code).toBe(1);
  }, 60_000);
});
