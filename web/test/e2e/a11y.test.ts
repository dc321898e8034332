// The accessibility audit: every screen of the app passes axe (@axe-core/playwright) with no serious or critical
// violation, in the light and the dark theme — sign-up, sign-in, unlock, the chat list, a one-to-one conversation, a
// group conversation (and its members), the safety number and settings. Screenshots in /tmp/shots-block.
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
  relayOnlyAccount,
  removeBuild,
  skipReason,
  watchedPage,
  type WatchedPage,
} from './harness';

const reason = skipReason();
if (reason) console.warn(reason);

const SHOTS = '/tmp/shots-block';
const stamp = Date.now().toString(36);
const ANN = `ann_${stamp}`;
const BEN = `ben_${stamp}`;
const CAT = `cat_${stamp}`;
const GROUP = 'Book club';
const PASSWORD = 'a long enough password';

type Theme = 'light' | 'dark';

/** Serious or critical axe violations on the page as it is now, as "rule: target" lines. */
async function audit(page: Page, screen: string, theme: Theme): Promise<string[]> {
  await page.screenshot({ path: `${SHOTS}/a11y-${screen}-${theme}.png` });
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${screen} (${theme}) ${v.id}: ${n.target.join(' ')}`));
}

async function fillSignUp(page: Page, name: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Username' }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  const confirm = page.getByLabel('Confirm password', { exact: true });
  if ((await confirm.count()) > 0) await confirm.fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await page.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

async function setTheme(page: Page, theme: Theme): Promise<void> {
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  await page.getByRole('radio', { name: theme === 'light' ? 'Light' : 'Dark' }).check();
}

describe.skipIf(reason !== null)('accessibility of every screen (axe, light and dark)', () => {
  let relay: TestRelay;
  let browser: Browser;
  let ann: WatchedPage;
  let ben: WatchedPage;
  let dist: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    [ann, ben] = await Promise.all([watchedPage(browser), watchedPage(browser)]);
    // No colour transitions: screenshots and axe's contrast checks see the theme's final colours.
    for (const w of [ann, ben]) await w.page.emulateMedia({ reducedMotion: 'reduce' });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('sign-up and sign-in, in the light and the dark system theme', async () => {
    const problems: string[] = [];
    for (const theme of ['light', 'dark'] as const) {
      const w = await watchedPage(browser, theme);
      await w.page.emulateMedia({ reducedMotion: 'reduce' });
      await w.page.goto(relay.url);
      await w.page.getByRole('button', { name: 'Create account', exact: true }).waitFor({ timeout: 30_000 });
      problems.push(...(await audit(w.page, 'sign-up', theme)));
      await w.page.getByRole('button', { name: 'Use an existing account' }).click();
      await w.page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
      problems.push(...(await audit(w.page, 'sign-in', theme)));
      await w.context.close();
    }
    expect(problems).toEqual([]);
  });

  it('the chat list, a conversation, a group, the safety number and settings', async () => {
    await ann.page.goto(relay.url);
    await ben.page.goto(relay.url);
    await Promise.all([fillSignUp(ann.page, ANN), fillSignUp(ben.page, BEN)]);
    const a = ann.page;
    await a.getByRole('searchbox', { name: 'Find people' }).fill(BEN);
    await a.getByRole('button', { name: BEN.toLowerCase(), exact: true }).click();
    await say(a, 'Hello Ben, how are you?');
    await ben.page
      .getByRole('button', { name: new RegExp(`^${ANN.toLowerCase()}, 1 unread`) })
      .click({ timeout: 20_000 });
    await say(ben.page, 'Fine, thanks!');
    await bubble(a, BEN, 'Fine, thanks!').waitFor({ timeout: 15_000 });

    await a.getByRole('button', { name: 'New group' }).click();
    await a.getByRole('textbox', { name: 'Group name' }).fill(GROUP);
    await relayOnlyAccount(relay.url, CAT);
    for (const name of [BEN, CAT]) {
      await a.getByRole('searchbox', { name: 'Add people' }).fill(name);
      await a.getByRole('button', { name: name.toLowerCase(), exact: true }).click();
    }
    await a.getByRole('button', { name: 'Create group' }).click();
    await conversationLog(a, GROUP).waitFor({ timeout: 15_000 });
    await say(a, 'First book?');
    await ben.page.getByRole('button', { name: new RegExp(`^${GROUP} \\(group\\)`) }).click({ timeout: 20_000 });
    await say(ben.page, 'Dune');
    await bubble(a, GROUP, 'Dune').waitFor({ timeout: 15_000 });

    const problems: string[] = [];
    for (const theme of ['light', 'dark'] as const) {
      await setTheme(a, theme);
      problems.push(...(await audit(a, 'settings', theme)));
      await a.getByRole('button', { name: 'Close settings' }).click();
      await a.getByRole('heading', { name: 'Your messages are end-to-end encrypted' }).waitFor();
      problems.push(...(await audit(a, 'chat-list', theme)));
      await a.getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}`) }).click();
      await bubble(a, BEN, 'Fine, thanks!').waitFor();
      problems.push(...(await audit(a, 'conversation', theme)));
      await a.getByRole('button', { name: 'Verify safety number' }).click();
      await a.getByLabel('Safety number', { exact: true }).waitFor({ timeout: 15_000 });
      problems.push(...(await audit(a, 'safety-number', theme)));
      await a.getByRole('button', { name: new RegExp(`^${GROUP} \\(group\\)`) }).click();
      await bubble(a, GROUP, 'Dune').waitFor();
      problems.push(...(await audit(a, 'group', theme)));
      await a.getByRole('button', { name: 'Members' }).click();
      await a.getByRole('button', { name: 'Remove member' }).first().waitFor();
      problems.push(...(await audit(a, 'group-members', theme)));
    }
    expect(problems).toEqual([]);
  });

  it('the unlock screen', async () => {
    const a = ann.page;
    const problems: string[] = [];
    for (const theme of ['dark', 'light'] as const) {
      // The theme chosen in Settings is kept on this device, for the unlock screen too.
      await setTheme(a, theme);
      await a.reload();
      await a.getByRole('button', { name: 'Unlock', exact: true }).waitFor({ timeout: 20_000 });
      problems.push(...(await audit(a, 'unlock', theme)));
      await a.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await a.getByRole('button', { name: 'Unlock', exact: true }).click();
      await a.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
    }
    expect(problems).toEqual([]);
  });
});
