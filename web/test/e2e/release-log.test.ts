// The page checks its own release, and its key-derivation worker, in Chromium (issue #16). A signed build served by
// the real relay: Settings → Client version shows "This release is in the relay's public log (entry N)" with the
// entry the relay logged. A lying front end (here Playwright's network layer) that serves a validly signed manifest
// the relay never logged makes the section fail loudly, and the background check after sign-up raises a notice. A
// worker script with one changed byte is refused before it gets the password: sign-up fails with a clear error.
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReleaseKey, MANIFEST_PATH, signDist } from '../../../scripts/release';
import { KDF_WORKER_REFUSED } from '../../src/client/kdf';
import { startTestRelay, type TestRelay } from '../support/relay';
import {
  buildWeb,
  cspViolations,
  launch,
  removeBuild,
  signUpInBrowser,
  skipReason,
  watchedPage,
  type WatchedPage,
} from './harness';

const reason = skipReason();
if (reason) console.warn(reason);

const stamp = Date.now().toString(36);
const PASSWORD = 'a long enough password';
const SHOTS = '/tmp/shots-vclient2';

async function seriousAxe(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
}

/** Opens Settings and returns its Client version section, scrolled into view. */
async function clientVersion(page: Page) {
  await page.getByRole('button', { name: 'Settings' }).click();
  const section = page.getByRole('region', { name: 'Client version' });
  await section.getByRole('heading', { name: 'Client version' }).scrollIntoViewIfNeeded();
  return section;
}

/** Screenshots of the section in light and dark theme (switched through Settings → Theme), each audited by axe. */
async function shootBothThemes(page: Page, name: string): Promise<void> {
  const section = page.getByRole('region', { name: 'Client version' });
  for (const theme of ['Light', 'Dark'] as const) {
    await page.getByRole('radio', { name: theme }).check();
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset.theme)).toBe(theme.toLowerCase());
    await section.scrollIntoViewIfNeeded();
    await section.screenshot({ path: `${SHOTS}/${name}-${theme.toLowerCase()}.png` });
    expect(await seriousAxe(page), `${name} ${theme}`).toEqual([]);
  }
}

describe.skipIf(reason !== null)('the page checking its release in Chromium', () => {
  const key = generateReleaseKey();
  let dist: string;
  let relay: TestRelay;
  let browser: Browser;
  let logged: Buffer;
  /** The same build signed again: a valid signature, other bytes, never logged by the relay. */
  let unlogged: Buffer;
  const pages: WatchedPage[] = [];

  beforeAll(async () => {
    dist = buildWeb();
    signDist(dist, key.privateKeyPem, new Date('2026-12-01T00:00:00Z'));
    const other = mkdtempSync(join(tmpdir(), 'weconnect-web-dist-resigned-'));
    cpSync(dist, other, { recursive: true });
    signDist(other, key.privateKeyPem, new Date('2026-12-02T00:00:00Z'));
    logged = readFileSync(join(dist, MANIFEST_PATH));
    unlogged = readFileSync(join(other, MANIFEST_PATH));
    removeBuild(other);
    expect(logged.equals(unlogged)).toBe(false);
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
  }, 180_000);

  afterAll(async () => {
    for (const w of pages) await w.context.close().catch(() => undefined);
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  async function page(): Promise<WatchedPage> {
    const w = await watchedPage(browser, 'light');
    pages.push(w);
    return w;
  }

  it('Settings → Client version shows the log entry of the manifest the relay serves', async () => {
    const w = await page();
    await signUpInBrowser(w.page, relay.url, `ria_${stamp}`, PASSWORD);
    const hash = createHash('sha256').update(logged).digest('hex');
    const answer = (await (await fetch(`${relay.url}/api/kt/releases/${hash}`)).json()) as { leaf: { index: number } };
    const section = await clientVersion(w.page);
    await section
      .getByText(`This release is in the relay's public log (entry ${answer.leaf.index}).`)
      .waitFor({ timeout: 20_000 });
    expect(await section.getByRole('alert').count()).toBe(0);
    expect(await w.page.getByRole('alert').count()).toBe(0); // no notice from the background check either
    await shootBothThemes(w.page, 'release-logged');
    expect(cspViolations(w)).toEqual([]);
  }, 120_000);

  it('a front end serving a signed manifest the relay never logged: the section fails loudly, and a notice says so', async () => {
    const w = await page();
    await w.context.route(`**/${MANIFEST_PATH}`, (route) =>
      route.fulfill({ status: 200, contentType: 'application/json', body: unlogged }),
    );
    await signUpInBrowser(w.page, relay.url, `rib_${stamp}`, PASSWORD);
    // The background check after sign-up.
    await w.page
      .locator('.notices')
      .getByRole('alert')
      .filter({ hasText: 'the release manifest this relay serves is not in its public log' })
      .waitFor({ timeout: 20_000 });
    const section = await clientVersion(w.page);
    const failure = section.getByRole('alert');
    await failure.waitFor({ timeout: 20_000 });
    expect(await failure.textContent()).toBe(
      "Not in the relay's public log. Key transparency check failed: the release manifest this relay serves is not in " +
        "its public log. Do not trust this relay's release manifest.",
    );
    expect(await section.getByText(/This release is in the relay's public log/).count()).toBe(0);
    await shootBothThemes(w.page, 'release-not-logged');
    expect(cspViolations(w)).toEqual([]);
  }, 120_000);

  it('a key-derivation worker with one changed byte is refused: sign-up fails with a clear error, not a hang', async () => {
    const worker = readdirSync(join(dist, 'assets')).find((f) => /^kdf\.worker-.+\.js$/.test(f))!;
    const bytes = readFileSync(join(dist, 'assets', worker));
    const text = bytes.toString('utf8');
    expect(text).toContain('No secure random number generator found');
    const changed = Buffer.from(
      text.replace('No secure random number generator found', 'No secure random number generator founD'),
    );
    expect(changed.length).toBe(bytes.length);
    expect(changed.filter((b, i) => b !== bytes[i]).length).toBe(1);

    const w = await page();
    const workerRequests: string[] = [];
    w.page.on('request', (r) => {
      if (r.url().includes('/assets/kdf.worker-')) workerRequests.push(`${r.resourceType()} ${r.method()}`);
    });
    await w.context.route(`**/assets/${worker}`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/javascript', body: changed }),
    );
    await w.page.goto(relay.url);
    await w.page.getByRole('textbox', { name: 'Username' }).fill(`ric_${stamp}`);
    await w.page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await w.page.getByLabel('Confirm password').fill(PASSWORD);
    await w.page.getByRole('button', { name: 'Create account', exact: true }).click();
    await w.page.getByText(KDF_WORKER_REFUSED).waitFor({ timeout: 30_000 });
    expect(w.console.some((l) => /integrity/i.test(l) && l.includes(worker))).toBe(true);
    // Only the checked fetch (and the reachability probe that tells a refusal from an outage) went out: no worker
    // was started with the altered script, and nobody is signed in.
    expect(workerRequests).toEqual(['fetch GET', 'fetch HEAD']);
    expect(await w.page.getByRole('searchbox', { name: 'Find people' }).count()).toBe(0);
    await w.page.screenshot({ path: `${SHOTS}/kdf-worker-refused-light.png` });
  }, 120_000);
});
