// Block and sign-out in a real Chromium, through the named controls: ann blocks mal (his messages stop, the composer
// says why, Settings lists him) and unblocks him; "Sign out" keeps ann's history for the next sign-in; erasing needs
// its own confirmed choice; a session the relay revoked shows "Sign in again", which keeps everything.
// Screenshots (light and dark) in /tmp/shots-block; every screen here passes axe with no serious or critical issue.
import { mkdirSync } from 'node:fs';
import { AxeBuilder } from '@axe-core/playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestRelay, type TestRelay } from '../support/relay';
import {
  bubble,
  buildWeb,
  conversationLog,
  launch,
  removeBuild,
  signUpInBrowser,
  skipReason,
  watchedPage,
  type WatchedPage,
} from './harness';

const reason = skipReason();
if (reason) console.warn(reason);

const SHOTS = '/tmp/shots-block';
const stamp = Date.now().toString(36);
const ANN = `ann_${stamp}`;
const MAL = `mal_${stamp}`;
const CAT = `cat_${stamp}`;
const PASSWORD = 'a long enough password';

async function signUp(page: Page, url: string, name: string): Promise<void> {
  await signUpInBrowser(page, url, name, PASSWORD);
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

async function openChat(page: Page, name: string): Promise<void> {
  await page.getByRole('searchbox', { name: 'Find people' }).fill(name);
  await page.getByRole('button', { name: name.toLowerCase(), exact: true }).click();
  await conversationLog(page, name).waitFor({ timeout: 15_000 });
}

/** The conversation's button in the sidebar (its name starts with the peer's name). */
const conversationButton = (page: Page, name: string) =>
  page.getByRole('button', { name: new RegExp(`^${name.toLowerCase()}`) });

async function setTheme(page: Page, theme: 'Light' | 'Dark'): Promise<void> {
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  await page.getByRole('radio', { name: theme }).check();
}

/** Serious or critical axe violations on the page as it is now, as "rule: target" lines. */
async function axeProblems(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
}

async function unlock(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Unlock', exact: true }).waitFor({ timeout: 20_000 });
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Unlock', exact: true }).click();
  await page.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
}

describe.skipIf(reason !== null)('Block and sign-out in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let ann: WatchedPage;
  let mal: WatchedPage;
  let cat: WatchedPage;
  let dist: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    [ann, mal, cat] = await Promise.all([watchedPage(browser), watchedPage(browser), watchedPage(browser)]);
    // No colour transitions: screenshots and axe's contrast checks see the theme's final colours.
    for (const w of [ann, mal, cat]) await w.page.emulateMedia({ reducedMotion: 'reduce' });
    await Promise.all([
      signUp(ann.page, relay.url, ANN),
      signUp(mal.page, relay.url, MAL),
      signUp(cat.page, relay.url, CAT),
    ]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('blocks a person with "Block": their messages stop, and "Unblock" lets them through again', async () => {
    const a = ann.page;
    await openChat(mal.page, ANN);
    await say(mal.page, 'hello ann');
    await conversationButton(a, MAL).click({ timeout: 20_000 });
    await bubble(a, MAL, 'hello ann').waitFor({ timeout: 15_000 });

    await a.getByRole('button', { name: 'Block', exact: true }).click();
    await a.getByRole('button', { name: 'Unblock', exact: true }).waitFor();
    await a.getByText(`You blocked ${MAL.toLowerCase()}.`).waitFor();
    expect(await a.getByRole('textbox', { name: 'Message' }).isDisabled()).toBe(true);

    await say(mal.page, 'are you there?');
    await bubble(mal.page, ANN, 'are you there?').waitFor();
    // The fence: cat writes after mal; once cat's message is on ann's screen, mal's would have been too.
    await openChat(cat.page, ANN);
    await say(cat.page, 'fence from cat');
    await conversationButton(a, CAT).click({ timeout: 20_000 });
    await bubble(a, CAT, 'fence from cat').waitFor({ timeout: 15_000 });
    await conversationButton(a, MAL).click();
    await bubble(a, MAL, 'hello ann').waitFor();
    expect(await bubble(a, MAL, 'are you there?').count()).toBe(0);

    await a.screenshot({ path: `${SHOTS}/blocked-conversation-light.png` });
    expect(await axeProblems(a)).toEqual([]);
    await setTheme(a, 'Dark');
    await a.getByRole('group', { name: 'Blocked people' }).getByText(MAL.toLowerCase()).waitFor();
    await a.screenshot({ path: `${SHOTS}/settings-blocked-dark.png` });
    expect(await axeProblems(a)).toEqual([]);
    await conversationButton(a, MAL).click();
    await a.screenshot({ path: `${SHOTS}/blocked-conversation-dark.png` });
    expect(await axeProblems(a)).toEqual([]);
    await setTheme(a, 'Light');
    await a.screenshot({ path: `${SHOTS}/settings-blocked-light.png` });
    expect(await axeProblems(a)).toEqual([]);

    await conversationButton(a, MAL).click();
    await a.getByRole('button', { name: 'Unblock', exact: true }).click();
    await a.getByRole('button', { name: 'Block', exact: true }).waitFor();
    await say(mal.page, 'back again');
    await bubble(a, MAL, 'back again').waitFor({ timeout: 15_000 });
  });

  it('"Sign out" keeps the history: signing in again shows it', async () => {
    const a = ann.page;
    await a.getByRole('button', { name: 'Settings' }).click();
    await a.getByRole('button', { name: 'Sign out', exact: true }).click();
    await unlock(a);
    await conversationButton(a, MAL).click({ timeout: 20_000 });
    await bubble(a, MAL, 'hello ann').waitFor({ timeout: 15_000 });
    await bubble(a, MAL, 'back again').waitFor();
  });

  it('erasing the device is a separate choice that asks first', async () => {
    const a = ann.page;
    await a.getByRole('button', { name: 'Settings' }).click();
    await a.getByRole('button', { name: 'Sign out and erase this device', exact: true }).click();
    const dialog = a.getByRole('alertdialog', { name: 'Erase this device?' });
    await dialog.waitFor();
    await a.screenshot({ path: `${SHOTS}/erase-confirm-light.png` });
    expect(await axeProblems(a)).toEqual([]);
    await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    // Nothing was erased: still signed in, history there.
    await conversationButton(a, MAL).click();
    await bubble(a, MAL, 'hello ann').waitFor();

    // Cat erases for real: the next screen is sign-up / sign-in, not unlock.
    const c = cat.page;
    await setTheme(c, 'Dark');
    await c.getByRole('button', { name: 'Sign out and erase this device', exact: true }).click();
    await c.screenshot({ path: `${SHOTS}/erase-confirm-dark.png` });
    expect(await axeProblems(c)).toEqual([]);
    await c.getByRole('button', { name: 'Erase and sign out', exact: true }).click();
    await c.getByRole('button', { name: 'Create account', exact: true }).waitFor({ timeout: 20_000 });
    expect(await c.getByRole('button', { name: 'Unlock', exact: true }).count()).toBe(0);
  });

  it('after the relay revokes the session, "Sign in again" brings everything back', async () => {
    const a = ann.page;
    expect(await relay.dangerousTestOnlyRevokeSessions(ANN)).toBeGreaterThan(0);
    const notice = a.getByRole('alert').filter({ hasText: 'Your session on the relay ended' });
    await notice.waitFor({ timeout: 20_000 });
    await a.screenshot({ path: `${SHOTS}/session-ended-light.png` });
    expect(await axeProblems(a)).toEqual([]);
    await setTheme(a, 'Dark');
    await a.screenshot({ path: `${SHOTS}/session-ended-dark.png` });
    expect(await axeProblems(a)).toEqual([]);
    await setTheme(a, 'Light');
    await notice.getByRole('button', { name: 'Sign in again', exact: true }).click();
    await unlock(a);
    await conversationButton(a, MAL).click({ timeout: 20_000 });
    await bubble(a, MAL, 'hello ann').waitFor({ timeout: 15_000 });
    await bubble(a, MAL, 'back again').waitFor();
    // And the new session works: a new message arrives.
    await say(mal.page, 'after the new sign-in');
    await bubble(a, MAL, 'after the new sign-in').waitFor({ timeout: 15_000 });
    expect(ann.errors).toEqual([]);
  });
});
