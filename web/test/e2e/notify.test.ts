// Notifications, privacy settings and disappearing messages in a real Chromium (issue #15): desktop notifications
// (permission granted to the context; each `new Notification(...)` the page makes is recorded by an init script
// that wraps the real constructor), the unread count in the tab title, Mute, the content setting ("Name only" hides
// the text), and a disappearing timer set in one browser that shows in the other and makes messages vanish on both
// (the pages' clocks are Playwright's, fast-forwarded past the 5 minutes). axe and screenshots of the Settings
// section and the conversation header in light and dark.
import { mkdirSync } from 'node:fs';
import { AxeBuilder } from '@axe-core/playwright';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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

const SHOTS = '/tmp/shots-notify';
const stamp = Date.now().toString(36);
const ANN = `ann_${stamp}`;
const BEN = `ben_${stamp}`;
const PASSWORD = 'a long enough password';

type Note = { title: string; body: string };

async function notes(page: Page): Promise<Note[]> {
  return page.evaluate(() => (window as unknown as { __notes?: Note[] }).__notes ?? []);
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

/** Opens an existing conversation from the sidebar (its button's name starts with the username). */
async function openFromList(page: Page, name: string): Promise<void> {
  await page.getByRole('button', { name: new RegExp(`^${name.toLowerCase()}`) }).click();
  await conversationLog(page, name).waitFor({ timeout: 15_000 });
}

async function openSettings(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  await page.getByRole('group', { name: 'Notifications' }).waitFor();
}

async function closeSettings(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Close settings' }).click();
}

/** Serious or critical axe violations on the page as it is now, after a screenshot. */
async function audit(page: Page, shot: string, scope?: string): Promise<string[]> {
  await page.screenshot({ path: `${SHOTS}/${shot}.png` });
  const builder = new AxeBuilder({ page });
  if (scope) builder.include(scope);
  const result = await builder.analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${shot} ${v.id}: ${n.target.join(' ')}`));
}

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await probe())) throw new Error(`waiting for ${what}`);
    },
    { timeout: 15_000, interval: 100 },
  );
}

describe.skipIf(reason !== null)('notifications, privacy and disappearing messages in Chromium', () => {
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
    await ann.context.grantPermissions(['notifications'], { origin: relay.url });
    // Records every notification the app makes, then lets the real API show it.
    await ann.context.addInitScript(() => {
      const Real = window.Notification;
      const w = window as unknown as { __notes: { title: string; body: string }[]; __shown: Notification[] };
      w.__notes = [];
      w.__shown = [];
      class Spy extends Real {
        constructor(title: string, options?: NotificationOptions) {
          super(title, options);
          w.__notes.push({ title, body: options?.body ?? '' });
          w.__shown.push(this);
        }
      }
      Object.defineProperty(Spy, 'permission', { get: () => Real.permission });
      window.Notification = Spy as typeof Notification;
    });
    for (const w of [ann, ben]) await w.page.clock.install();
    await Promise.all([
      signUpInBrowser(ann.page, relay.url, ANN, PASSWORD),
      signUpInBrowser(ben.page, relay.url, BEN, PASSWORD),
    ]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('notifies with the name only by default, counts unread in the title, and shows the text when chosen', async () => {
    const a = ann.page;
    expect(await a.title()).toBe('WeConnect');
    await openChat(ben.page, ANN);
    await say(ben.page, 'secret plans for friday');
    await until('a notification', async () => (await notes(a)).length === 1);
    expect((await notes(a))[0]).toEqual({ title: BEN.toLowerCase(), body: 'New message' });
    await until('the title count', async () => (await a.title()) === '(1) WeConnect');

    await openSettings(a);
    // Permission was granted to this browser: no button to ask for it; ben's browser offers it.
    await expect(a.getByText('Desktop notifications are on for this browser.').isVisible()).resolves.toBe(true);
    const content = a.getByRole('radiogroup', { name: 'Notification content' });
    expect(await content.getByRole('radio', { name: 'Name only' }).isChecked()).toBe(true);
    expect(await a.getByRole('checkbox', { name: 'Play a sound' }).isChecked()).toBe(false);
    await content.getByRole('radio', { name: 'Name and message' }).check();
    await say(ben.page, 'see you at noon');
    await until('a second notification', async () => (await notes(a)).length === 2);
    expect((await notes(a))[1]).toEqual({ title: BEN.toLowerCase(), body: 'see you at noon' });
    expect(await a.title()).toBe('(2) WeConnect');
    await content.getByRole('radio', { name: 'Nothing' }).check();
    await say(ben.page, 'third');
    await until('a third notification', async () => (await notes(a)).length === 3);
    expect((await notes(a))[2]).toEqual({ title: 'WeConnect', body: 'New message' });
    await content.getByRole('radio', { name: 'Name only' }).check();
    // Clicking a notification opens its conversation (as the browser would call its onclick).
    await a.evaluate(() => {
      const shown = (window as unknown as { __shown: Notification[] }).__shown;
      shown[shown.length - 1]?.onclick?.(new Event('click'));
    });
    await conversationLog(a, BEN).waitFor({ timeout: 5_000 });

    await openSettings(ben.page);
    await expect(ben.page.getByRole('button', { name: 'Enable desktop notifications' }).isVisible()).resolves.toBe(
      true,
    );
    await closeSettings(ben.page);
    await openFromList(ben.page, ANN);
  });

  it('a muted conversation never notifies and is not counted in the title', async () => {
    const a = ann.page;
    await openFromList(a, BEN);
    await until('read: the title count is gone', async () => (await a.title()) === 'WeConnect');
    // Reading it while it is open: no notification for what arrives on screen.
    await say(ben.page, 'on screen');
    await bubble(a, BEN, 'on screen').waitFor();
    await a.getByRole('button', { name: 'Mute', exact: true }).click();
    await a.getByRole('button', { name: 'Unmute', exact: true }).waitFor();
    await openSettings(a); // another pane: the conversation is no longer on screen
    const before = (await notes(a)).length;
    await say(ben.page, 'while muted');
    await until(
      'it arrived',
      async () =>
        (await a.getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}, 1 unread, muted`) }).count()) === 1,
    );
    expect((await notes(a)).length).toBe(before);
    expect(await a.title()).toBe('WeConnect');
    await closeSettings(a);
    await openFromList(a, BEN);
    await a.getByRole('button', { name: 'Unmute', exact: true }).click();
    await a.getByRole('button', { name: 'Mute', exact: true }).waitFor();
  });

  it('a disappearing timer set in one browser shows in the other, and messages vanish from both', async () => {
    const a = ann.page;
    const b = ben.page;
    await a.getByRole('combobox', { name: 'Disappearing messages' }).selectOption({ label: '5 minutes' });
    const notice = `${ANN.toLowerCase()} set disappearing messages to 5 minutes`;
    await conversationLog(a, BEN).getByText(notice).waitFor();
    await conversationLog(b, ANN).getByText(notice).waitFor({ timeout: 15_000 });
    expect(await b.getByRole('combobox', { name: 'Disappearing messages' }).inputValue()).toBe('300');

    await say(a, 'this will vanish');
    await say(b, 'so will this');
    for (const [p, peer] of [
      [a, BEN],
      [b, ANN],
    ] as const) {
      await bubble(p, peer, 'this will vanish').waitFor({ timeout: 15_000 });
      await bubble(p, peer, 'so will this').waitFor({ timeout: 15_000 });
    }
    for (const p of [a, b]) await p.clock.fastForward('05:02');
    for (const [p, peer] of [
      [a, BEN],
      [b, ANN],
    ] as const) {
      await until('both vanished', async () => {
        const left =
          (await bubble(p, peer, 'this will vanish').count()) + (await bubble(p, peer, 'so will this').count());
        return left === 0;
      });
      // Earlier messages stay.
      expect(await bubble(p, peer, 'on screen').count()).toBe(1);
    }
  });

  it('passes axe in light and dark: the Settings sections and the conversation header', async () => {
    const a = ann.page;
    const problems: string[] = [];
    for (const theme of ['Light', 'Dark'] as const) {
      await openSettings(a);
      await a.getByRole('radio', { name: theme }).check();
      await a.getByRole('group', { name: 'Notifications' }).scrollIntoViewIfNeeded();
      problems.push(...(await audit(a, `settings-notifications-${theme.toLowerCase()}`, '.settings')));
      await closeSettings(a);
      await openFromList(a, BEN);
      problems.push(...(await audit(a, `conversation-header-${theme.toLowerCase()}`, '.conv-head')));
    }
    expect(problems).toEqual([]);
  });
});
