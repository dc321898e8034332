// Password and account in a real Chromium, through the named controls: sign-up asks to confirm the password and
// says there is no reset; Change password (also with the tab closed before or after the relay took it) and signing
// in with the new password; Delete account as a contact sees it; the same username registered again raises the
// key-change warning. Screenshots in /tmp/shots-account/, axe audits in light and dark.
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
  skipReason,
  watchedPage,
  type WatchedPage,
} from './harness';

const reason = skipReason();
if (reason) console.warn(reason);

const SHOTS = '/tmp/shots-account';
const stamp = Date.now().toString(36);
const PASSWORD = 'a long enough password';
const NEW_PASSWORD = 'an even longer new password';

async function fillSignUp(page: Page, url: string, name: string, password: string, confirm: string): Promise<void> {
  await page.goto(url);
  await page.getByRole('textbox', { name: 'Username' }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Confirm password').fill(confirm);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
}

async function signUp(page: Page, url: string, name: string): Promise<void> {
  await fillSignUp(page, url, name, PASSWORD, PASSWORD);
  await page.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
}

async function signIn(page: Page, url: string, name: string, password: string): Promise<void> {
  await page.goto(url);
  await page.getByRole('button', { name: 'Use an existing account' }).click();
  await page.getByRole('textbox', { name: 'Username' }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

async function openChat(page: Page, name: string): Promise<void> {
  await page.getByRole('searchbox', { name: 'Find people' }).fill(name);
  await page.getByRole('button', { name: name.toLowerCase(), exact: true }).click();
  await conversationLog(page, name.toLowerCase()).waitFor({ timeout: 15_000 });
}

async function unlock(page: Page, password: string): Promise<void> {
  await page.getByRole('button', { name: 'Unlock', exact: true }).waitFor({ timeout: 20_000 });
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Unlock', exact: true }).click();
}

/** Serious and critical axe violations on the page, as "id: target" lines. */
async function seriousViolations(page: Page, include?: string): Promise<string[]> {
  const builder = new AxeBuilder({ page });
  if (include) builder.include(include);
  const result = await builder.analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) =>
      v.nodes.map((n) => `${v.id}: ${n.target.join(' ')} ${n.html.slice(0, 120)} ${n.failureSummary ?? ''}`),
    );
}

async function changePassword(page: Page, current: string, next: string, confirm = next): Promise<void> {
  await page.getByLabel('Current password').fill(current);
  await page.getByLabel('New password', { exact: true }).fill(next);
  await page.getByLabel('Confirm new password').fill(confirm);
  await page.getByRole('button', { name: 'Change password' }).click();
}

describe.skipIf(reason !== null)('Password and account in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let dist: string;
  const pages: WatchedPage[] = [];

  async function fresh(scheme: 'light' | 'dark' = 'light'): Promise<WatchedPage> {
    const w = await watchedPage(browser, scheme);
    pages.push(w);
    return w;
  }

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('sign-up asks to confirm the password, says there is no reset, and refuses a mismatch', async () => {
    for (const scheme of ['light', 'dark'] as const) {
      const w = await fresh(scheme);
      const p = w.page;
      await fillSignUp(p, relay.url, `mis_${scheme}_${stamp}`, PASSWORD, `${PASSWORD}!`);
      await p.getByRole('alert').filter({ hasText: 'The passwords do not match' }).waitFor({ timeout: 10_000 });
      await expect
        .poll(() =>
          p
            .getByText(
              'There is no password reset. If you forget your password, your account and messages cannot be recovered.',
            )
            .count(),
        )
        .toBe(1);
      expect(await p.getByRole('searchbox', { name: 'Find people' }).count()).toBe(0);
      await p.screenshot({ path: `${SHOTS}/signup-mismatch-${scheme}.png` });
      expect(await seriousViolations(p)).toEqual([]);
      await w.context.close();
    }
  });

  it('changes the password in Settings; the new one signs in a fresh browser and unlocks the history after a reload', async () => {
    const ann = await fresh();
    const ben = await fresh();
    const ANN = `ann_${stamp}`;
    const BEN = `ben_${stamp}`;
    await Promise.all([signUp(ann.page, relay.url, ANN), signUp(ben.page, relay.url, BEN)]);
    await openChat(ann.page, BEN);
    await say(ann.page, 'History before the change');
    await bubble(ann.page, BEN.toLowerCase(), 'History before the change').waitFor({ timeout: 15_000 });

    const a = ann.page;
    await a.getByRole('button', { name: 'Settings' }).click();
    await a.getByRole('button', { name: 'Change password' }).scrollIntoViewIfNeeded();
    // A mismatch is a form error and changes nothing.
    await changePassword(a, PASSWORD, NEW_PASSWORD, `${NEW_PASSWORD}?`);
    await a.getByRole('alert').filter({ hasText: 'The new passwords do not match' }).waitFor();
    await a.screenshot({ path: `${SHOTS}/settings-account-light.png`, fullPage: true });
    expect(await seriousViolations(a, '.settings')).toEqual([]);
    await a.getByRole('radio', { name: 'Dark' }).check();
    await a.screenshot({ path: `${SHOTS}/settings-account-dark.png`, fullPage: true });
    expect(await seriousViolations(a, '.settings')).toEqual([]);
    await a.getByRole('radio', { name: 'Light' }).check();

    await changePassword(a, PASSWORD, NEW_PASSWORD);
    await a.getByRole('status').filter({ hasText: 'Your password was changed.' }).waitFor({ timeout: 30_000 });

    // A fresh browser: the old password is refused, the new one signs in.
    const elsewhere = await fresh();
    await signIn(elsewhere.page, relay.url, ANN, PASSWORD);
    await elsewhere.page
      .getByRole('alert')
      .filter({ hasText: 'Wrong username or password' })
      .waitFor({ timeout: 30_000 });
    await elsewhere.page.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD);
    await elsewhere.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await elsewhere.page.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });

    // This browser after a reload: the history is back with the new password.
    await a.reload();
    await unlock(a, NEW_PASSWORD);
    await a
      .getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}`) })
      .first()
      .click({ timeout: 20_000 });
    await bubble(a, BEN.toLowerCase(), 'History before the change').waitFor({ timeout: 15_000 });
  });

  it('a tab closed after the relay took the change: the old password is told it changed, the new one opens the history', async () => {
    const cat = await fresh();
    const dan = await fresh();
    const CAT = `cat_${stamp}`;
    const DAN = `dan_${stamp}`;
    await Promise.all([signUp(cat.page, relay.url, CAT), signUp(dan.page, relay.url, DAN)]);
    await openChat(cat.page, DAN);
    await say(cat.page, 'Kept across a closed tab');
    await bubble(cat.page, DAN.toLowerCase(), 'Kept across a closed tab').waitFor({ timeout: 15_000 });

    const c = cat.page;
    let relayAnswered: () => void = () => undefined;
    const answered = new Promise<void>((r) => (relayAnswered = r));
    // The request reaches the relay, which answers; the tab closes before the page sees the answer.
    await c.route('**/api/accounts/self/password', async (route) => {
      const response = await route.fetch();
      expect(response.status()).toBe(204);
      relayAnswered();
    });
    await c.getByRole('button', { name: 'Settings' }).click();
    await changePassword(c, PASSWORD, NEW_PASSWORD);
    await answered;
    await c.close();

    const again = await cat.context.newPage();
    await again.goto(relay.url);
    await unlock(again, PASSWORD);
    await again.getByRole('alert').filter({ hasText: 'password was changed' }).waitFor({ timeout: 30_000 });
    await again.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD);
    await again.getByRole('button', { name: 'Unlock', exact: true }).click();
    await again
      .getByRole('button', { name: new RegExp(`^${DAN.toLowerCase()}`) })
      .first()
      .click({ timeout: 30_000 });
    await bubble(again, DAN.toLowerCase(), 'Kept across a closed tab').waitFor({ timeout: 15_000 });
  });

  it('a tab closed before the change reached the relay: the old password still works', async () => {
    const eve = await fresh();
    const EVE = `eve_${stamp}`;
    await signUp(eve.page, relay.url, EVE);
    const e = eve.page;
    let reached: () => void = () => undefined;
    const held = new Promise<void>((r) => (reached = r));
    // The request never reaches the relay (dropped on its way out), and the tab closes.
    await e.route('**/api/accounts/self/password', async (route) => {
      await route.abort('aborted');
      reached();
    });
    await e.getByRole('button', { name: 'Settings' }).click();
    await changePassword(e, PASSWORD, NEW_PASSWORD);
    await held;
    await e.close();

    const again = await eve.context.newPage();
    await again.goto(relay.url);
    await unlock(again, NEW_PASSWORD);
    await again.getByRole('alert').filter({ hasText: 'password is not right' }).waitFor({ timeout: 30_000 });
    await again.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await again.getByRole('button', { name: 'Unlock', exact: true }).click();
    await again.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
  });

  it('deletes an account: the browser returns to the first screen, a contact sees it deleted, and the name registered again warns', async () => {
    const fay = await fresh();
    const gus = await fresh();
    const FAY = `fay_${stamp}`;
    const GUS = `gus_${stamp}`;
    await Promise.all([signUp(fay.page, relay.url, FAY), signUp(gus.page, relay.url, GUS)]);
    await openChat(fay.page, GUS);
    await say(fay.page, 'Hello before I go');
    const g = gus.page;
    await g
      .getByRole('button', { name: new RegExp(`^${FAY.toLowerCase()}`) })
      .first()
      .click({ timeout: 20_000 });
    await bubble(g, FAY.toLowerCase(), 'Hello before I go').waitFor({ timeout: 15_000 });

    const f = fay.page;
    await f.getByRole('button', { name: 'Settings' }).click();
    await f.getByRole('button', { name: 'Delete account' }).click();
    await f.getByLabel('Password', { exact: true }).fill('not my password');
    await f.getByRole('button', { name: 'Delete my account' }).click();
    await f.getByRole('alert').filter({ hasText: 'not right' }).waitFor({ timeout: 30_000 });
    await f.screenshot({ path: `${SHOTS}/delete-account-confirm-light.png`, fullPage: true });
    expect(await seriousViolations(f, '.settings')).toEqual([]);
    await f.getByRole('radio', { name: 'Dark' }).check();
    await f.screenshot({ path: `${SHOTS}/delete-account-confirm-dark.png`, fullPage: true });
    expect(await seriousViolations(f, '.settings')).toEqual([]);
    await f.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await f.getByRole('button', { name: 'Delete my account' }).click();
    await f.getByRole('heading', { name: 'Create your account' }).waitFor({ timeout: 30_000 });

    // Gus writes to the deleted account: the conversation says so and the composer is disabled.
    await say(g, 'Are you still there?');
    await g.getByRole('status').filter({ hasText: 'This account was deleted' }).waitFor({ timeout: 30_000 });
    await expect.poll(() => g.getByRole('textbox', { name: 'Message' }).isDisabled()).toBe(true);
    await g.screenshot({ path: `${SHOTS}/contact-deleted-light.png` });
    // The new part of this screen; the rest of the conversation view has contrast findings of its own (reported).
    expect(await seriousViolations(g, '.composer-note.is-deleted')).toEqual([]);
    await g.getByRole('button', { name: 'Settings' }).click();
    await g.getByRole('radio', { name: 'Dark' }).check();
    await g.getByRole('button', { name: new RegExp(`^${FAY.toLowerCase()}( |$)`) }).click();
    await g.getByRole('status').filter({ hasText: 'This account was deleted' }).waitFor();
    await g.screenshot({ path: `${SHOTS}/contact-deleted-dark.png` });
    expect(await seriousViolations(g, '.composer-note.is-deleted')).toEqual([]);
    await g.getByRole('button', { name: 'Settings' }).click();
    await g.getByRole('radio', { name: 'Light' }).check();
    await g.getByRole('button', { name: new RegExp(`^${FAY.toLowerCase()}( |$)`) }).click();

    // Someone registers the name again: Gus, finding it, is warned that the key changed.
    const heir = await fresh();
    await signUp(heir.page, relay.url, FAY);
    await g.getByRole('searchbox', { name: 'Find people' }).fill(FAY);
    // The search result (the old conversation in the list has the same name).
    await g
      .getByRole('region', { name: 'People' })
      .getByRole('button', { name: new RegExp(`^${FAY.toLowerCase()}( |$)`) })
      .click();
    await g.getByRole('alert').filter({ hasText: 'security key changed' }).waitFor({ timeout: 30_000 });
    await g.screenshot({ path: `${SHOTS}/name-registered-again-light.png` });
  });
});
