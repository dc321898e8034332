// `npm run verify-client` remembers the log between runs (issue #16): the first run against a relay pins its log key
// and keeps the checkpoint it verified (--state <file>); the next run proves the relay's log consistent with it. A
// relay whose log grew honestly passes; one that rewrites its history (another tree signed with the same key, as its
// operator can) or truncates it between two runs fails with exit code 1 and the reason named, and the kept state is
// not replaced. Each run is the CLI as a user runs it; the relays are real, behind a front end that can switch them.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReleaseKey, signDist } from '../../../scripts/release';
import { defaultStatePath, readState } from '../../../scripts/verify-client-state';
import { bareAccount } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const key = generateReleaseKey();
/** Every relay here signs its log with the key derived from this secret: one operator, several histories. */
const JWT_SECRET = 'the-one-operator-secret-for-all-these-relays-0123456789';
const scratch = mkdtempSync(join(tmpdir(), 'weconnect-vcstate-'));
const relays: TestRelay[] = [];
const servers: Server[] = [];
let dist: string;

/** A tiny signed build: a page binding one script by integrity. */
function signedBuild(): string {
  const dir = join(scratch, 'dist');
  const script = Buffer.from('console.log("WeConnect");\n');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'assets', 'app.js'), script);
  const sri = `sha256-${createHash('sha256').update(script).digest('base64')}`;
  writeFileSync(
    join(dir, 'index.html'),
    `<!doctype html><html><head><script type="module" src="/assets/app.js" integrity="${sri}"></script></head></html>\n`,
  );
  signDist(dir, key.privateKeyPem, new Date('2026-12-01T00:00:00Z'));
  return dir;
}

/** A relay of the operator serving the build, with `accounts` accounts logged after the release. */
async function relayWith(accounts: number): Promise<TestRelay> {
  const relay = await startTestRelay({ WEB_DIST: dist, JWT_SECRET });
  relays.push(relay);
  expect((await fetch(`${relay.url}/.well-known/weconnect/manifest.json`)).status).toBe(200); // logged first
  for (let i = 0; i < accounts; i += 1) await bareAccount(relay.url);
  return relay;
}

/** The relay's address as users know it: a front end that forwards every GET to whichever relay is behind it. */
async function frontEnd(): Promise<{ url: string; behind: (relay: TestRelay) => void }> {
  let upstream: TestRelay | null = null;
  const server = createServer((req, res) => {
    void (async () => {
      const answer = await fetch(new URL(req.url ?? '/', upstream!.url), { redirect: 'manual' });
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
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    behind: (relay) => (upstream = relay),
  };
}

/** Runs the CLI as a user does, with its own config directory; resolves to its exit code and output. */
function cli(args: string[], configHome: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, XDG_CONFIG_HOME: configHome };
    execFile('npx', ['tsx', 'scripts/verify-client.ts', ...args], { cwd: REPO, env }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sizeOf = (note: string) => Number(note.split('\n')[1]);

beforeAll(() => {
  dist = signedBuild();
});

afterAll(async () => {
  for (const s of servers) s.close();
  for (const r of relays) await r.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('npm run verify-client with state kept between runs', () => {
  it('keeps the pinned keys and the checkpoint per relay origin, and passes a log that grew honestly', async () => {
    const relay = await relayWith(1);
    const front = await frontEnd();
    front.behind(relay);
    const home = join(scratch, 'honest');
    const state = defaultStatePath({ XDG_CONFIG_HOME: home });
    expect(state).toBe(join(home, 'weconnect', 'verify-client.json'));

    const first = await cli([front.url, '--manifest-key', key.publicKey], home);
    expect(first.stdout).toContain(`NOTE: first run for ${front.url}: its log key and a checkpoint of 2 entries`);
    expect(first.code).toBe(0);
    const kept = readState(state).relays[front.url]!;
    expect(kept.manifestKey).toBe(key.publicKey);
    expect(sizeOf(kept.checkpoint)).toBe(2);
    expect(statSync(state).mode & 0o777).toBe(0o600);

    // Three more entries; the second run needs no key on the command line (both were pinned) and proves the log
    // of 5 entries extends the kept one of 2.
    for (let i = 0; i < 3; i += 1) await bareAccount(relay.url);
    const second = await cli([front.url], home);
    expect(second.stdout).toContain(`PASS the log extends the checkpoint of 2 entries an earlier run kept (${state})`);
    expect(second.stdout).not.toContain('WARNING');
    expect(second.code).toBe(0);
    expect(sizeOf(readState(state).relays[front.url]!.checkpoint)).toBe(5);
  }, 120_000);

  it('fails, exit 1, when the relay rewrites its history between two runs, and keeps the old checkpoint', async () => {
    const front = await frontEnd();
    const home = join(scratch, 'rewritten');
    const state = defaultStatePath({ XDG_CONFIG_HOME: home });
    const original = await relayWith(2);
    // The same operator key, another history of the same length: other accounts after the release.
    const rewritten = await relayWith(2);
    const rootOf = async (r: TestRelay) =>
      ((await (await fetch(`${r.url}/api/kt/checkpoint`)).json()) as { checkpoint: string }).checkpoint.split('\n')[2];
    expect(await rootOf(rewritten)).not.toBe(await rootOf(original));
    front.behind(original);
    expect((await cli([front.url, '--manifest-key', key.publicKey], home)).code).toBe(0);
    const before = readFileSync(state, 'utf8');

    // Baseline: each relay alone passes a first run (its own log is consistent with itself).
    expect((await cli([front.url, '--manifest-key', key.publicKey, '--state', 'none'], home)).code).toBe(0);

    front.behind(rewritten);
    const sameSize = await cli([front.url], home);
    expect(sameSize.stdout).toContain(
      "FAIL the log is not the one an earlier run saw: the log's history was rewritten: its tree of 3 entries does not extend the 3 an earlier run saw",
    );
    expect(sameSize.code).toBe(1);
    // Grown past the kept size: the consistency proof the relay gives does not reach the kept root.
    await bareAccount(rewritten.url);
    const grown = await cli([front.url], home);
    expect(grown.stdout).toContain(
      "FAIL the log is not the one an earlier run saw: the log's history was rewritten: its tree of 4 entries does not extend the 3 an earlier run saw",
    );
    expect(grown.code).toBe(1);
    expect(readFileSync(state, 'utf8')).toBe(before);
  }, 120_000);

  it('fails, exit 1, when the relay truncates its history between two runs', async () => {
    const front = await frontEnd();
    const home = join(scratch, 'truncated');
    front.behind(await relayWith(3));
    expect((await cli([front.url, '--manifest-key', key.publicKey], home)).code).toBe(0);
    front.behind(await relayWith(0));
    const run = await cli([front.url], home);
    expect(run.stdout).toContain(
      "FAIL the log is not the one an earlier run saw: the log's history was truncated: an earlier run saw 4 entries, the relay now signs 1",
    );
    expect(run.code).toBe(1);
  }, 120_000);

  it('fails when a key given on the command line is not the one pinned, and keeps nothing with --state none', async () => {
    const relay = await relayWith(0);
    const other = await startTestRelay({ WEB_DIST: dist });
    relays.push(other);
    const front = await frontEnd();
    front.behind(relay);
    const home = join(scratch, 'pinned');
    expect((await cli([front.url, '--manifest-key', key.publicKey], home)).code).toBe(0);
    const otherKey = ((await (await fetch(`${other.url}/api/kt/checkpoint`)).json()) as { verifierKey: string })
      .verifierKey;
    const run = await cli([front.url, '--kt-key', otherKey], home);
    expect(run.stdout).toContain(`FAIL the --kt-key given is not the log key pinned for ${front.url}`);
    expect(run.code).toBe(1);

    const none = join(scratch, 'none');
    expect((await cli([front.url, '--manifest-key', key.publicKey, '--state', 'none'], none)).code).toBe(0);
    expect(existsSync(defaultStatePath({ XDG_CONFIG_HOME: none }))).toBe(false);
  }, 120_000);
});
