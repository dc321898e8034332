// The product in a real Chromium: two people sign up on the real relay (serving web/dist under its strict CSP),
// chat both ways, see typing and ticks, reload and unlock, and hostile or huge messages render as plain text.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestRelay, type TestRelay } from '../support/relay';
import {
  bubble,
  buildWeb,
  conversationLog,
  cspViolations,
  launch,
  proveCspRecorder,
  relayOnlyAccount,
  removeBuild,
  signUpInBrowser,
  skipReason,
  watchedPage,
  type WatchedPage,
} from './harness';

const reason = skipReason();
if (reason) console.warn(reason);

const stamp = Date.now().toString(36);
const ALICE = `alice_${stamp}`;
const BOB = `bob_${stamp}`;
const CAROL = `carol_${stamp}`; // a relay-only account: someone alice can open a new conversation with
const PASSWORD = 'a long enough password';

async function signUp(page: Page, url: string, name: string): Promise<void> {
  await signUpInBrowser(page, url, name, PASSWORD);
}

/**
 * Holds a readwrite transaction on the page's `conversations` store (from a second connection, as another tab could)
 * until the returned function is called: opening a new conversation writes there, so it stays in flight meanwhile.
 */
async function holdConversationWrites(page: Page): Promise<() => Promise<void>> {
  await page.evaluate(async () => {
    const open = (name: string) =>
      new Promise<IDBDatabase>((resolve, reject) => {
        const r = indexedDB.open(name);
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
    for (const info of await indexedDB.databases()) {
      const db = await open(info.name!);
      if (!db.objectStoreNames.contains('conversations')) {
        db.close();
        continue;
      }
      const store = db.transaction('conversations', 'readwrite').objectStore('conversations');
      const w = window as unknown as { __heldUntil?: () => void };
      let held = true;
      w.__heldUntil = () => (held = false);
      // A transaction stays open while it has requests: chain them until released.
      const spin = () => {
        if (held) store.count().onsuccess = spin;
        else db.close();
      };
      spin();
      return;
    }
    throw new Error('no database with a conversations store');
  });
  return () => page.evaluate(() => (window as unknown as { __heldUntil: () => void }).__heldUntil());
}

describe.skipIf(reason !== null)('WeConnect in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let alice: WatchedPage;
  let bob: WatchedPage;

  let dist: string;

  beforeAll(async () => {
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    alice = await watchedPage(browser, 'light');
    bob = await watchedPage(browser, 'light');
    await Promise.all([signUp(alice.page, relay.url, ALICE), signUp(bob.page, relay.url, BOB)]);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('alice finds bob and her message goes sent → delivered → read', async () => {
    const a = alice.page;
    await a.getByRole('searchbox', { name: 'Find people' }).fill(BOB);
    await a.getByRole('button', { name: BOB.toLowerCase(), exact: true }).click();
    await conversationLog(a, BOB).waitFor();

    // Record every status the first message's ticks pass through.
    await a.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { __ticks: string[] }).__ticks = seen;
      new MutationObserver(() => {
        const status = document.querySelector('.message.mine')?.getAttribute('data-status');
        if (status && seen.at(-1) !== status) seen.push(status);
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    await a.getByRole('textbox', { name: 'Message' }).fill('Hi Bob 👋 this is WeConnect');
    await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    const first = conversationLog(a, BOB).locator('.message.mine').first();
    await expect.poll(() => first.getAttribute('data-status'), { timeout: 15_000 }).toBe('delivered');

    // Bob is not looking yet: delivered. He opens the conversation: read.
    const b = bob.page;
    await b.getByRole('button', { name: new RegExp(`^${ALICE.toLowerCase()}, 1 unread`) }).click();
    await bubble(b, ALICE, 'Hi Bob 👋 this is WeConnect').waitFor();
    await expect.poll(() => first.getAttribute('data-status'), { timeout: 15_000 }).toBe('read');
    const ticks = await a.evaluate(() => (window as unknown as { __ticks: string[] }).__ticks);
    expect(ticks.filter((t) => t !== 'pending')).toEqual(['sent', 'delivered', 'read']);
    await expect.poll(() => a.getByRole('img', { name: 'Read' }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
  });

  it('bob sees "alice is typing…" and his multi-line reply arrives (Shift+Enter, then Enter)', async () => {
    const a = alice.page;
    const b = bob.page;
    await a.getByRole('textbox', { name: 'Message' }).pressSequentially('typing…');
    const typing = b.getByRole('status').filter({ hasText: `${ALICE.toLowerCase()} is typing…` });
    await typing.waitFor({ timeout: 10_000 });
    await a.getByRole('textbox', { name: 'Message' }).fill('');

    const box = b.getByRole('textbox', { name: 'Message' });
    await box.pressSequentially('first line');
    await box.press('Shift+Enter');
    await box.pressSequentially('second line');
    await box.press('Enter');
    expect(await box.inputValue()).toBe('');
    await bubble(a, BOB, 'second line').waitFor();
    expect(await bubble(a, BOB, 'second line').textContent()).toBe('first line\nsecond line');
  });

  it('looks right in light and dark themes (screenshots in /tmp)', async () => {
    const a = alice.page;
    await a.getByRole('textbox', { name: 'Message' }).fill('Looks calm in the light theme ☀️');
    await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    await bubble(bob.page, ALICE, 'calm in the light').waitFor();
    await a.screenshot({ path: '/tmp/weconnect-conversation-light.png' });

    await a.getByRole('button', { name: 'Settings' }).click();
    await a.getByRole('radio', { name: 'Dark' }).check();
    expect(await a.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await a.screenshot({ path: '/tmp/weconnect-settings-dark.png' });
    await a.getByRole('button', { name: new RegExp(`^${BOB.toLowerCase()}`) }).click();
    await conversationLog(a, BOB).waitFor();
    await a.screenshot({ path: '/tmp/weconnect-conversation-dark.png' });
    await bob.page.screenshot({ path: '/tmp/weconnect-conversation-bob.png' });
  });

  it('renders an XSS payload and a 10,000-character message as literal text without breaking the layout', async () => {
    const a = alice.page;
    const b = bob.page;
    const xss = '<img src=x onerror=alert(1)>';
    await a.getByRole('textbox', { name: 'Message' }).fill(xss);
    await a.getByRole('button', { name: 'Send', exact: true }).click();
    await bubble(b, ALICE, xss).waitFor();
    expect(await bubble(b, ALICE, xss).textContent()).toBe(xss);
    expect(await conversationLog(b, ALICE).locator('img').count()).toBe(0);

    const huge = `${'supercalifragilistic'.repeat(250)} ${'word '.repeat(1_000)}`.slice(0, 10_000);
    expect(huge).toHaveLength(10_000);
    await a.getByRole('textbox', { name: 'Message' }).fill(huge);
    await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    await bubble(b, ALICE, 'supercalifragilisticsupercali').waitFor();
    expect(await bubble(b, ALICE, 'supercalifragilisticsupercali').textContent()).toBe(huge);
    for (const [page, peer] of [
      [a, BOB],
      [b, ALICE],
    ] as const) {
      const overflow = await conversationLog(page, peer).evaluate((el) => el.scrollWidth - el.clientWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      const box = await page.getByRole('textbox', { name: 'Message' }).boundingBox();
      expect(box?.height ?? 0).toBeGreaterThan(0);
    }
    await b.screenshot({ path: '/tmp/weconnect-long-message-light.png' });
    expect(alice.dialogs).toEqual([]);
    expect(bob.dialogs).toEqual([]);
  });

  it('after a reload bob unlocks with his password and the history is back', async () => {
    const b = bob.page;
    await b.reload();
    await b.getByRole('button', { name: 'Unlock', exact: true }).waitFor();
    await b.screenshot({ path: '/tmp/weconnect-unlock.png' });
    await b.getByLabel('Password').fill('wrong password');
    await b.getByRole('button', { name: 'Unlock', exact: true }).click();
    await b.getByRole('alert').filter({ hasText: 'password is not right' }).waitFor({ timeout: 20_000 });
    await b.getByLabel('Password').fill(PASSWORD);
    await b.getByRole('button', { name: 'Unlock', exact: true }).click();
    await b.getByRole('button', { name: new RegExp(`^${ALICE.toLowerCase()}`) }).click({ timeout: 30_000 });
    await bubble(b, ALICE, 'Hi Bob 👋 this is WeConnect').waitFor();
    await bubble(b, ALICE, '<img src=x onerror=alert(1)>').waitFor();

    const id = Date.now().toString(36);
    await alice.page.getByRole('textbox', { name: 'Message' }).fill(`after reload ${id}`);
    await alice.page.getByRole('textbox', { name: 'Message' }).press('Enter');
    await bubble(b, ALICE, `after reload ${id}`).waitFor({ timeout: 15_000 });
  });

  it('keeps text typed while another conversation opens with the conversation it was typed in, unsent', async () => {
    const a = alice.page;
    const composer = a.getByRole('textbox', { name: 'Message' });
    const draft = `typed during the switch ${Date.now().toString(36)}`;
    await relayOnlyAccount(relay.url, CAROL);
    await a.getByRole('button', { name: new RegExp(`^${BOB}`) }).click();
    await conversationLog(a, BOB).waitFor();
    await a.getByRole('searchbox', { name: 'Find people' }).fill(CAROL);
    const carolFound = a.getByRole('button', { name: CAROL, exact: true });
    await carolFound.waitFor({ timeout: 15_000 });

    // Opening carol's conversation stays in flight while alice types into the composer on screen (bob's).
    const release = await holdConversationWrites(a);
    await carolFound.click();
    await composer.fill(draft);
    expect(await conversationLog(a, BOB).isVisible()).toBe(true);
    expect(await conversationLog(a, CAROL).count()).toBe(0);
    await release();

    // The switch lands: carol's composer is empty and her log holds nothing.
    await conversationLog(a, CAROL).waitFor({ timeout: 15_000 });
    expect(await composer.inputValue()).toBe('');
    expect(await conversationLog(a, CAROL).locator('.message').count()).toBe(0);

    // Back with bob the text is still there, unsent: neither alice's nor bob's log shows it.
    await a.getByRole('button', { name: new RegExp(`^${BOB}`) }).click();
    await conversationLog(a, BOB).waitFor();
    expect(await composer.inputValue()).toBe(draft);
    expect(await bubble(a, BOB, draft).count()).toBe(0);
    expect(await bubble(bob.page, ALICE, draft).count()).toBe(0);
    // The draft also outlives another pane (settings) shown in between, in either theme.
    for (const theme of ['Light', 'Dark'] as const) {
      await a.getByRole('button', { name: 'Settings' }).click();
      await a.getByRole('radio', { name: theme }).check();
      await a.getByRole('button', { name: new RegExp(`^${BOB}`) }).click();
      await conversationLog(a, BOB).waitFor();
      expect(await composer.inputValue()).toBe(draft);
      await a.screenshot({ path: `/tmp/weconnect-draft-${theme.toLowerCase()}.png` });
    }

    // Sent now, it reaches bob; carol's conversation never got it.
    await composer.press('Enter');
    await bubble(bob.page, ALICE, draft).waitFor({ timeout: 15_000 });
    expect(await composer.inputValue()).toBe('');
    const carolRow = a.getByRole('button', { name: new RegExp(`^${CAROL}`) });
    expect(await carolRow.textContent()).toContain('No messages yet');
  });

  it('a second tab of the same browser profile says WeConnect is open in another tab', async () => {
    const second = await alice.context.newPage();
    await second.goto(relay.url);
    await second.getByRole('alert').filter({ hasText: 'open in another tab' }).waitFor({ timeout: 20_000 });
    await second.getByLabel('Password').fill(PASSWORD);
    await second.getByRole('button', { name: 'Unlock', exact: true }).click();
    await second.getByRole('alert').filter({ hasText: 'open in another tab' }).waitFor();
    await second.screenshot({ path: '/tmp/weconnect-second-tab.png' });
    // The first tab is unaffected.
    expect(await alice.page.getByRole('textbox', { name: 'Message' }).isVisible()).toBe(true);
    await second.close();
  });

  it('reported no CSP violation and no page error (each page proves its CSP recorders first)', async () => {
    for (const w of [alice, bob]) {
      const fromApp = cspViolations(w);
      await proveCspRecorder(w);
      expect(fromApp).toEqual([]);
      expect(w.errors).toEqual([]);
    }
  });
});
