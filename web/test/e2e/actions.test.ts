// Message actions in a real Chromium, two people: Reply (the quote jumps to the original), React (picker, chips,
// removing mine), Edit (Escape cancels; "edited"), Delete for everyone, Delete for me, a link that opens in a new tab
// without a referrer, and Retry on a send the relay refused (the recipient's mailbox was full). Axe audits and
// screenshots in light and dark (/tmp/shots-actions).
import { AxeBuilder } from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TEXT_BYTES } from '../../src/client/message-limits';
import { startTestRelay, type TestRelay } from '../support/relay';
import {
  bubble,
  buildWeb,
  conversationLog,
  launch,
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
const PASSWORD = 'a long enough password';
const SHOTS = '/tmp/shots-actions';

async function say(page: Page, text: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

async function openChat(page: Page, name: string): Promise<void> {
  await page.getByRole('searchbox', { name: 'Find people' }).fill(name);
  await page.getByRole('button', { name: name.toLowerCase(), exact: true }).click();
  await conversationLog(page, name).waitFor({ timeout: 15_000 });
}

/** The list item of the message whose text contains `text`. */
function message(page: Page, peer: string, text: string) {
  return conversationLog(page, peer.toLowerCase()).locator('li.message').filter({ hasText: text });
}

/** The list item whose own text (not a quote in it) contains `text`. */
function original(page: Page, peer: string, text: string) {
  return conversationLog(page, peer.toLowerCase())
    .locator('li.message')
    .filter({ has: page.locator('p.text', { hasText: text }) });
}

/** A message's action button, after hovering the message (as a person does). */
async function action(page: Page, peer: string, text: string, name: string) {
  const m = message(page, peer, text).last();
  await m.hover();
  return m.getByRole('toolbar', { name: 'Message actions' }).getByRole('button', { name, exact: true });
}

async function setTheme(page: Page, theme: 'Light' | 'Dark', back: string): Promise<void> {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByRole('radio', { name: theme }).check();
  await page
    .getByRole('button', { name: new RegExp(`^${back}`) })
    .first()
    .click();
}

async function seriousViolations(page: Page, what: string): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${what} ${v.id}: ${n.target.join(' ')}`));
}

describe.skipIf(reason !== null)('message actions in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let ann: WatchedPage;
  let ben: WatchedPage;
  let dist: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    // Small mailboxes, so a closed tab's mailbox fills and a send fails (for Retry).
    relay = await startTestRelay({ WEB_DIST: dist, MAILBOX_MAX_ENTRIES: '8' });
    browser = await launch();
    [ann, ben] = await Promise.all([watchedPage(browser), watchedPage(browser)]);
    await Promise.all([
      signUpInBrowser(ann.page, relay.url, ANN, PASSWORD),
      signUpInBrowser(ben.page, relay.url, BEN, PASSWORD),
    ]);
    await openChat(ann.page, BEN);
    await say(ann.page, 'hello *ben*, see https://example.com/page. ok');
    await openChat(ben.page, ANN);
    await bubble(ben.page, ANN.toLowerCase(), 'hello').waitFor({ timeout: 15_000 });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('shows links and formatting; a link opens in a new tab without referrer', async () => {
    const b = ben.page;
    const link = message(b, ANN, 'hello').getByRole('link', { name: 'https://example.com/page' });
    await expect(link.getAttribute('href')).resolves.toBe('https://example.com/page');
    await expect(link.getAttribute('target')).resolves.toBe('_blank');
    await expect(link.getAttribute('rel')).resolves.toBe('noopener noreferrer');
    expect(await message(b, ANN, 'hello').locator('strong').textContent()).toBe('ben');
  });

  it('React: picks from the picker or any emoji; the chip counts; pressing mine removes it', async () => {
    const b = ben.page;
    const a = ann.page;
    await (await action(b, ANN, 'hello', 'React')).click();
    await b.getByRole('button', { name: 'React with 👍' }).click();
    await message(a, BEN, 'hello').getByRole('button', { name: /^👍 1/ }).waitFor({ timeout: 15_000 });
    await (await action(a, BEN, 'hello', 'React')).click();
    await a.getByRole('textbox', { name: 'Any emoji' }).fill('🎉');
    await a.getByRole('button', { name: 'Add', exact: true }).click();
    await message(b, ANN, 'hello').getByRole('button', { name: /^🎉 1/ }).waitFor({ timeout: 15_000 });
    await a.screenshot({ path: `${SHOTS}/reactions-light.png` });

    await message(b, ANN, 'hello')
      .getByRole('button', { name: /^👍 1, yours/ })
      .click();
    await expect
      .poll(() => message(a, BEN, 'hello').getByRole('button', { name: /^👍/ }).count(), { timeout: 15_000 })
      .toBe(0);
  });

  it('Reply: the composer shows the quote; the reply shows it above; clicking it highlights the original', async () => {
    const a = ann.page;
    const b = ben.page;
    await say(b, 'what time tomorrow?');
    await bubble(a, BEN.toLowerCase(), 'what time tomorrow?').waitFor({ timeout: 15_000 });
    await (await action(a, BEN, 'what time tomorrow?', 'Reply')).click();
    await a.getByText('Replying to').waitFor();
    await a.getByRole('button', { name: 'Cancel reply' }).waitFor();
    await a.screenshot({ path: `${SHOTS}/composer-reply-light.png` });
    await say(a, 'ten o’clock');
    const reply = message(b, ANN, 'ten o’clock');
    const quote = reply.getByRole('button', { name: /^Reply to You: what time tomorrow\?/ });
    await quote.waitFor({ timeout: 15_000 });
    await quote.click();
    await expect
      .poll(() => message(b, ANN, 'what time tomorrow?').first().getAttribute('class'))
      .toContain('highlighted');
  });

  it('Edit: Escape cancels; saving changes the text for both and marks it edited', async () => {
    const a = ann.page;
    const b = ben.page;
    await say(a, 'see you at 10');
    await bubble(b, ANN.toLowerCase(), 'see you at 10').waitFor({ timeout: 15_000 });
    await (await action(a, BEN, 'see you at 10', 'Edit')).click();
    const box = a.getByRole('textbox', { name: 'Message' });
    await expect.poll(() => box.inputValue()).toBe('see you at 10');
    await box.press('Escape');
    await expect.poll(() => a.getByRole('button', { name: 'Cancel edit' }).count()).toBe(0);
    await expect.poll(() => box.inputValue()).toBe('');

    await (await action(a, BEN, 'see you at 10', 'Edit')).click();
    await a.screenshot({ path: `${SHOTS}/composer-edit-light.png` });
    await box.fill('see you at 11');
    await box.press('Enter');
    const edited = message(b, ANN, 'see you at 11');
    await edited.waitFor({ timeout: 15_000 });
    await edited.getByText('edited', { exact: true }).waitFor();
    expect(await message(b, ANN, 'see you at 10').count()).toBe(0);
  });

  it('Delete for everyone: both see "This message was deleted"', async () => {
    const a = ann.page;
    const b = ben.page;
    await say(a, 'sent to the wrong chat');
    await bubble(b, ANN.toLowerCase(), 'sent to the wrong chat').waitFor({ timeout: 15_000 });
    await (await action(a, BEN, 'sent to the wrong chat', 'Delete for everyone')).click();
    await message(b, ANN, 'This message was deleted').waitFor({ timeout: 15_000 });
    await message(a, BEN, 'This message was deleted').waitFor();
    expect(await message(b, ANN, 'sent to the wrong chat').count()).toBe(0);
    // Someone else's message offers no Edit and no Delete for everyone.
    const theirs = message(a, BEN, 'what time tomorrow?').first();
    await theirs.hover();
    expect(await theirs.getByRole('button', { name: 'Edit', exact: true }).count()).toBe(0);
    expect(await theirs.getByRole('button', { name: 'Delete for everyone', exact: true }).count()).toBe(0);
  });

  it('Delete for me: gone here, still there for the other person', async () => {
    const a = ann.page;
    const b = ben.page;
    await say(b, 'a note just for now');
    await bubble(a, BEN.toLowerCase(), 'a note just for now').waitFor({ timeout: 15_000 });
    await (await action(a, BEN, 'a note just for now', 'Delete for me')).click();
    await expect.poll(() => message(a, BEN, 'a note just for now').count(), { timeout: 15_000 }).toBe(0);
    expect(await message(b, ANN, 'a note just for now').count()).toBe(1);
  });

  it('the composer counts encoded bytes: text exactly at the limit is sent and received, one byte more is refused', async () => {
    const a = ann.page;
    const b = ben.page;
    const box = a.getByRole('textbox', { name: 'Message' });
    const send = a.getByRole('button', { name: 'Send', exact: true });
    // '€' is 3 bytes in UTF-8: the text is MAX_TEXT_BYTES bytes but a third as many characters.
    const euros = Math.floor((MAX_TEXT_BYTES - 6) / 3);
    const exact = `limit ${'€'.repeat(euros)}${'x'.repeat(MAX_TEXT_BYTES - 6 - 3 * euros)}`;
    await box.fill(`${exact}y`);
    await a.getByText('1 bytes too long').waitFor();
    expect(await send.isDisabled()).toBe(true);
    await box.press('Enter');
    await a.getByRole('alert').filter({ hasText: 'too long' }).waitFor();
    expect(await box.inputValue()).toBe(`${exact}y`);

    await box.fill(exact);
    await a.getByText('0 bytes left').waitFor();
    expect(await send.isDisabled()).toBe(false);
    await box.press('Enter');
    const got = message(b, ANN, 'limit €€€');
    await got.waitFor({ timeout: 20_000 });
    expect(await got.locator('.text').textContent()).toBe(exact);
  });

  it('the toolbar is reachable with the keyboard', async () => {
    const a = ann.page;
    const m = message(a, BEN, 'ten o’clock');
    await m.getByRole('button', { name: 'Reply', exact: true }).focus();
    await a.keyboard.press('ArrowRight');
    expect(await a.evaluate(() => document.activeElement?.textContent)).toBe('React');
    await a.keyboard.press('Enter');
    await a.getByRole('group', { name: 'Pick a reaction' }).waitFor();
    await a.keyboard.press('Escape');
    await expect.poll(() => a.getByRole('group', { name: 'Pick a reaction' }).count()).toBe(0);
  });

  it('axe finds no serious violation in light and dark; screenshots', async () => {
    const a = ann.page;
    await a.mouse.move(0, 0);
    const m = message(a, BEN, 'ten o’clock');
    await m.hover();
    expect(await seriousViolations(a, 'conversation with actions (light)')).toEqual([]);
    await a.screenshot({ path: `${SHOTS}/conversation-light.png` });
    await setTheme(a, 'Dark', BEN.toLowerCase());
    await conversationLog(a, BEN.toLowerCase()).waitFor();
    await message(a, BEN, 'ten o’clock').hover();
    await (await action(a, BEN, 'hello', 'React')).click();
    expect(await seriousViolations(a, 'conversation with actions (dark)')).toEqual([]);
    await a.screenshot({ path: `${SHOTS}/conversation-dark.png` });
    await a.keyboard.press('Escape');
    await setTheme(a, 'Light', BEN.toLowerCase());
  });

  it('Retry: a send the relay refused keeps its text with Retry and Delete; Retry delivers it', async () => {
    const a = ann.page;
    await ben.page.close(); // ben's mailbox fills while no tab of his is open
    let failed: string | null = null;
    const sent: string[] = [];
    for (let i = 0; i < 12 && failed === null; i++) {
      const text = `while ben is away ${i}`;
      await say(a, text);
      const m = message(a, BEN, text);
      const retry = m.getByRole('button', { name: 'Retry', exact: true });
      const settled = async () =>
        (await retry.count()) > 0 ? 'failed' : (await m.getAttribute('data-status')) !== 'pending' ? 'sent' : '';
      await expect.poll(settled, { timeout: 15_000 }).not.toBe('');
      if ((await settled()) === 'failed') failed = text;
      else sent.push(text);
    }
    expect(failed).not.toBeNull();
    const m = message(a, BEN, failed!);
    await m.getByRole('button', { name: 'Delete', exact: true }).waitFor();
    await m.scrollIntoViewIfNeeded();
    await a.screenshot({ path: `${SHOTS}/failed-light.png` });
    expect(await seriousViolations(a, 'failed message (light)')).toEqual([]);
    await setTheme(a, 'Dark', BEN.toLowerCase());
    await message(a, BEN, failed!).scrollIntoViewIfNeeded();
    await a.screenshot({ path: `${SHOTS}/failed-dark.png` });
    expect(await seriousViolations(a, 'failed message (dark)')).toEqual([]);
    await setTheme(a, 'Light', BEN.toLowerCase());

    const b = await ben.context.newPage();
    await b.goto(relay.url);
    await b.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await b.getByRole('button', { name: 'Unlock', exact: true }).click();
    await b
      .getByRole('button', { name: new RegExp(`^${ANN.toLowerCase()}`) })
      .first()
      .click({ timeout: 30_000 });
    // Ben's tab drains his mailbox (everything the relay did store arrives, and is acknowledged).
    const last = sent.at(-1);
    if (last !== undefined) await bubble(b, ANN.toLowerCase(), last).waitFor({ timeout: 20_000 });
    else await conversationLog(b, ANN.toLowerCase()).waitFor({ timeout: 20_000 });

    // Retry; the acknowledgement of ben's last batch may still be on its way, so a retry may fail once more.
    const retryButton = message(a, BEN, failed!).getByRole('button', { name: 'Retry', exact: true });
    for (let attempt = 0; attempt < 5; attempt++) {
      const failedId = await message(a, BEN, failed!).first().getAttribute('data-id');
      await retryButton.first().click();
      // The failed entry goes away once the retry is queued (under a new id).
      await expect
        .poll(() => conversationLog(a, BEN.toLowerCase()).locator(`li[data-id="${failedId}"]`).count())
        .toBe(0);
      const outcome = await expect
        .poll(
          async () =>
            (await bubble(b, ANN.toLowerCase(), failed!).count()) > 0
              ? 'delivered'
              : (await retryButton.count()) > 0
                ? 'failed'
                : '',
          { timeout: 20_000 },
        )
        .not.toBe('')
        .then(async () => ((await bubble(b, ANN.toLowerCase(), failed!).count()) > 0 ? 'delivered' : 'failed'));
      if (outcome === 'delivered') break;
    }
    await bubble(b, ANN.toLowerCase(), failed!).waitFor({ timeout: 20_000 });
    await expect.poll(() => message(a, BEN, failed!).getByRole('button', { name: 'Retry' }).count()).toBe(0);
    // The retried text was sent once: one copy on each side.
    expect(await message(a, BEN, failed!).count()).toBe(1);
  });

  it('Reply: a quote of a message older than the loaded page loads older pages until the original shows', async () => {
    const a = ann.page;
    const b = ben.context.pages()[0]!;
    // This relay keeps at most 8 unacknowledged entries per mailbox (for Retry, above), and a send that finds ben's
    // mailbox full fails. On a busy machine his browser falls behind ann's typing: she waits for the delivery tick of
    // every fourth message, so that at most four are on their way at once.
    const tick = (text: string) =>
      conversationLog(a, BEN.toLowerCase())
        .locator('li.message')
        .filter({ has: a.locator('.text', { hasText: new RegExp(`^${text}$`) }) })
        .getAttribute('data-status');
    const delivered = async (text: string) => {
      await expect
        .poll(() => tick(text), { timeout: 30_000 })
        .toMatch(/^(delivered|read)$/)
        .catch(async (e: unknown) => {
          throw new Error(
            `"${text}" was never delivered. Ann's browser shows ${await shownIn(ann, a, BEN.toLowerCase())}; ` +
              `ben's shows ${await shownIn(ben, b, ANN.toLowerCase())}`,
            { cause: e },
          );
        });
    };
    await say(a, 'anchor far back');
    await delivered('anchor far back');
    for (let i = 0; i < 55; i++) {
      await say(a, `filler ${i}`);
      if (i % 4 === 3 || i === 54) await delivered(`filler ${i}`);
    }
    await bubble(b, ANN.toLowerCase(), 'filler 54').waitFor({ timeout: 15_000 });
    await (await action(b, ANN, 'anchor far back', 'Reply')).click();
    await say(b, 'answering the anchor');
    await bubble(a, BEN.toLowerCase(), 'answering the anchor').waitFor({ timeout: 15_000 });
    // A reload: the conversation loads its newest page again, without the anchor.
    await a.reload();
    await a.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await a.getByRole('button', { name: 'Unlock', exact: true }).click();
    await a
      .getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}`) })
      .first()
      .click({ timeout: 30_000 });
    await bubble(a, BEN.toLowerCase(), 'answering the anchor').waitFor({ timeout: 15_000 });
    expect(await original(a, BEN, 'anchor far back').count()).toBe(0);
    await message(a, BEN, 'answering the anchor')
      .getByRole('button', { name: /^Reply to You: anchor far back/ })
      .click();
    await expect
      .poll(() => original(a, BEN, 'anchor far back').getAttribute('class'), { timeout: 15_000 })
      .toContain('highlighted');
  });

  it('no page error', () => {
    expect(ann.errors).toEqual([]);
  });
});
