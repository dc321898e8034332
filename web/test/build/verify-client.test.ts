// `npm run verify-client -- <relay url> [--manifest-key <key>]` (issue #16) against the real relay serving a signed
// build: every served file passes, with the client version Settings shows; a changed byte in any served file, a
// script tag stripped of its integrity, a manifest signed by another key, or a page served without the
// Integrity-Policy header each fail, named, with exit code 1.
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateReleaseKey, openManifest, signDist } from '../../../scripts/release';
import { readReleaseKey, verifyClient } from '../../../scripts/verify-client';
import { bindingTagsOf, clientVersionOf, type IntegrityEntry } from '../../src/client/client-version';
import { startTestRelay, type TestRelay } from '../support/relay';
import { buildWeb, removeBuild } from '../e2e/harness';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const key = generateReleaseKey();
let dist: string;
let relay: TestRelay;
let keyFile: string;
const originals = new Map<string, Buffer>();

/** Changes a built file the relay serves (restored after each test). */
function tamper(path: string, change: (bytes: Buffer) => Buffer): void {
  const file = join(dist, path);
  if (!originals.has(path)) originals.set(path, readFileSync(file));
  writeFileSync(file, change(Buffer.from(originals.get(path)!)));
}

function flipOneByte(bytes: Buffer): Buffer {
  const at = Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0x01;
  return bytes;
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

const lazyChunk = () => `assets/${readdirSync(join(dist, 'assets')).find((f) => /^boot-.+\.js$/.test(f))!}`;

beforeAll(async () => {
  dist = buildWeb();
  signDist(dist, key.privateKeyPem);
  keyFile = join(dist, '..', `${dist.split('/').pop()!}.pub`);
  writeFileSync(keyFile, `${key.publicKey}\n`);
  relay = await startTestRelay({ WEB_DIST: dist });
}, 180_000);

afterEach(() => {
  for (const [path, bytes] of originals) writeFileSync(join(dist, path), bytes);
  originals.clear();
});

afterAll(async () => {
  for (const d of configHomes) rmSync(d, { recursive: true, force: true });
  await relay?.close();
  removeBuild(dist);
  removeBuild(keyFile);
});

describe('npm run verify-client', () => {
  it('passes every file a good relay serves, checks the signature with a key file, and prints the client version Settings shows', async () => {
    const ktKey = ((await (await fetch(`${relay.url}/api/kt/checkpoint`)).json()) as { verifierKey: string })
      .verifierKey;
    const run = await cli(relay.url, '--manifest-key', keyFile, '--kt-key', ktKey);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const html = readFileSync(join(dist, 'index.html'), 'utf8');
    const entries: IntegrityEntry[] = bindingTagsOf(html).map((t) => ({ path: t.path, integrity: t.integrity ?? '' }));
    expect(entries.length).toBeGreaterThanOrEqual(4); // entry script, stylesheet, two lazy chunks
    expect(run.stdout).toContain(`client version (Settings → Client version): ${await clientVersionOf(entries)}`);
    const served = JSON.parse(readFileSync(join(dist, '.well-known/weconnect/manifest.json'), 'utf8')) as unknown;
    const signed = Object.keys(openManifest(served, key.publicKey).files);
    expect(signed).toContain('index.html');
    for (const path of signed)
      expect(run.stdout).toMatch(new RegExp(`^PASS ${path.replace(/[.]/g, '\\.')}: sha256 [0-9a-f]{64}$`, 'm'));
    expect(run.stdout).not.toMatch(/^FAIL/m);
    expect(run.stdout).not.toContain('WARNING');
    expect(run.stdout).toContain("PASS the manifest is in the relay's transparency log");
    expect(run.stdout).toContain(`OK: ${relay.url} serves exactly the signed build`);
  }, 60_000);

  it('fails, naming the file, when one byte of a lazily loaded script is changed on the relay', async () => {
    const chunk = lazyChunk();
    expect((await verifyClient(relay.url, key.publicKey)).ok).toBe(true); // baseline
    tamper(chunk, flipOneByte);
    const report = await verifyClient(relay.url, key.publicKey);
    expect(report.ok).toBe(false);
    expect(report.files.filter((f) => !f.ok)).toEqual([
      { path: chunk, ok: false, detail: 'served bytes differ from the signed manifest' },
      { path: chunk, ok: false, detail: 'its integrity attribute does not match the bytes served' },
    ]);
    const run = await cli(relay.url, '--manifest-key', key.publicKey);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`FAIL ${chunk}: served bytes differ from the signed manifest`);
    expect(run.stdout).toContain('FAILED: 2 problem(s)');
  }, 60_000);

  it('covers the key-derivation worker: the manifest lists it, the chunk that fetches it holds its hash, a changed byte fails', async () => {
    const worker = `assets/${readdirSync(join(dist, 'assets')).find((f) => /^kdf\.worker-.+\.js$/.test(f))!}`;
    const workerSri = `sha256-${createHash('sha256')
      .update(readFileSync(join(dist, worker)))
      .digest('base64')}`;
    // The worker takes no integrity of its own: the chunk that fetches it carries it, and that chunk is bound by
    // the page's integrity set (so the build hash Settings shows covers the worker too).
    const holders = readdirSync(join(dist, 'assets')).filter((f) =>
      readFileSync(join(dist, 'assets', f), 'utf8').includes(workerSri),
    );
    expect(holders.map((f) => `assets/${f}`)).toEqual([lazyChunk()]);
    const served = JSON.parse(readFileSync(join(dist, '.well-known/weconnect/manifest.json'), 'utf8')) as unknown;
    expect(Object.keys(openManifest(served, key.publicKey).files)).toContain(worker);
    expect((await verifyClient(relay.url, key.publicKey)).ok).toBe(true); // baseline
    tamper(worker, flipOneByte);
    const report = await verifyClient(relay.url, key.publicKey);
    expect(report.files.filter((f) => !f.ok)).toEqual([
      { path: worker, ok: false, detail: 'served bytes differ from the signed manifest' },
    ]);
  }, 60_000);

  it('fails when the page drops the integrity of a script, even if the script itself is unchanged', async () => {
    tamper('index.html', (b) => Buffer.from(b.toString().replace(/(<script[^>]*?) integrity="[^"]*"/, '$1')));
    const report = await verifyClient(relay.url, key.publicKey);
    const entry = bindingTagsOf(originals.get('index.html')!.toString())[0]!.path;
    expect(report.files.filter((f) => !f.ok)).toEqual([
      { path: 'index.html (as served at /)', ok: false, detail: 'served page differs from the signed index.html' },
      { path: entry, ok: false, detail: 'the page loads it without an integrity attribute' },
      { path: 'index.html', ok: false, detail: 'served bytes differ from the signed manifest' },
    ]);
  });

  it('fails when the page loads a script the signed manifest does not list', async () => {
    tamper('index.html', (b) =>
      Buffer.from(b.toString().replace('</head>', '<script type="module" src="/favicon.svg"></script></head>')),
    );
    const report = await verifyClient(relay.url, key.publicKey);
    expect(report.files).toContainEqual({
      path: 'favicon.svg',
      ok: false,
      detail: 'the page loads it without an integrity attribute',
    });
    expect(report.ok).toBe(false);
  });

  it('refuses a manifest signed by another release key', async () => {
    const report = await verifyClient(relay.url, generateReleaseKey().publicKey);
    expect(report).toMatchObject({
      ok: false,
      problems: ['the manifest signature does not verify with the release key'],
    });
  });

  it('asks the transparency-log hook about the exact manifest served, and fails when it is not in the log', async () => {
    const asked: string[] = [];
    const served = new Uint8Array(readFileSync(join(dist, '.well-known/weconnect/manifest.json')));
    const inLog = await verifyClient(relay.url, key.publicKey, async (entry) => {
      expect(entry.manifestBytes).toEqual(served);
      asked.push(entry.manifestHash);
      return { included: true };
    });
    expect(inLog).toMatchObject({ ok: true, logChecked: true, problems: [] });
    expect(asked).toEqual([createHash('sha256').update(served).digest('hex')]);
    const notInLog = await verifyClient(relay.url, key.publicKey, async () => ({
      included: false,
      reason: 'no proof',
    }));
    expect(notInLog).toMatchObject({
      ok: false,
      problems: ['the manifest is not in the transparency log: no proof'],
    });
  });

  it('takes the release key as base64url, as a file holding it, or as a PEM public key', () => {
    const pem = createPublicKey(createPrivateKey(key.privateKeyPem)).export({ format: 'pem', type: 'spki' }).toString();
    expect(readReleaseKey(key.publicKey)).toBe(key.publicKey);
    expect(readReleaseKey(keyFile)).toBe(key.publicKey);
    expect(readReleaseKey(pem)).toBe(key.publicKey);
  });

  it('without --manifest-key still compares every file, and warns that the signature was not checked', async () => {
    const run = await cli(relay.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('WARNING: no --manifest-key given: the manifest signature was NOT checked');
  }, 60_000);
});

describe('verify-client against a relay that drops the Integrity-Policy header', () => {
  it('fails even though every byte matches: scripts without integrity would run there', async () => {
    // A hostile front: passes the real relay's bytes through unchanged, minus the header.
    const front = createServer((req, res) => {
      void fetch(new URL(req.url ?? '/', relay.url)).then(async (up) => {
        const headers = Object.fromEntries(
          [...up.headers].filter(([name]) => !/^integrity-policy|^content-encoding|^content-length/.test(name)),
        );
        res.writeHead(up.status, headers).end(Buffer.from(await up.arrayBuffer()));
      });
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const url = `http://localhost:${(front.address() as AddressInfo).port}`;
    try {
      expect((await verifyClient(relay.url, key.publicKey)).problems).toEqual([]); // baseline: the real relay
      const report = await verifyClient(url, key.publicKey);
      expect(report.files.every((f) => f.ok)).toBe(true);
      expect(report.problems).toEqual([
        'the page is served without Integrity-Policy for scripts: scripts without integrity would run',
      ]);
      expect(report.ok).toBe(false);
    } finally {
      await new Promise((resolve) => front.close(resolve));
    }
  });
});
