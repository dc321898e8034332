// Groups in a real Chromium, three people in three browser contexts: ann creates a group with ben and cat (cat's
// unread count rises), renames it with "Rename group", makes ben admin with "Make admin"; ben renames it; cat sees
// both renames and the notices; ann sets a group picture that ben sees; ann removes cat only after confirming, and
// cat sees it; ann demotes ben with "Remove admin". Screenshots (light and dark) and an axe audit of the group panels, in /tmp/shots-groups.
import { mkdirSync } from 'node:fs';
import { AxeBuilder } from '@axe-core/playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestRelay, type TestRelay } from '../support/relay';
import {
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

const stamp = Date.now().toString(36);
const ANN = `ann_${stamp}`;
const BEN = `ben_${stamp}`;
const CAT = `cat_${stamp}`;
const ann_ = ANN.toLowerCase();
const ben_ = BEN.toLowerCase();
const cat_ = CAT.toLowerCase();
const PASSWORD = 'a long enough password';
const SHOTS = '/tmp/shots-groups';

async function signUp(page: Page, url: string, name: string): Promise<void> {
  await signUpInBrowser(page, url, name, PASSWORD);
}

/** The sidebar button of a group conversation (its accessible name starts with the group's name). */
function groupButton(page: Page, name: string) {
  return page.getByRole('button', { name: new RegExp(`^${name} \\(group\\)`) });
}

/** A notice line in the group's log. */
function notice(page: Page, group: string, text: string) {
  return conversationLog(page, group).locator('.notice-line').filter({ hasText: text });
}

/** The list item of one member in the members panel. */
function memberRow(page: Page, name: string) {
  return page.getByRole('listitem').filter({ hasText: name });
}

async function openMembers(page: Page, group: string): Promise<void> {
  await groupButton(page, group).click({ timeout: 20_000 });
  await conversationLog(page, group).waitFor({ timeout: 15_000 });
  await page.getByRole('button', { name: 'Members' }).click();
  await page.getByRole('heading', { name: `${group}: members` }).waitFor();
}

async function setTheme(page: Page, theme: 'Light' | 'Dark', group: string): Promise<void> {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByRole('radio', { name: theme }).check();
  await openMembers(page, group);
}

/** Moves the mouse off the controls and waits for running transitions, so pictures and audits see settled colours. */
async function settle(page: Page): Promise<void> {
  await page.mouse.move(1, 700);
  await page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished)));
}

async function shoot(page: Page, file: string): Promise<void> {
  await settle(page);
  await page.screenshot({ path: `${SHOTS}/${file}` });
}

/** Serious and critical axe violations inside `selector`. */
async function seriousViolations(page: Page, selector: string): Promise<string[]> {
  await settle(page);
  const result = await new AxeBuilder({ page }).include(selector).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

describe.skipIf(reason !== null)('groups in Chromium', () => {
  let relay: TestRelay;
  let browser: Browser;
  let ann: WatchedPage;
  let ben: WatchedPage;
  let cat: WatchedPage;
  let dist: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
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

  it('raises the unread count of a person added to a group', async () => {
    const a = ann.page;
    await a.getByRole('button', { name: 'New group' }).click();
    await a.getByRole('textbox', { name: 'Group name' }).fill('Band practice');
    for (const name of [BEN, CAT]) {
      await a.getByRole('searchbox', { name: 'Add people' }).fill(name);
      await a.getByRole('button', { name: name.toLowerCase(), exact: true }).click();
    }
    await a.getByRole('button', { name: 'Create group' }).click();
    await conversationLog(a, 'Band practice').waitFor({ timeout: 15_000 });
    await cat.page
      .getByRole('button', { name: /^Band practice \(group\), 1 unread( |$)/ })
      .waitFor({ timeout: 20_000 });
  });

  it('renames with Rename group, makes ben admin with Make admin; ben renames; cat sees both renames and the notices', async () => {
    const a = ann.page;
    await openMembers(a, 'Band practice');
    await a.getByRole('textbox', { name: 'Group name' }).fill('Band night');
    await a.getByRole('button', { name: 'Rename group' }).click();
    await a.getByRole('heading', { name: 'Band night: members' }).waitFor({ timeout: 15_000 });
    await memberRow(a, ben_).getByRole('button', { name: 'Make admin', exact: true }).click();
    await memberRow(a, ben_).getByText('Admin', { exact: true }).waitFor({ timeout: 15_000 });

    const b = ben.page;
    await openMembers(b, 'Band night');
    // Ben is admin now: he has the controls, and renames the group.
    await memberRow(b, cat_).getByRole('button', { name: 'Make admin', exact: true }).waitFor({ timeout: 15_000 });
    await b.getByRole('textbox', { name: 'Group name' }).fill('Band night at eight');
    await b.getByRole('button', { name: 'Rename group' }).click();
    await b.getByRole('heading', { name: 'Band night at eight: members' }).waitFor({ timeout: 15_000 });

    const c = cat.page;
    await groupButton(c, 'Band night at eight').click({ timeout: 20_000 });
    for (const text of [
      `${ann_} added you`,
      `${ann_} renamed the group to “Band night”`,
      `${ann_} made ${ben_} an admin`,
      `${ben_} renamed the group to “Band night at eight”`,
    ]) {
      await notice(c, 'Band night at eight', text).waitFor({ timeout: 15_000 });
    }
    // Cat is not an admin: no rename or admin controls for her.
    await c.getByRole('button', { name: 'Members' }).click();
    await c.getByText('Only admins can change the name and picture.').waitFor();
    expect(await c.getByRole('button', { name: 'Rename group' }).count()).toBe(0);
    expect(await c.getByRole('button', { name: 'Make admin' }).count()).toBe(0);
    await c.getByRole('button', { name: 'Back to the conversation' }).click();
    await shoot(c, 'notices-light.png');
    expect(await seriousViolations(c, '.notice-line')).toEqual([]);
  });

  it('sets a group picture that the other members see', async () => {
    const a = ann.page;
    await openMembers(a, 'Band night at eight');
    const png = await a.evaluate(() => {
      const canvas = document.createElement('canvas');
      canvas.width = 600;
      canvas.height = 400;
      const g = canvas.getContext('2d')!;
      g.fillStyle = '#e0563b';
      g.fillRect(0, 0, 600, 400);
      g.fillStyle = '#2a3f8f';
      g.beginPath();
      g.arc(300, 200, 150, 0, Math.PI * 2);
      g.fill();
      return canvas.toDataURL('image/png').split(',')[1]!;
    });
    await a.getByLabel('Group picture').setInputFiles({
      name: 'band.png',
      mimeType: 'image/png',
      buffer: Buffer.from(png, 'base64'),
    });
    await a.getByRole('img', { name: 'Group picture' }).waitFor({ timeout: 15_000 });
    const b = ben.page;
    await b.getByRole('button', { name: 'Back to the conversation' }).click();
    await notice(b, 'Band night at eight', `${ann_} changed the group picture`).waitFor({ timeout: 15_000 });
    await b.getByRole('button', { name: 'Members' }).click();
    const img = b.getByRole('img', { name: 'Group picture' });
    await img.waitFor({ timeout: 15_000 });
    // Cropped to a square and drawn at 256 px in ann's browser.
    expect(await img.evaluate((el: HTMLImageElement) => [el.naturalWidth, el.naturalHeight])).toEqual([256, 256]);
  });

  it('removes cat only after ann confirms, and cat sees it', async () => {
    const a = ann.page;
    await memberRow(a, cat_).getByRole('button', { name: 'Remove member', exact: true }).click();
    const confirm = a.getByRole('group', { name: `Yes, remove ${cat_}` });
    await confirm.waitFor();
    await shoot(a, 'members-confirm-light.png');
    expect(await seriousViolations(a, 'section[aria-labelledby="members-title"]')).toEqual([]);
    // Nothing happened yet: "Keep" closes the question and cat stays.
    await confirm.getByRole('button', { name: `Keep ${cat_}` }).click();
    expect(await memberRow(a, cat_).count()).toBe(1);
    await memberRow(a, cat_).getByRole('button', { name: 'Remove member', exact: true }).click();
    await a.getByRole('button', { name: `Yes, remove ${cat_}` }).click();
    await a
      .getByRole('group', { name: /members$/ })
      .filter({ hasText: '2 members' })
      .waitFor({ timeout: 15_000 });

    const c = cat.page;
    await notice(c, 'Band night at eight', `${ann_} removed you`).waitFor({ timeout: 20_000 });
    await c.getByText('You are no longer a member of this group.').first().waitFor();
    await ben.page.getByRole('button', { name: 'Back to the conversation' }).click();
    await notice(ben.page, 'Band night at eight', `${ann_} removed ${cat_}`).waitFor({ timeout: 20_000 });
  });

  it('asks before leaving, and the group panels pass axe in light and dark', async () => {
    const b = ben.page;
    await openMembers(b, 'Band night at eight');
    await b.getByRole('button', { name: 'Leave group' }).click();
    await b.getByRole('button', { name: 'Stay in the group' }).waitFor();
    await shoot(b, 'leave-confirm-light.png');
    expect(await seriousViolations(b, 'section[aria-labelledby="members-title"]')).toEqual([]);
    await b.getByRole('button', { name: 'Stay in the group' }).click();
    await b.getByRole('button', { name: 'Leave group' }).waitFor();

    const a = ann.page;
    await shoot(a, 'members-light.png');
    expect(await seriousViolations(a, 'section[aria-labelledby="members-title"]')).toEqual([]);
    await setTheme(a, 'Dark', 'Band night at eight');
    await shoot(a, 'members-dark.png');
    expect(await seriousViolations(a, 'section[aria-labelledby="members-title"]')).toEqual([]);
    await a.getByRole('button', { name: 'Leave group' }).click();
    await a.getByRole('button', { name: 'Stay in the group' }).waitFor();
    await shoot(a, 'leave-confirm-dark.png');
    expect(await seriousViolations(a, 'section[aria-labelledby="members-title"]')).toEqual([]);
    await a.getByRole('button', { name: 'Stay in the group' }).click();
    await a.getByRole('button', { name: 'Back to the conversation' }).click();
    await shoot(a, 'notices-dark.png');
    expect(await seriousViolations(a, '.notice-line')).toEqual([]);
    await setTheme(a, 'Light', 'Band night at eight');
  });

  it('demotes ben with Remove admin: his admin controls go, and the last admin cannot demote herself', async () => {
    const a = ann.page;
    await memberRow(a, ben_).getByRole('button', { name: 'Remove admin', exact: true }).click();
    await memberRow(a, ben_).getByRole('button', { name: 'Make admin', exact: true }).waitFor({ timeout: 15_000 });
    expect(await memberRow(a, `${ann_} (you)`).getByRole('button', { name: 'Remove admin' }).count()).toBe(0);
    const b = ben.page;
    await b.getByText('Only admins can change the name and picture.').waitFor({ timeout: 15_000 });
    expect(await b.getByRole('button', { name: 'Make admin' }).count()).toBe(0);
    await shoot(b, 'members-not-admin-light.png');
    expect(await seriousViolations(b, 'section[aria-labelledby="members-title"]')).toEqual([]);
    await b.getByRole('button', { name: 'Back to the conversation' }).click();
    await notice(b, 'Band night at eight', `${ann_} removed you as admin`).waitFor({ timeout: 15_000 });
  });
});
