// A verifiable web client in Chromium (issue #16): the real relay serves a signed build; two people sign up and chat
// with no CSP violation, every script and stylesheet of the page carries Subresource Integrity matching the bytes the
// relay serves, and Settings → Client version shows the build hash that `npm run verify-client` prints. A relay that
// changes one byte of a script, or serves a script without integrity, gets it refused by the browser.
import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReleaseKey, signDist } from '../../../scripts/release';
import { bindingTagsOf, clientVersionOf } from '../../src/client/client-version';
import { startTestRelay, type TestRelay } from '../support/relay';
import {
  bubble,
  buildWeb,
  conversationLog,
  cspViolations,
  launch,
  proveCspRecorder,
  removeBuild,
  signUpInBrowser,
  skipReason,
  watchedPage,
  type WatchedPage,
} from './harness';

const reason = skipReason();
if (reason) console.warn(reason);

const stamp = Date.now().toString(36);
const ANN = `ann_${stamp}`;
const BEN = `ben_${stamp}`;
const PASSWORD = 'a long enough password';
const SHOTS = '/tmp/shots-vclient';

const sri = (bytes: Uint8Array) => `sha256-${createHash('sha256').update(bytes).digest('base64')}`;

/** Serious or critical axe violations on the page, as "rule: target" lines. */
async function seriousAxe(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
}

/** The page's script and stylesheet elements as the browser parsed them: tag, URL path and integrity. */
function boundElements(page: Page) {
  return page.evaluate(() =>
    [...document.querySelectorAll<HTMLScriptElement | HTMLLinkElement>('script, link')]
      .filter((el) => el instanceof HTMLScriptElement || ['stylesheet', 'modulepreload'].includes(el.rel))
      .map((el) => ({
        tag: el instanceof HTMLScriptElement ? 'script' : `link ${el.rel}`,
        path: new URL(el instanceof HTMLScriptElement ? el.src : el.href).pathname,
        integrity: el.getAttribute('integrity'),
      })),
  );
}

describe.skipIf(reason !== null)('a verifiable web client in Chromium', () => {
  const key = generateReleaseKey();
  let dist: string;
  let relay: TestRelay;
  let browser: Browser;
  let ann: WatchedPage;
  let ben: WatchedPage;

  beforeAll(async () => {
    dist = buildWeb();
    signDist(dist, key.privateKeyPem);
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    ann = await watchedPage(browser, 'light');
    ben = await watchedPage(browser, 'light');
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('two people sign up and chat with no CSP violation, every script and stylesheet bound by integrity to the bytes served', async () => {
    const response = await ann.page.goto(relay.url);
    const headers = response!.headers();
    expect(headers['integrity-policy']).toBe('blocked-destinations=(script)');
    const csp = headers['content-security-policy']!.split(';').map((d) => d.trim());
    for (const directive of [
      "script-src 'self' 'wasm-unsafe-eval'",
      "style-src 'self'",
      "object-src 'none'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
    ]) {
      expect(csp).toContain(directive);
    }

    await Promise.all([
      signUpInBrowser(ann.page, relay.url, ANN, PASSWORD),
      signUpInBrowser(ben.page, relay.url, BEN, PASSWORD),
    ]);
    const a = ann.page;
    await a.getByRole('searchbox', { name: 'Find people' }).fill(BEN);
    await a.getByRole('button', { name: BEN.toLowerCase(), exact: true }).click();
    await a.getByRole('textbox', { name: 'Message' }).fill('Hello Ben, is this the code we reviewed?');
    await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    const b = ben.page;
    await b.getByRole('button', { name: new RegExp(`^${ANN.toLowerCase()}, 1 unread`) }).click({ timeout: 30_000 });
    await bubble(b, ANN, 'is this the code we reviewed?').waitFor();
    await b.getByRole('textbox', { name: 'Message' }).fill('It is: same build hash.');
    await b.getByRole('textbox', { name: 'Message' }).press('Enter');
    await bubble(a, BEN, 'same build hash').waitFor({ timeout: 15_000 });
    await expect.poll(() => conversationLog(a, BEN).locator('.message').count()).toBe(2);

    // No violation while signing up and chatting; then prove the recorders would have seen one.
    expect(cspViolations(ann)).toEqual([]);
    expect(cspViolations(ben)).toEqual([]);
    expect([...ann.errors, ...ben.errors]).toEqual([]);
    // Every integrity policy the page comes with is one Chromium knows: it logs no error about any. (It logged one on
    // every load while the relay also sent a report-only policy for styles, a destination Chromium does not support.)
    expect([...ann.console, ...ben.console].filter((l) => /integrity-policy/i.test(l))).toEqual([]);
    await proveCspRecorder(ann);

    // Every script and stylesheet element carries integrity, equal to the SHA-256 of what the relay serves.
    const elements = await boundElements(a);
    const signedTags = bindingTagsOf(readFileSync(join(dist, 'index.html'), 'utf8'));
    expect(elements.map((e) => e.path).sort()).toEqual(signedTags.map((t) => `/${t.path}`).sort());
    // The entry script, its stylesheet, and the two lazily imported chunks; nothing added at run time.
    expect(elements.map((e) => e.tag).sort()).toEqual([
      'link modulepreload',
      'link modulepreload',
      'link stylesheet',
      'script',
    ]);
    for (const e of elements) {
      const served = new Uint8Array(await (await fetch(new URL(e.path, relay.url))).arrayBuffer());
      expect(e.integrity, `${e.tag} ${e.path}`).toBe(sri(served));
    }
    // Every script the page fetched is one of them, except the key-derivation worker (a Worker takes no integrity:
    // kdf.ts fetches it with integrity before starting it, see release-log.test.ts).
    const bound = new Set(elements.map((e) => e.path));
    const fetched = await a.evaluate(() =>
      performance.getEntriesByType('resource').map((r) => new URL(r.name).pathname),
    );
    const scripts = fetched.filter((p) => p.endsWith('.js'));
    expect(scripts.length).toBeGreaterThanOrEqual(3);
    expect(scripts.filter((p) => !bound.has(p) && !/^\/assets\/kdf\.worker-[\w-]+\.js$/.test(p))).toEqual([]);
  }, 180_000);

  it('Settings → Client version shows the build hash of the loaded code, matching the signed manifest, with a copy button', async () => {
    const a = ann.page;
    const violationsBefore = cspViolations(ann).length; // the recorder's proof in the test above
    await ann.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: relay.url });
    await a.getByRole('button', { name: 'Settings' }).click();
    const section = a.getByRole('region', { name: 'Client version' });
    await section.getByRole('heading', { name: 'Client version' }).scrollIntoViewIfNeeded();
    const hash = section.locator('.client-version-hash');
    await hash.waitFor({ timeout: 15_000 });

    // The same value verify-client computes from index.html (web/test/build/verify-client.test.ts runs the CLI).
    const html = readFileSync(join(dist, 'index.html'), 'utf8');
    const expected = await clientVersionOf(bindingTagsOf(html).map((t) => ({ path: t.path, integrity: t.integrity! })));
    expect(await hash.getAttribute('data-hash')).toBe(expected);
    expect((await hash.textContent())!.replace(/\s/g, '')).toBe(expected);
    await section.getByText('Matches the loaded code.').waitFor();

    await section.getByRole('button', { name: 'Copy build hash' }).click();
    await section.getByRole('status').filter({ hasText: 'Copied' }).waitFor();
    expect(await a.evaluate(() => navigator.clipboard.readText())).toBe(expected);

    await section.screenshot({ path: `${SHOTS}/client-version-light.png` });
    await a.screenshot({ path: `${SHOTS}/settings-light.png` });
    expect(await seriousAxe(a)).toEqual([]);
    await a.getByRole('radio', { name: 'Dark' }).check();
    expect(await a.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await section.scrollIntoViewIfNeeded();
    await section.screenshot({ path: `${SHOTS}/client-version-dark.png` });
    await a.screenshot({ path: `${SHOTS}/settings-dark.png` });
    expect(await seriousAxe(a)).toEqual([]);
    expect(cspViolations(ann).slice(violationsBefore)).toEqual([]);
  }, 120_000);

  describe('a relay serving altered code', () => {
    let altered: string;
    let hostile: TestRelay;
    const assets = () => readdirSync(join(altered, 'assets'));
    const pristine = new Map<string, Buffer>();

    /** Puts back every file `alter` changed. */
    function restore(): void {
      for (const [p, bytes] of pristine) writeFileSync(join(altered, p), bytes);
      pristine.clear();
    }

    /** Changes one file of what the hostile relay serves; everything else stays as signed. */
    function alter(path: string, change: (bytes: Buffer) => Buffer): void {
      restore();
      const file = join(altered, path);
      pristine.set(path, readFileSync(file));
      writeFileSync(file, change(readFileSync(file)));
    }
    /** One byte of a string in the script changed: still valid JavaScript that would run without SRI. */
    const changeOneByte = (from: string, to: string) => (bytes: Buffer) => {
      const text = bytes.toString('utf8');
      expect(text).toContain(from);
      const changed = Buffer.from(text.replace(from, to), 'utf8');
      expect(changed.length).toBe(bytes.length);
      expect(changed.filter((byte, i) => byte !== bytes[i]).length).toBe(1);
      return changed;
    };

    /** Opens the hostile relay's page in a fresh browser context (nothing cached) and waits until it settles. */
    async function visit(): Promise<WatchedPage> {
      const w = await watchedPage(browser, 'light');
      await w.page.goto(hostile.url);
      return w;
    }

    beforeAll(async () => {
      altered = `${dist}-altered`;
      cpSync(dist, altered, { recursive: true });
      hostile = await startTestRelay({ WEB_DIST: altered });
    });

    afterAll(async () => {
      await hostile?.close();
      removeBuild(altered);
    });

    it('serves the signed build unchanged at first: the app starts (baseline)', async () => {
      const w = await visit();
      await w.page.getByRole('button', { name: 'Create account', exact: true }).waitFor({ timeout: 30_000 });
      await w.context.close();
    });

    it('one changed byte in the entry script: the browser refuses to run it (Subresource Integrity)', async () => {
      alter(
        `assets/${assets().find((f) => /^index-.+\.js$/.test(f))!}`,
        changeOneByte('There is no password reset.', 'There is no password reset!'),
      );
      const w = await visit();
      await expect
        .poll(() => w.console.some((l) => /integrity/i.test(l) && /index-.+\.js/.test(l)), { timeout: 15_000 })
        .toBe(true);
      expect(await w.page.locator('#root').innerHTML()).toBe('');
      await w.context.close();
    });

    it('one changed byte in a lazily imported script: it is refused and the app does not start', async () => {
      alter(
        `assets/${assets().find((f) => /^boot-.+\.js$/.test(f))!}`,
        changeOneByte('Key derivation failed', 'Key derivation failes'),
      );
      const w = await visit();
      await w.page.getByRole('alert').filter({ hasText: 'WeConnect could not start' }).waitFor({ timeout: 30_000 });
      expect(w.console.some((l) => /integrity/i.test(l) && /boot-.+\.js/.test(l))).toBe(true);
      expect(await w.page.getByRole('button', { name: 'Create account' }).count()).toBe(0);
      await w.context.close();
    });

    it('scripts served without integrity (the preloads dropped): Integrity-Policy refuses them', async () => {
      alter('index.html', (b) => Buffer.from(b.toString().replace(/\s*<link rel="modulepreload"[^>]*>/g, '')));
      expect(readFileSync(join(altered, 'index.html'), 'utf8')).not.toContain('modulepreload');
      const w = await visit();
      await w.page.getByRole('alert').filter({ hasText: 'WeConnect could not start' }).waitFor({ timeout: 30_000 });
      expect(await w.page.getByRole('button', { name: 'Create account' }).count()).toBe(0);
      await w.context.close();
    });

    it('a release manifest that lists other code than the page loads: Settings → Client version says it does not match', async () => {
      // The manifest is signed over a build whose boot chunk differs; the relay serves the original chunk.
      const boot = `assets/${assets().find((f) => /^boot-.+\.js$/.test(f))!}`;
      alter(boot, changeOneByte('Key derivation failed', 'Key derivation failes'));
      signDist(altered, key.privateKeyPem);
      restore(); // the boot chunk as built again; the manifest stays as signed over the changed one
      expect(readFileSync(join(altered, boot))).toEqual(readFileSync(join(dist, boot)));
      const w = await visit();
      await signUpInBrowser(w.page, hostile.url, `eve_${stamp}`, PASSWORD);
      await w.page.getByRole('button', { name: 'Settings' }).click();
      const section = w.page.getByRole('region', { name: 'Client version' });
      await section.getByText('Does not match the loaded code').waitFor({ timeout: 15_000 });
      expect(await section.locator('.client-version-manifest').textContent()).toContain(`(${boot})`);
      await section.scrollIntoViewIfNeeded();
      await section.screenshot({ path: `${SHOTS}/client-version-mismatch-light.png` });
      expect(await seriousAxe(w.page)).toEqual([]);
      expect(cspViolations(w)).toEqual([]);
      await w.context.close();
    }, 120_000);
  });
});
