// Part 2 in a real Chromium: three people form a group and talk; safety numbers agree on both sides; a verified
// contact's key change shows a banner and blocks sending until accepted; a second browser signs in to an existing
// account (identity restored from the encrypted backup) and sees new messages arrive. Screenshots in /tmp.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { bareAccount, http } from '../support/engine';
import { dangerousTestOnlyReplaceIdentity, startTestRelay, type TestRelay } from '../support/relay';
import {
  bubble,
  buildWeb,
  conversationLog,
  cspViolations,
  launch,
  proveCspRecorder,
  removeBuild,
  shownIn,
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
const CAT = `cat_${stamp}`;
const PASSWORD = 'a long enough password';
const GROUP = 'Trip to the coast 🌊';

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

async function setTheme(page: Page, theme: 'Light' | 'Dark', back: RegExp): Promise<void> {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByRole('radio', { name: theme }).check();
  await page.getByRole('button', { name: back }).first().click();
}

describe.skipIf(reason !== null)('WeConnect part 2 in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let ann: WatchedPage;
  let ben: WatchedPage;
  let cat: WatchedPage;

  let dist: string;

  beforeAll(async () => {
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    [ann, ben, cat] = await Promise.all([watchedPage(browser), watchedPage(browser), watchedPage(browser)]);
    await Promise.all([
      signUp(ann.page, relay.url, ANN),
      signUp(ben.page, relay.url, BEN),
      signUp(cat.page, relay.url, CAT),
    ]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('three people form a group and talk', async () => {
    const a = ann.page;
    await a.getByRole('button', { name: 'New group' }).click();
    await a.getByRole('textbox', { name: 'Group name' }).fill(GROUP);
    for (const name of [BEN, CAT]) {
      await a.getByRole('searchbox', { name: 'Add people' }).fill(name);
      await a.getByRole('button', { name: name.toLowerCase(), exact: true }).click();
    }
    await a.getByRole('button', { name: 'Create group' }).click();
    await conversationLog(a, GROUP).waitFor({ timeout: 15_000 });
    await say(a, 'Who brings the tent?');

    for (const w of [ben, cat]) {
      await w.page.getByRole('button', { name: /^Trip to the coast 🌊 \(group\)/ }).click({ timeout: 20_000 });
      await bubble(w.page, GROUP, 'Who brings the tent?').waitFor({ timeout: 15_000 });
    }
    await say(ben.page, 'I have one!');
    await say(cat.page, 'I bring snacks 🍪');
    for (const w of [ann, ben, cat]) {
      await bubble(w.page, GROUP, 'I have one!').waitFor({ timeout: 15_000 });
      await bubble(w.page, GROUP, 'I bring snacks 🍪').waitFor({ timeout: 15_000 });
    }
    // Sender names show on others' messages in a group.
    await expect
      .poll(() => conversationLog(a, GROUP).locator('.message.theirs .sender').allTextContents(), { timeout: 15_000 })
      .toContain(BEN.toLowerCase());
    await cat.page.getByRole('textbox', { name: 'Message' }).pressSequentially('typing');
    await a
      .getByRole('status')
      .filter({ hasText: `${CAT.toLowerCase()} is typing…` })
      .waitFor({ timeout: 10_000 });
    await cat.page.getByRole('textbox', { name: 'Message' }).fill('');
    await a.screenshot({ path: '/tmp/weconnect-group-light.png' });
    await a.getByRole('button', { name: 'Members' }).click();
    await a
      .getByRole('listitem')
      .filter({ hasText: CAT.toLowerCase() })
      .getByRole('button', { name: 'Remove member', exact: true })
      .waitFor();
    await a.screenshot({ path: '/tmp/weconnect-group-members-light.png' });
    await a.getByRole('button', { name: 'Back to the conversation' }).click();
    await setTheme(a, 'Dark', /^Trip to the coast/);
    await conversationLog(a, GROUP).waitFor();
    await a.screenshot({ path: '/tmp/weconnect-group-dark.png' });
    await setTheme(a, 'Light', /^Trip to the coast/);
  });

  it('shows the same safety number on both sides, with a QR code, and marks the contact verified', async () => {
    const a = ann.page;
    const b = ben.page;
    await openChat(a, BEN);
    await say(a, 'Let us compare safety numbers');
    await b.getByRole('button', { name: new RegExp(`^${ANN.toLowerCase()}`) }).click({ timeout: 15_000 });
    await bubble(b, ANN, 'compare safety numbers').waitFor({ timeout: 15_000 });

    const digits: string[] = [];
    for (const p of [a, b]) {
      await p.getByRole('button', { name: 'Verify safety number' }).click();
      const number = p.getByLabel('Safety number', { exact: true });
      await number.waitFor({ timeout: 15_000 });
      digits.push((await number.getAttribute('data-digits')) ?? '');
      await p.getByRole('img', { name: /QR code of the safety number/ }).waitFor();
    }
    expect(digits[0]).toMatch(/^\d{60}$/);
    expect(digits[1]).toBe(digits[0]);
    expect((await a.getByLabel('Safety number', { exact: true }).textContent())?.replace(/\D/g, '')).toBe(digits[0]);
    await a.screenshot({ path: '/tmp/weconnect-safety-number-light.png' });
    await a.getByRole('button', { name: 'Mark as verified' }).click();
    await a.getByText(`You verified ${BEN.toLowerCase()}`).waitFor();
    await setTheme(a, 'Dark', new RegExp(`^${BEN.toLowerCase()}`));
    await a.getByRole('button', { name: 'Verify safety number' }).click();
    await a.getByLabel('Safety number', { exact: true }).waitFor();
    await a.screenshot({ path: '/tmp/weconnect-safety-number-dark.png' });
    await a.getByRole('button', { name: 'Back to the conversation' }).click();
    await a.getByRole('img', { name: 'Verified' }).waitFor();
    await setTheme(a, 'Light', new RegExp(`^${BEN.toLowerCase()}`));
    await b.getByRole('button', { name: 'Back to the conversation' }).click();
  });

  it('a second browser signs in to an existing account and sees new messages arrive', async () => {
    const cat2 = await watchedPage(browser, 'light');
    const p = cat2.page;
    await p.goto(relay.url);
    await p.getByRole('button', { name: 'Use an existing account' }).click();
    await p.getByRole('textbox', { name: 'Username' }).fill(CAT);
    await p.getByLabel('Password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Sign in', exact: true }).click();
    await p.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });

    // The new device introduces itself by writing; from then on ann's messages go to both of cat's browsers.
    await openChat(p, ANN);
    await say(p, 'hello from my second browser');
    await ann.page.getByRole('button', { name: new RegExp(`^${CAT.toLowerCase()}`) }).click({ timeout: 15_000 });
    await bubble(ann.page, CAT, 'hello from my second browser').waitFor({ timeout: 15_000 });
    await say(ann.page, 'reaches both of your browsers');
    await bubble(p, ANN, 'reaches both of your browsers').waitFor({ timeout: 15_000 });
    await cat.page.getByRole('button', { name: new RegExp(`^${ANN.toLowerCase()}`) }).click({ timeout: 15_000 });
    await bubble(cat.page, ANN, 'reaches both of your browsers').waitFor({ timeout: 15_000 });
    // The first browser also shows what cat wrote from the second one, as hers. (This step failed now and then, the
    // copy missing without a line in the conversation. One way that happens is fixed: a device could encrypt two
    // messages to its own other device with one key, and that device dropped the second as a replay (devices.test.ts,
    // "loses no copy…"). If it fails again, the error says what each browser showed, console included.)
    await conversationLog(cat.page, ANN)
      .locator('.message.mine .text')
      .filter({ hasText: 'hello from my second browser' })
      .waitFor({ timeout: 15_000 })
      .catch(async (e: unknown) => {
        throw new Error(
          `cat's first browser never showed her own message. It shows ${await shownIn(cat, cat.page, ANN)}; ` +
            `the second browser shows ${await shownIn(cat2, p, ANN)}`,
          { cause: e },
        );
      });
    const fromApp = cspViolations(cat2);
    await proveCspRecorder(cat2);
    expect(fromApp).toEqual([]);
    expect(cat2.errors).toEqual([]);
    await cat2.context.close();
  });

  it('a verified contact whose key changed shows a banner and blocks sending until the new key is accepted', async () => {
    // Ben "reinstalls" with new keys: done at the relay's storage level (no protocol for it; see the helper).
    const bare = await bareAccount(relay.url);
    const found = await http(relay.url, 'GET', `/api/users?query=${BEN}`, bare.token);
    const benId = (found.json as { users: { userId: string }[] }).users[0]!.userId;
    await dangerousTestOnlyReplaceIdentity(relay, benId);

    const a = ann.page;
    await a.getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}`) }).click();
    await conversationLog(a, BEN).waitFor();
    await say(a, 'are you still you?');
    const banner = a.getByRole('alert').filter({ hasText: 'security key changed' }).first();
    await banner.waitFor({ timeout: 15_000 });
    await a.getByRole('button', { name: 'Accept new key' }).waitFor();
    expect(await a.getByRole('textbox', { name: 'Message' }).isDisabled()).toBe(true);
    await a.screenshot({ path: '/tmp/weconnect-key-change-light.png' });
    // The theme attribute the settings radio sets (switching panes here would hide the banner under test).
    await a.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
    await a.screenshot({ path: '/tmp/weconnect-key-change-dark.png' });
    await a.evaluate(() => (document.documentElement.dataset.theme = 'light'));

    await a.getByRole('button', { name: 'Accept new key' }).click();
    await expect.poll(() => a.getByRole('textbox', { name: 'Message' }).isDisabled(), { timeout: 15_000 }).toBe(false);
    await say(a, 'sent after accepting');
    await expect
      .poll(
        () =>
          conversationLog(a, BEN)
            .locator('.message.mine', { hasText: 'sent after accepting' })
            .getAttribute('data-status'),
        { timeout: 15_000 },
      )
      .toBe('sent');
  });

  it('reported no CSP violation and no page error (each page proves its CSP recorders first)', async () => {
    for (const w of [ann, ben, cat]) {
      const fromApp = cspViolations(w);
      await proveCspRecorder(w);
      expect(fromApp).toEqual([]);
      expect(w.errors).toEqual([]);
    }
  });
});
