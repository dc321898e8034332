// Attachments in a real Chromium, two people on the real relay: alice attaches an image and a file with "Attach
// file" (upload progress in the composer), bob sees the image inline and a file card, opens the image full size
// (Escape closes), saves the file (identical bytes, sanitised name); paste and drag-and-drop add files too.
// Screenshots light and dark in /tmp/shots-attach; axe on the attachment parts of both screens.
import { AxeBuilder } from '@axe-core/playwright';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestRelay, type TestRelay } from '../support/relay';
import {
  makePng,
  buildWeb,
  conversationLog,
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

const SHOTS = '/tmp/shots-attach';
const stamp = Date.now().toString(36);
const ALICE = `alice_${stamp}`;
const BOB = `bob_${stamp}`;
const PASSWORD = 'a long enough password';

async function setTheme(page: Page, theme: 'Light' | 'Dark'): Promise<void> {
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  await page.getByRole('radio', { name: theme }).check();
}

async function seriousViolations(page: Page, parts: string[]): Promise<string[]> {
  let builder = new AxeBuilder({ page });
  for (const part of parts) builder = builder.include(part);
  const result = await builder.analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
}

const fileCard = (page: Page, peer: string, name: string) =>
  conversationLog(page, peer).locator('.file-card').filter({ hasText: name }).last();

describe.skipIf(reason !== null)('attachments in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let alice: WatchedPage;
  let bob: WatchedPage;
  let dist: string;
  const png = makePng();
  const notes = randomBytes(24 * 1024 * 1024);

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    [alice, bob] = await Promise.all([watchedPage(browser), watchedPage(browser)]);
    // Bob's pages record which object URLs were made and revoked (to check that images release theirs).
    await bob.context.addInitScript(() => {
      const w = window as unknown as { __revoked: string[] };
      w.__revoked = [];
      const revoke = URL.revokeObjectURL.bind(URL);
      URL.revokeObjectURL = (url: string) => {
        w.__revoked.push(url);
        revoke(url);
      };
    });
    await Promise.all([
      signUpInBrowser(alice.page, relay.url, ALICE, PASSWORD),
      signUpInBrowser(bob.page, relay.url, BOB, PASSWORD),
    ]);
    await alice.page.getByRole('searchbox', { name: 'Find people' }).fill(BOB);
    await alice.page.getByRole('button', { name: BOB, exact: true }).click();
    await conversationLog(alice.page, BOB).waitFor({ timeout: 15_000 });
    await alice.page.getByRole('textbox', { name: 'Message' }).fill('files coming');
    await alice.page.getByRole('textbox', { name: 'Message' }).press('Enter');
    await bob.page.getByRole('button', { name: new RegExp(`^${ALICE}`) }).click();
    await conversationLog(bob.page, ALICE).locator('.message').filter({ hasText: 'files coming' }).waitFor();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('alice attaches an image and a file with "Attach file"; the upload shows progress; bob sees both', async () => {
    const a = alice.page;
    const [chooser] = await Promise.all([
      a.waitForEvent('filechooser'),
      a.getByRole('button', { name: 'Attach file', exact: true }).click(),
    ]);
    expect(chooser.isMultiple()).toBe(true);
    await chooser.setFiles([
      { name: 'bands.png', mimeType: 'image/png', buffer: png },
      { name: 'notes\u202Etxt.exe', mimeType: 'application/octet-stream', buffer: notes },
    ]);
    const pending = a.getByRole('list', { name: 'Files to send' });
    await pending.getByText('bands.png').waitFor();
    await pending.getByText('notestxt.exe').waitFor();
    await a.screenshot({ path: `${SHOTS}/composer-pending-light.png` });
    await a.getByRole('button', { name: 'Send', exact: true }).click();
    // The 24 MiB file is sealed twice and uploaded: its progress bar moves while alice waits.
    const bar = a.getByRole('progressbar', { name: 'Uploading notestxt.exe' });
    await bar.waitFor({ timeout: 15_000 });
    const seen = Number(await bar.getAttribute('aria-valuenow'));
    expect(seen).toBeGreaterThanOrEqual(0);
    expect(seen).toBeLessThanOrEqual(100);
    await pending.waitFor({ state: 'detached', timeout: 60_000 });

    const b = bob.page;
    const open = conversationLog(b, ALICE).getByRole('button', { name: 'Open image bands.png' });
    await open.waitFor({ timeout: 30_000 });
    await expect.poll(() => open.isEnabled(), { timeout: 30_000 }).toBe(true);
    const img = open.locator('img');
    expect(await img.evaluate((el: HTMLImageElement) => [el.naturalWidth, el.naturalHeight])).toEqual([480, 320]);
    expect(await img.getAttribute('src')).toMatch(/^blob:/);
    const card = fileCard(b, ALICE, 'notestxt.exe');
    await card.waitFor();
    await card.getByText('25 MB').waitFor();
    // The conversation list's last line names the attachment.
    await expect
      .poll(() => b.locator('.sidebar').getByText('📎 bands.png +1').count(), { timeout: 10_000 })
      .toBeGreaterThan(0);
  });

  it('bob opens the image full size in a dialog, and Escape closes it', async () => {
    const b = bob.page;
    await conversationLog(b, ALICE).getByRole('button', { name: 'Open image bands.png' }).click();
    const dialog = b.getByRole('dialog', { name: 'bands.png' });
    await dialog.waitFor();
    expect(await dialog.locator('img').evaluate((el: HTMLImageElement) => el.naturalWidth)).toBe(480);
    await b.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
  });

  it('bob saves the file: the download has its sanitised name and identical bytes', async () => {
    const b = bob.page;
    const card = fileCard(b, ALICE, 'notestxt.exe');
    const [download] = await Promise.all([
      b.waitForEvent('download', { timeout: 60_000 }),
      card.getByRole('button', { name: 'Save', exact: true }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('notestxt.exe');
    const path = await download.path();
    expect(readFileSync(path).equals(notes)).toBe(true);
  });

  it('adds files by pasting into the composer and by dropping them on the conversation', async () => {
    const a = alice.page;
    await a.getByRole('textbox', { name: 'Message' }).evaluate(
      (el, bytes) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], 'pasted.png', { type: 'image/png' }));
        el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      },
      [...makePng(64, 48)],
    );
    const pending = a.getByRole('list', { name: 'Files to send' });
    await pending.getByText('pasted.png').waitFor();
    const dataTransfer = await a.evaluateHandle(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped text'], 'dropped.txt', { type: 'text/plain' }));
      dt.items.add(
        new File(['<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'], 'evil.svg', {
          type: 'image/svg+xml',
        }),
      );
      return dt;
    });
    const view = a.getByRole('region', { name: `Conversation with ${BOB}` });
    await view.dispatchEvent('dragover', { dataTransfer });
    await view.dispatchEvent('drop', { dataTransfer });
    await pending.getByText('dropped.txt').waitFor();
    await a.getByRole('textbox', { name: 'Message' }).fill('pasted and dropped');
    await a.getByRole('button', { name: 'Send', exact: true }).click();
    const b = bob.page;
    await conversationLog(b, ALICE).getByRole('button', { name: 'Open image pasted.png' }).waitFor({ timeout: 30_000 });
    await fileCard(b, ALICE, 'dropped.txt').waitFor();
    // An SVG is never shown inline (it can carry script): it is a file card like any other file.
    await fileCard(b, ALICE, 'evil.svg').waitFor();
    expect(await conversationLog(b, ALICE).getByRole('button', { name: 'Open image evil.svg' }).count()).toBe(0);
    expect(await conversationLog(b, ALICE).locator('img[alt="evil.svg"]').count()).toBe(0);
    await conversationLog(b, ALICE).locator('.message .text').filter({ hasText: 'pasted and dropped' }).waitFor();
  });

  it('shows the thumbnail from the message while the image downloads, then the image', async () => {
    const b = bob.page;
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    // Bob's blob downloads wait until released: what shows meanwhile comes from the message alone.
    await b.route('**/api/blobs/*', async (route) => {
      await gate;
      await route.continue();
    });
    await alice.page
      .locator('input[type=file]')
      .setInputFiles({ name: 'thumb.png', mimeType: 'image/png', buffer: makePng(900, 600) });
    await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
    const open = conversationLog(b, ALICE).getByRole('button', { name: 'Open image thumb.png' });
    await open.locator('img.is-thumb').waitFor({ timeout: 30_000 });
    expect(await open.isDisabled()).toBe(true);
    expect(await open.locator('img').evaluate((el: HTMLImageElement) => [el.naturalWidth, el.naturalHeight])).toEqual([
      128, 85,
    ]);
    release();
    await expect.poll(() => open.isEnabled(), { timeout: 30_000 }).toBe(true);
    expect(await open.locator('img').evaluate((el: HTMLImageElement) => el.naturalWidth)).toBe(900);
    await b.unroute('**/api/blobs/*');
  });

  it('revokes the object URLs of the images when the conversation closes', async () => {
    const b = bob.page;
    const log = conversationLog(b, ALICE);
    await log.getByRole('button', { name: 'Open image bands.png' }).waitFor();
    const shown = await log
      .locator('img[src^="blob:"]')
      .evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).src));
    expect(shown.length).toBeGreaterThan(0);
    await b.getByRole('button', { name: 'Settings', exact: true }).click();
    await log.waitFor({ state: 'detached' });
    const revoked = await b.evaluate(() => (window as unknown as { __revoked: string[] }).__revoked);
    expect(shown.filter((url) => !revoked.includes(url))).toEqual([]);
    await b.getByRole('button', { name: new RegExp(`^${ALICE}`) }).click();
    await log.waitFor();
  });

  it('a failed upload shows an error and keeps the file for Retry, which then sends it', async () => {
    const a = alice.page;
    // The relay is unreachable for uploads (every data request fails at the network level).
    await a.route('**/api/blobs/*/data*', (route) => route.abort('connectionrefused'));
    await a
      .locator('input[type=file]')
      .setInputFiles({ name: 'retry-me.txt', mimeType: 'text/plain', buffer: Buffer.from('second try') });
    await a.getByRole('button', { name: 'Send', exact: true }).click();
    const error = a.getByRole('alert').filter({ hasText: 'Not sent' });
    await error.waitFor({ timeout: 30_000 });
    await a.getByRole('list', { name: 'Files to send' }).getByText('retry-me.txt').waitFor();
    await a.unroute('**/api/blobs/*/data*');
    await error.getByRole('button', { name: 'Retry', exact: true }).click();
    await a.getByRole('list', { name: 'Files to send' }).waitFor({ state: 'detached', timeout: 30_000 });
    await fileCard(bob.page, ALICE, 'retry-me.txt').waitFor({ timeout: 30_000 });
  });

  it('looks right in light and dark themes and passes axe (screenshots in /tmp/shots-attach)', async () => {
    const a = alice.page;
    const b = bob.page;
    for (const theme of ['Light', 'Dark'] as const) {
      const lower = theme.toLowerCase();
      for (const p of [a, b]) {
        await setTheme(p, theme);
        await p
          .getByRole('button', { name: p === a ? BOB : new RegExp(`^${ALICE}`) })
          .first()
          .click();
      }
      await a.getByRole('button', { name: 'Attach file', exact: true }).waitFor();
      await a
        .locator('input[type=file]')
        .setInputFiles({ name: 'draft-report.pdf', mimeType: 'application/pdf', buffer: Buffer.from('pdf') });
      await a.getByRole('list', { name: 'Files to send' }).waitFor();
      await a.screenshot({ path: `${SHOTS}/alice-composer-${lower}.png` });
      expect(await seriousViolations(a, ['.composer', '.message-attachments'])).toEqual([]);
      await a.getByRole('button', { name: 'Remove draft-report.pdf' }).click();
      await conversationLog(b, ALICE).getByRole('button', { name: 'Open image bands.png' }).waitFor();
      await b.screenshot({ path: `${SHOTS}/bob-attachments-${lower}.png` });
      expect(await seriousViolations(b, ['.message-attachments'])).toEqual([]);
      await conversationLog(b, ALICE).getByRole('button', { name: 'Open image bands.png' }).click();
      await b.getByRole('dialog', { name: 'bands.png' }).waitFor();
      await b.screenshot({ path: `${SHOTS}/bob-image-dialog-${lower}.png` });
      expect(await seriousViolations(b, ['.image-dialog'])).toEqual([]);
      await b.keyboard.press('Escape');
    }
    for (const w of [alice, bob]) {
      expect(w.errors).toEqual([]);
      expect(cspViolations(w)).toEqual([]);
    }
  });
});
