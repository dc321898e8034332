// Devices in a real Chromium (issue #14), three browser contexts: alice on two devices and bob. Alice signs in on a
// second device → her first device shows the new-device notice, and bob's conversation with her shows "alice added a
// new device". Settings → Devices lists both (screenshots light and dark, axe audit in both themes); alice removes
// the second device from the first → the second shows "This device was removed" and its IndexedDB holds no keys.
import { AxeBuilder } from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, Page } from 'playwright-core';
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

const SHOTS = '/tmp/shots-devices';
const stamp = Date.now().toString(36);
const ALICE = `alice_${stamp}`;
const BOB = `bob_${stamp}`;
const PASSWORD = 'a long enough password';

async function signUp(page: Page, url: string, name: string): Promise<void> {
  await signUpInBrowser(page, url, name, PASSWORD);
}

async function signIn(page: Page, url: string, name: string): Promise<void> {
  await page.goto(url);
  await page.getByRole('button', { name: 'Use an existing account' }).click();
  await page.getByRole('textbox', { name: 'Username' }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
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

/** Counts the records of every object store of the app's IndexedDB database, read inside the page. */
function idbCounts(page: Page): Promise<Record<string, number>> {
  return page.evaluate(
    () =>
      new Promise<Record<string, number>>((resolve, reject) => {
        const open = indexedDB.open('weconnect');
        open.onerror = () => reject(new Error('indexedDB.open failed'));
        open.onsuccess = () => {
          const db = open.result;
          const names = [...db.objectStoreNames];
          const counts: Record<string, number> = {};
          if (names.length === 0) {
            db.close();
            resolve(counts);
            return;
          }
          const tx = db.transaction(names, 'readonly');
          for (const name of names) {
            const q = tx.objectStore(name).count();
            q.onsuccess = () => (counts[name] = q.result);
          }
          tx.oncomplete = () => {
            db.close();
            resolve(counts);
          };
        };
      }),
  );
}

/** Serious and critical axe findings inside `selector`. */
async function axeProblems(page: Page, selector: string): Promise<string[]> {
  const result = await new AxeBuilder({ page }).include(selector).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

describe.skipIf(reason !== null)('devices in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let alice: WatchedPage;
  let alice2: WatchedPage;
  let bob: WatchedPage;
  let dist: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    [alice, bob] = await Promise.all([watchedPage(browser), watchedPage(browser)]);
    await Promise.all([signUp(alice.page, relay.url, ALICE), signUp(bob.page, relay.url, BOB)]);
    // Bob and alice talk: bob knows alice's one device from here on.
    await openChat(bob.page, ALICE);
    await say(bob.page, 'hi alice');
    await alice.page.getByRole('button', { name: new RegExp(`^${BOB}`) }).click({ timeout: 15_000 });
    await bubble(alice.page, BOB, 'hi alice').waitFor({ timeout: 15_000 });
    await say(alice.page, 'hi bob');
    await bubble(bob.page, ALICE, 'hi bob').waitFor({ timeout: 15_000 });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it("a second device of alice is announced on her first device and in bob's conversation with her", async () => {
    expect(await bob.page.locator('.message-notice').count()).toBe(0); // first contact was no news
    alice2 = await watchedPage(browser);
    await signIn(alice2.page, relay.url, ALICE);

    const notice = alice.page.getByRole('status').filter({ hasText: 'A new device was added to your account:' });
    await notice.waitFor({ timeout: 20_000 });
    expect(await notice.textContent()).toMatch(/^A new device was added to your account: \S.* on Linux$/);
    await alice.page.screenshot({ path: `${SHOTS}/new-device-notice-light.png` });

    // Bob sees it in the conversation when he looks at it again (his app checks alice's device list on opening).
    const line = conversationLog(bob.page, ALICE).locator('.message-notice').filter({ hasText: 'added a new device' });
    await vi.waitFor(
      async () => {
        await bob.page.getByRole('button', { name: 'Settings' }).click();
        await bob.page.getByRole('button', { name: new RegExp(`^${ALICE}`) }).click();
        await line.waitFor({ timeout: 3000 });
      },
      { timeout: 30_000, interval: 500 },
    );
    expect(await line.textContent()).toBe(`${ALICE} added a new device`);
    // A notice line, not a key-change block.
    expect(
      await bob.page
        .getByRole('alert')
        .filter({ hasText: /security key/i })
        .count(),
    ).toBe(0);
    await bob.page.screenshot({ path: `${SHOTS}/contact-new-device-light.png` });
  });

  it('lists both devices in Settings → Devices, this one marked, renames it, and passes axe in both themes', async () => {
    const p = alice.page;
    await p.getByRole('button', { name: 'Settings' }).click();
    const list = p.getByRole('list', { name: 'Devices' });
    await list.waitFor({ timeout: 15_000 });
    await expect.poll(() => list.getByRole('listitem').count(), { timeout: 15_000 }).toBe(2);
    expect(await list.getByText('This device', { exact: true }).count()).toBe(1);
    expect(await list.getByRole('button', { name: 'Remove device' }).count()).toBe(1);

    await p.getByRole('button', { name: 'Rename this device' }).click();
    await p.getByRole('textbox', { name: 'Device name' }).fill('Work laptop');
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    await list.getByText('Work laptop').waitFor({ timeout: 15_000 });

    for (const theme of ['Light', 'Dark'] as const) {
      await p.getByRole('radio', { name: theme }).check();
      await p.locator('.devices').scrollIntoViewIfNeeded();
      await p.screenshot({ path: `${SHOTS}/devices-${theme.toLowerCase()}.png`, fullPage: true });
      expect(await axeProblems(p, '.devices'), theme).toEqual([]);
    }
    await p.getByRole('radio', { name: 'Light' }).check();
  });

  it('removing the second device from the first: it says "This device was removed" and keeps no keys', async () => {
    const before = await idbCounts(alice2.page);
    expect(before.secrets ?? 0).toBeGreaterThan(0); // baseline: the second device holds sealed keys

    const p = alice.page;
    const list = p.getByRole('list', { name: 'Devices' });
    await list.getByRole('button', { name: 'Remove device' }).click();
    await p.screenshot({ path: `${SHOTS}/remove-confirm-light.png` });
    await p.getByRole('button', { name: 'Yes, remove' }).click();
    await expect.poll(() => list.getByRole('listitem').count(), { timeout: 15_000 }).toBe(1);

    await alice2.page.getByRole('heading', { name: 'This device was removed' }).waitFor({ timeout: 20_000 });
    const after = await idbCounts(alice2.page);
    for (const store of ['secrets', 'meta', 'sessions', 'contacts', 'messages', 'devicekeys']) {
      expect(after[store] ?? 0, store).toBe(0);
    }
    for (const theme of ['light', 'dark'] as const) {
      await alice2.page.emulateMedia({ colorScheme: theme });
      await alice2.page.screenshot({ path: `${SHOTS}/device-removed-${theme}.png` });
      expect(await axeProblems(alice2.page, 'main'), theme).toEqual([]);
    }
    // Continue leads to the first screen (the account is gone from this browser).
    await alice2.page.getByRole('button', { name: 'Continue' }).click();
    await alice2.page.getByRole('button', { name: 'Create account', exact: true }).waitFor({ timeout: 15_000 });
  });

  it('reported no CSP violation and no page error', async () => {
    for (const w of [alice, alice2, bob]) {
      const fromApp = cspViolations(w);
      await proveCspRecorder(w);
      expect(fromApp).toEqual([]);
      expect(w.errors).toEqual([]);
    }
  });
});
