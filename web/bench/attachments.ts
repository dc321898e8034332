// Attachment throughput in Chromium against a local relay (issue #15): alice sends a 100 MiB file through the UI
// ("Attach file", Send: sealed twice — hash pass and upload pass — and uploaded in 8 MiB requests), bob saves it
// (download, SHA-256 check, decrypt, unpad, hand to the browser's download). Prints MB/s for both directions.
//
//   npx tsx --conditions=source web/bench/attachments.ts [MiB]      (results: web/bench/ATTACHMENTS.md;
//   TRACE=1 also prints the upload progress bar twice a second)
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { startTestRelay } from '../test/support/relay';

const MIB = 1024 * 1024;
const size = Number(process.argv[2] ?? 100) * MIB;
const WEB_DIR = fileURLToPath(new URL('..', import.meta.url));
const stamp = Date.now().toString(36);
const PASSWORD = 'a long enough password';

function build(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-bench-dist-'));
  const r = spawnSync('npx', ['vite', 'build', '--logLevel', 'error', '--outDir', dir, '--emptyOutDir'], {
    cwd: WEB_DIR,
    encoding: 'utf8',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  if (r.status !== 0) throw new Error(`vite build failed: ${r.stderr}`);
  return dir;
}

async function signUp(page: Page, url: string, name: string): Promise<void> {
  await page.goto(url);
  await page.getByRole('textbox', { name: 'Username' }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await page.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 60_000 });
}

const dist = build();
const relay = await startTestRelay({ WEB_DIST: dist });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync'],
});
const work = mkdtempSync(join(tmpdir(), 'weconnect-bench-file-'));
try {
  const [a, b] = await Promise.all([browser.newPage(), browser.newPage()]);
  const alice = `alice_${stamp}`;
  const bob = `bob_${stamp}`;
  await Promise.all([signUp(a, relay.url, alice), signUp(b, relay.url, bob)]);
  await a.getByRole('searchbox', { name: 'Find people' }).fill(bob);
  await a.getByRole('button', { name: bob, exact: true }).click();
  await a.getByRole('textbox', { name: 'Message' }).fill('hello');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  await b.getByRole('button', { name: new RegExp(`^${alice}`) }).click();

  const file = randomBytes(size);
  const path = join(work, 'big.bin');
  writeFileSync(path, file);
  const digest = createHash('sha256').update(file).digest('hex');
  await a.locator('input[type=file]').setInputFiles(path);
  await a.getByRole('list', { name: 'Files to send' }).waitFor();

  const t0 = performance.now();
  await a.getByRole('button', { name: 'Send', exact: true }).click();
  if (process.env['TRACE']) {
    const bar = a.getByRole('progressbar').first();
    for (let i = 0; i < 200; i++) {
      const v = await bar.getAttribute('aria-valuenow', { timeout: 1000 }).catch(() => null);
      if (v === null) break;
      console.log(((performance.now() - t0) / 1000).toFixed(1), v);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  await a.getByRole('list', { name: 'Files to send' }).waitFor({ state: 'detached', timeout: 900_000 });
  const up = (performance.now() - t0) / 1000;

  const card = b.locator('.file-card').filter({ hasText: 'big.bin' });
  await card.waitFor({ timeout: 60_000 });
  const t1 = performance.now();
  const [download] = await Promise.all([
    b.waitForEvent('download', { timeout: 900_000 }),
    card.getByRole('button', { name: 'Save', exact: true }).click(),
  ]);
  const down = (performance.now() - t1) / 1000;
  const saved = readFileSync(await download.path());
  if (createHash('sha256').update(saved).digest('hex') !== digest) throw new Error('the saved file differs');

  const mb = size / 1e6;
  console.log(`| file | encrypt + upload | download + decrypt |`);
  console.log(`| --- | --- | --- |`);
  console.log(
    `| ${size / MIB} MiB | ${up.toFixed(1)} s, ${(mb / up).toFixed(1)} MB/s | ${down.toFixed(1)} s, ${(mb / down).toFixed(1)} MB/s |`,
  );
  console.log(`chromium ${browser.version()}, node ${process.version}`);
} finally {
  await browser.close();
  await relay.close();
  rmSync(dist, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
