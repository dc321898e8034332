// Profiles in a real Chromium, two people: alice sets a display name and a picture in Settings and saves; bob sees
// her name and picture in his sidebar and the conversation header; alice renames herself and bob sees the change.
// Screenshots of the profile settings and of bob's view, light and dark, in /tmp/shots-profile; axe on each.
import { AxeBuilder } from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
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

const SHOTS = '/tmp/shots-profile';
const stamp = Date.now().toString(36);
const ALICE = `alice_${stamp}`;
const BOB = `bob_${stamp}`;
const PASSWORD = 'a long enough password';

async function signUp(page: Page, url: string, name: string): Promise<void> {
  await signUpInBrowser(page, url, name, PASSWORD);
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

async function setTheme(page: Page, theme: 'Light' | 'Dark'): Promise<void> {
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  await page.getByRole('radio', { name: theme }).check();
}

/**
 * Axe violations of impact serious or critical, as "rule: target" lines, within `parts` (CSS selectors) or the page.
 * Bob's audit covers what profiles add to his screen (the sidebar, the header's name and avatar); the rest of the
 * conversation view has findings of its own that predate profiles (see the report).
 */
async function seriousViolations(page: Page, parts: string[] = []): Promise<string[]> {
  let builder = new AxeBuilder({ page });
  for (const part of parts) builder = builder.include(part);
  const result = await builder.analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
}

describe.skipIf(reason !== null)('profiles in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let alice: WatchedPage;
  let bob: WatchedPage;
  let dist: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    [alice, bob] = await Promise.all([watchedPage(browser), watchedPage(browser)]);
    await Promise.all([signUp(alice.page, relay.url, ALICE), signUp(bob.page, relay.url, BOB)]);
    // They talk first: bob is alice's contact when she saves her profile.
    await alice.page.getByRole('searchbox', { name: 'Find people' }).fill(BOB);
    await alice.page.getByRole('button', { name: BOB, exact: true }).click();
    await conversationLog(alice.page, BOB).waitFor({ timeout: 15_000 });
    await say(alice.page, 'hello bob');
    await bob.page.getByRole('button', { name: new RegExp(`^${ALICE}`) }).click();
    await conversationLog(bob.page, ALICE).locator('.message').filter({ hasText: 'hello bob' }).waitFor();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('alice saves a display name and a picture; bob sees both in his sidebar and the conversation header', async () => {
    const a = alice.page;
    await a.getByRole('button', { name: 'Settings', exact: true }).click();
    await a.getByRole('textbox', { name: 'Display name' }).fill('Alice Liddell');
    await a
      .getByLabel('Profile picture', { exact: true })
      .setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: makePng() });
    // The preview shows the cropped square before saving.
    const preview = a.getByRole('img', { name: 'Preview of your profile picture' }).locator('img');
    await preview.waitFor({ timeout: 10_000 });
    expect(await preview.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight])).toEqual([
      256, 256,
    ]);
    await a.getByRole('button', { name: 'Save profile' }).click();
    await a.getByRole('status').filter({ hasText: 'Profile saved' }).waitFor({ timeout: 15_000 });

    const b = bob.page;
    const sidebarEntry = b.getByRole('navigation', { name: 'Conversations' }).getByRole('button', {
      name: new RegExp(`^${ALICE} \\(Alice Liddell\\)`),
    });
    await sidebarEntry.waitFor({ timeout: 15_000 });
    await expect.poll(() => sidebarEntry.textContent()).toContain('Alice Liddell');
    const sidebarImg = sidebarEntry.locator('.avatar img');
    await sidebarImg.waitFor({ timeout: 10_000 });
    const header = b.locator('.conv-head');
    await expect.poll(() => header.locator('h2').textContent()).toContain('Alice Liddell');
    const headerImg = header.locator('.avatar img');
    await headerImg.waitFor();
    // A decoded 256 px square, shown from a blob: URL.
    expect(await headerImg.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight])).toEqual([
      256, 256,
    ]);
    expect(await headerImg.getAttribute('src')).toMatch(/^blob:/);
    // Her own sidebar shows it too.
    await a.locator('.sidebar-head .avatar img').waitFor();
    expect(cspViolations(alice)).toEqual([]);
    expect(cspViolations(bob)).toEqual([]);
  });

  it('alice changes her name and bob sees the change', async () => {
    const a = alice.page;
    await a.getByRole('textbox', { name: 'Display name' }).fill('Alice in Wonderland');
    await a.getByRole('button', { name: 'Save profile' }).click();
    await a.getByRole('status').filter({ hasText: 'Profile saved' }).waitFor({ timeout: 15_000 });
    await expect
      .poll(() => bob.page.locator('.conv-head h2').textContent(), { timeout: 15_000 })
      .toContain('Alice in Wonderland');
    await bob.page.locator('.conv-head .avatar img').waitFor();
  });

  it('looks right in light and dark themes and passes axe (screenshots in /tmp/shots-profile)', async () => {
    const a = alice.page;
    const b = bob.page;
    for (const theme of ['Light', 'Dark'] as const) {
      const lower = theme.toLowerCase();
      await setTheme(a, theme);
      await a.getByRole('button', { name: 'Save profile' }).waitFor();
      await a.screenshot({ path: `${SHOTS}/settings-profile-${lower}.png` });
      expect(await seriousViolations(a)).toEqual([]);
      await setTheme(b, theme);
      await b.getByRole('button', { name: new RegExp(`^${ALICE}`) }).click();
      await conversationLog(b, ALICE).waitFor();
      await b.screenshot({ path: `${SHOTS}/bob-sees-alice-${lower}.png` });
      expect(await seriousViolations(b, ['.sidebar', '.conv-head h2', '.conv-head .avatar'])).toEqual([]);
    }
  });
});
