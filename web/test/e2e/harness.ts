// Browser-test harness: Debian's Chromium through playwright-core, the web app built once, the real relay serving it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const WEB_DIR = fileURLToPath(new URL('../..', import.meta.url));
export const WEB_DIST = fileURLToPath(new URL('../../dist', import.meta.url));

/** Why browser tests cannot run here, or null when they can. */
export function skipReason(): string | null {
  return existsSync(CHROMIUM) ? null : `browser tests skipped: ${CHROMIUM} not found (apt-get install chromium)`;
}

/** Builds web/dist with the project's Vite config (the same build the relay serves in production). */
export function buildWeb(): void {
  // NODE_ENV is 'test' under Vitest; the served app must be the production build (React's dev build differs).
  const result = spawnSync('npx', ['vite', 'build', '--logLevel', 'error'], {
    cwd: WEB_DIR,
    encoding: 'utf8',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  if (result.status !== 0) throw new Error(`vite build failed:\n${result.stdout}\n${result.stderr}`);
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

/** A page that records console output, page errors and dialogs (an XSS payload would open one). */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  console: string[];
  errors: string[];
  dialogs: string[];
}

export async function watchedPage(browser: Browser, colorScheme: 'light' | 'dark' = 'light'): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1180, height: 760 }, colorScheme });
  const page = await context.newPage();
  const watched: WatchedPage = { page, context, console: [], errors: [], dialogs: [] };
  page.on('console', (m: ConsoleMessage) => watched.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => watched.errors.push(e.message));
  page.on('dialog', (d) => {
    watched.dialogs.push(d.message());
    void d.dismiss();
  });
  return watched;
}

/** Console lines that report a Content-Security-Policy violation. */
export function cspViolations(w: WatchedPage): string[] {
  return w.console.filter((line) =>
    /Content Security Policy|Refused to (load|execute|apply|evaluate|compile)/i.test(line),
  );
}
