// Browser-test harness: Debian's Chromium through playwright-core, the web app built into a folder per suite, the
// real relay serving it, and pages that record console output, page errors, dialogs and CSP violations.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync } from 'node:zlib';
import {
  chromium,
  type Browser,
  type BrowserContext,
  type ConsoleMessage,
  type Locator,
  type Page,
} from 'playwright-core';
import { vi } from 'vitest';
import { loadCrypto } from '../../src/client/crypto-loader';
import { OwnKeys } from '../../src/client/own-keys';
import { postAccount } from '../support/accounts';

export const CHROMIUM = '/usr/bin/chromium';
export const WEB_DIR = fileURLToPath(new URL('../..', import.meta.url));

/** Why browser tests cannot run here, or null when they can. */
export function skipReason(): string | null {
  return existsSync(CHROMIUM) ? null : `browser tests skipped: ${CHROMIUM} not found (apt-get install chromium)`;
}

/**
 * Builds the production web app with the project's Vite config into a fresh folder of its own and returns it.
 * Suites run in parallel: each serves its own build, so no build empties a folder another suite's relay serves.
 */
export function buildWeb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-web-dist-'));
  // NODE_ENV is 'test' under Vitest; the served app must be the production build (React's dev build differs).
  const result = spawnSync('npx', ['vite', 'build', '--logLevel', 'error', '--outDir', dir, '--emptyOutDir'], {
    cwd: WEB_DIR,
    encoding: 'utf8',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  if (result.status !== 0) throw new Error(`vite build failed:\n${result.stdout}\n${result.stderr}`);
  return dir;
}

export function removeBuild(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page that records console output, page errors, dialogs (an XSS payload would open one) and CSP violations. */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  console: string[];
  errors: string[];
  dialogs: string[];
  /** `securitypolicyviolation` events seen by any page of the context: "directive blocked-uri". */
  cspEvents: string[];
}

const CSP_BINDING = '__weconnectTestCspViolation';

export async function watchedPage(browser: Browser, colorScheme: 'light' | 'dark' = 'light'): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1180, height: 760 }, colorScheme });
  const watched: Omit<WatchedPage, 'page'> = { context, console: [], errors: [], dialogs: [], cspEvents: [] };
  // The DevTools protocol installs both outside the page's CSP; they survive reloads.
  await context.exposeBinding(CSP_BINDING, (_source, report: string) => void watched.cspEvents.push(report));
  await context.addInitScript((binding) => {
    window.addEventListener(
      'securitypolicyviolation',
      (e) =>
        (window as unknown as Record<string, (r: string) => void>)[binding]?.(
          `${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`,
        ),
      true,
    );
  }, CSP_BINDING);
  const page = await context.newPage();
  page.on('console', (m: ConsoleMessage) => watched.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => watched.errors.push(e.message));
  page.on('dialog', (d) => {
    watched.dialogs.push(d.message());
    void d.dismiss();
  });
  return { ...watched, page };
}

function cspConsoleLines(w: WatchedPage): string[] {
  return w.console.filter((line) =>
    /Content Security Policy|Refused to (load|execute|apply|evaluate|compile)/i.test(line),
  );
}

/** Every CSP violation recorded so far: console reports and `securitypolicyviolation` events. */
export function cspViolations(w: WatchedPage): string[] {
  return [...cspConsoleLines(w), ...w.cspEvents.map((e) => `event: ${e}`)];
}

/**
 * Proves that this page's CSP violations reach both recorders: inserts an inline script (which the relay's CSP must
 * block) and waits until the console and the event listener each report one more violation. Throws if the script
 * runs or a recorder stays silent — then "no violation" from the app would prove nothing.
 */
export async function proveCspRecorder(w: WatchedPage): Promise<void> {
  const before = { console: cspConsoleLines(w).length, events: w.cspEvents.length };
  const ran = await w.page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.__cspCanaryRan = true';
    document.head.append(script);
    script.remove();
    return (window as unknown as { __cspCanaryRan?: boolean }).__cspCanaryRan === true;
  });
  if (ran) throw new Error('an inline script ran: this page has no CSP that blocks inline script');
  await vi.waitFor(
    () => {
      if (cspConsoleLines(w).length <= before.console) throw new Error('the console reported no CSP violation');
      if (w.cspEvents.length <= before.events) throw new Error('no securitypolicyviolation event was reported');
    },
    { timeout: 15_000, interval: 50 },
  );
}

/** The message log of the conversation with `peer` (a username or a group name), and no other. */
export function conversationLog(page: Page, peer: string) {
  return page.getByRole('log', { name: `Messages with ${peer}`, exact: true });
}

/** Message texts containing `text` in the conversation with `peer`. */
export function bubble(page: Page, peer: string, text: string) {
  return conversationLog(page, peer).locator('.message .text').filter({ hasText: text });
}

/**
 * What a browser shows, for a failure message: the end of its conversation with `peer`, its notices, and the last
 * lines of its first page's console. `page` is the page to read (it may be a later page of `w`'s context).
 */
export async function shownIn(w: WatchedPage, page: Page, peer: string): Promise<string> {
  const text = (locator: Locator): Promise<string> => locator.innerText({ timeout: 1_000 }).catch(() => '(none)');
  return JSON.stringify({
    conversation: (await text(conversationLog(page, peer))).slice(-2_000),
    notices: await text(page.locator('.notices')),
    console: w.console.slice(-20),
  });
}

/** An account made straight through the relay's API (no browser): someone to find and open a conversation with. */
export async function relayOnlyAccount(relayUrl: string, username: string): Promise<void> {
  const c = await loadCrypto();
  const keys = c.createAccountKeys({ oneTimePrekeyCount: 5 });
  const res = await postAccount(relayUrl, username, keys, OwnKeys.initialKemPrekeys(c, keys.identity));
  if (res.status !== 201) throw new Error(`creating ${username} failed: ${res.status} ${await res.text()}`);
}

/** Signs up through the first screen as a person does (the password twice), and waits for the chat list. */
export async function signUpInBrowser(page: Page, url: string, name: string, password: string): Promise<void> {
  await page.goto(url);
  await page.getByRole('textbox', { name: 'Username' }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Confirm password').fill(password);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await page.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
}

/** A width×height RGB PNG in three vertical bands (red, green, blue); at 480x320 the centred square is mostly green. */
export function makePng(width = 480, height = 320): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      const third = Math.floor((x * 3) / width);
      raw.set(third === 0 ? [220, 40, 40] : third === 1 ? [40, 180, 90] : [40, 80, 220], row + 1 + x * 3);
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
