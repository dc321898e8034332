// Key transparency in the browser (issue #16): a relay whose operator swaps a user's identity key in its database,
// without logging it, is caught by the real app in Chromium — sending stops and the conversation says why, in a
// banner that passes axe in the light and the dark theme. "Check again" keeps the block while the key is still not
// the logged one and lifts it once it is; Settings → Key transparency takes a log key and witness keys, refuses bad
// ones, and warns loudly about a key that does not sign the log checked so far. Screenshots in /tmp/shots-kt.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCrypto } from '../../src/client/crypto-loader';
import { OwnKeys } from '../../src/client/own-keys';
import { startTestRelay, type TestRelay } from '../support/relay';
import { buildWeb, launch, relayOnlyAccount, removeBuild, skipReason, watchedPage, type WatchedPage } from './harness';

const reason = skipReason();
if (reason) console.warn(reason);

const SHOTS = '/tmp/shots-kt';
const stamp = Date.now().toString(36);
const ANN = `ktann_${stamp}`;
const BEN = `ktben_${stamp}`;
const CAL = `ktcal_${stamp}`;
const PASSWORD = 'a long enough password';
/** Ben's real identity key, as the relay logged it (the operator swaps it in the database, then puts it back). */
let bensKey: Buffer | null = null;

/**
 * An account made over the relay's API with a known auth key, signed in on a second device that uploads its keys (the
 * same signed prekeys: the relay checks only that the identity key signed them). Both devices are in the log.
 */
async function accountWithTwoDevices(url: string, username: string): Promise<{ second: string }> {
  const c = await loadCrypto();
  const keys = c.createAccountKeys({ oneTimePrekeyCount: 5 });
  const kem = OwnKeys.initialKemPrekeys(c, keys.identity);
  const authKey = c.toBase64Url(c.randomBytes(32));
  const call = async (method: string, path: string, body: unknown, token?: string) => {
    const res = await fetch(new URL(path, url), {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}`);
    return res.status === 204 ? null : ((await res.json()) as { deviceId: string; accessToken: string });
  };
  const kemKeys = OwnKeys.kemUpload(c, kem.lastResort, kem.oneTime);
  const salt = c.toBase64Url(c.randomBytes(16));
  await call('POST', '/api/accounts', { username, salt, authKey, ...keys.upload, ...kemKeys });
  const second = (await call('POST', '/api/sessions', { username, authKey }))!;
  const upload = { signedPrekey: keys.upload.signedPrekey, kemLastResortPrekey: kemKeys.kemLastResortPrekey };
  await call('PUT', '/api/devices/self/prekeys', upload, second.accessToken);
  return { second: second.deviceId };
}

async function audit(page: Page, screen: string, theme: 'light' | 'dark'): Promise<string[]> {
  await page.screenshot({ path: `${SHOTS}/${screen}-${theme}.png` });
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${screen} (${theme}) ${v.id}: ${n.target.join(' ')}`));
}

describe.skipIf(reason !== null)('a key swapped behind the log, in the browser', () => {
  let relay: TestRelay;
  let browser: Browser;
  let ann: WatchedPage;
  let dist: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    ann = await watchedPage(browser);
    await ann.page.emulateMedia({ reducedMotion: 'reduce' });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('stops sending and says why in the conversation, in both themes, with no serious axe violation', async () => {
    const a = ann.page;
    await relayOnlyAccount(relay.url, BEN);
    // The operator replaces Ben's identity key in the database; the log still has the real one.
    const db = new Database(join(relay.dataDir, 'weconnect.db'));
    bensKey = (
      db.prepare('SELECT identity_key FROM users WHERE username = ?').get(BEN.toLowerCase()) as { identity_key: Buffer }
    ).identity_key;
    db.prepare('UPDATE users SET identity_key = ? WHERE username = ?').run(randomBytes(32), BEN.toLowerCase());
    db.close();

    await a.goto(relay.url);
    await a.getByRole('textbox', { name: 'Username' }).fill(ANN);
    await a.getByLabel('Password', { exact: true }).fill(PASSWORD);
    const confirm = a.getByLabel('Confirm password', { exact: true });
    if ((await confirm.count()) > 0) await confirm.fill(PASSWORD);
    await a.getByRole('button', { name: 'Create account', exact: true }).click();
    await a.getByRole('searchbox', { name: 'Find people' }).waitFor({ timeout: 30_000 });
    await a.getByRole('searchbox', { name: 'Find people' }).fill(BEN);
    await a.getByRole('button', { name: BEN.toLowerCase(), exact: true }).click();
    await a.getByRole('textbox', { name: 'Message' }).fill('Hello Ben');
    await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    const banner = a.getByRole('alert').filter({ hasText: /Key transparency check failed.*is stopped/ });
    await banner.waitFor({ timeout: 20_000 });
    expect(await banner.textContent()).toMatch(/not the one in its public log.*Sending to .* is stopped/);

    const problems: string[] = [];
    for (const theme of ['light', 'dark'] as const) {
      await a.getByRole('button', { name: 'Settings', exact: true }).click();
      await a.getByRole('radio', { name: theme === 'light' ? 'Light' : 'Dark' }).check();
      await a.getByRole('button', { name: 'Close settings' }).click();
      await a.getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}`) }).click();
      await banner.waitFor();
      problems.push(...(await audit(a, 'kt-banner', theme)));
    }
    expect(problems).toEqual([]);
  });

  it('shows in Settings → Key transparency the log key the relay serves everyone, and the log size checked', async () => {
    const a = ann.page;
    const served = (await (await fetch(`${relay.url}/api/kt/checkpoint`)).json()) as { verifierKey: string };
    await a.getByRole('button', { name: 'Settings', exact: true }).click();
    const section = a.getByRole('region', { name: 'Key transparency' });
    await section.waitFor({ timeout: 15_000 });
    const key = section.locator('[data-key]');
    await key.waitFor({ timeout: 15_000 });
    expect(await key.getAttribute('data-key')).toBe(served.verifierKey);
    expect((await key.textContent())?.replace(/\s/g, '')).toBe(served.verifierKey);
    expect(await section.getByText('On first use of this relay').count()).toBe(1);
    expect(await section.textContent()).toMatch(/Log size checked\s*[1-9][\d,]* entries/);
    expect(await section.getByRole('button', { name: 'Copy log key' }).count()).toBe(1);
    const problems: string[] = [];
    for (const theme of ['light', 'dark'] as const) {
      await a.getByRole('radio', { name: theme === 'light' ? 'Light' : 'Dark' }).check();
      await section.scrollIntoViewIfNeeded();
      problems.push(...(await audit(a, 'kt-settings', theme)));
    }
    expect(problems).toEqual([]);
  });
  it('"Check again" keeps the block while the key is still swapped, and lifts it once it is the logged one', async () => {
    const a = ann.page;
    await a.getByRole('button', { name: 'Close settings' }).click();
    await a.getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}`) }).click();
    const banner = a.getByRole('alert').filter({ hasText: /Key transparency check failed.*is stopped/ });
    await banner.waitFor();
    await banner.getByRole('button', { name: 'Check again', exact: true }).click();
    await banner.getByRole('status').filter({ hasText: 'the check still fails' }).waitFor({ timeout: 20_000 });
    expect(await banner.textContent()).toMatch(/not the one in its public log/);
    const problems: string[] = [];
    for (const theme of ['light', 'dark'] as const) {
      await a.getByRole('button', { name: 'Settings', exact: true }).click();
      await a.getByRole('radio', { name: theme === 'light' ? 'Light' : 'Dark' }).check();
      await a.getByRole('button', { name: 'Close settings' }).click();
      await a.getByRole('button', { name: new RegExp(`^${BEN.toLowerCase()}`) }).click();
      await banner.getByRole('button', { name: 'Check again', exact: true }).click();
      await banner.getByRole('status').filter({ hasText: 'the check still fails' }).waitFor({ timeout: 20_000 });
      problems.push(...(await audit(a, 'kt-check-again-fails', theme)));
    }
    expect(problems).toEqual([]);

    // The operator puts the logged key back: the relay's bundle and its log agree again.
    const db = new Database(join(relay.dataDir, 'weconnect.db'));
    db.prepare('UPDATE users SET identity_key = ? WHERE username = ?').run(bensKey, BEN.toLowerCase());
    db.close();
    await banner.getByRole('button', { name: 'Check again', exact: true }).click();
    await banner.waitFor({ state: 'detached', timeout: 20_000 });
    await a.screenshot({ path: `${SHOTS}/kt-check-again-passed-dark.png` });
  });

  it('stops sending when the relay leaves a logged device of a contact out of the bundle', async () => {
    const a = ann.page;
    const cal = await accountWithTwoDevices(relay.url, CAL);
    // The operator deletes Cal's second device from the database, behind the log: the log still lists it.
    const db = new Database(join(relay.dataDir, 'weconnect.db'));
    db.pragma('foreign_keys = ON');
    expect(db.prepare('DELETE FROM devices WHERE device_id = ?').run(cal.second).changes).toBe(1);
    db.close();
    await a.getByRole('searchbox', { name: 'Find people' }).fill(CAL);
    await a.getByRole('button', { name: CAL.toLowerCase(), exact: true }).click();
    await a.getByRole('textbox', { name: 'Message' }).fill('Hello Cal');
    await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    const banner = a.getByRole('alert').filter({ hasText: /left out a device of this account.*is stopped/ });
    await banner.waitFor({ timeout: 20_000 });
    expect(await banner.getByRole('button', { name: 'Check again', exact: true }).count()).toBe(1);
    await a.screenshot({ path: `${SHOTS}/kt-hidden-device-dark.png` });
  });

  it('takes a log key and witness keys in Settings, refuses bad ones, and warns about a key that does not sign the log', async () => {
    const a = ann.page;
    const c = await loadCrypto();
    const served = (await (await fetch(`${relay.url}/api/kt/checkpoint`)).json()) as { verifierKey: string };
    await a.getByRole('button', { name: 'Settings', exact: true }).click();
    const section = a.getByRole('region', { name: 'Key transparency' });
    const logKey = section.getByRole('textbox', { name: 'Log key', exact: true });
    const witnesses = section.getByRole('textbox', { name: 'Witness keys', exact: true });
    await logKey.waitFor({ timeout: 15_000 });

    await logKey.fill('not a key');
    await section.getByRole('button', { name: 'Save log key', exact: true }).click();
    await section.getByRole('alert').filter({ hasText: 'This is not a log key' }).waitFor();
    expect(await logKey.getAttribute('aria-invalid')).toBe('true');

    // Another relay's key: it does not sign the checkpoint Ann verified, so nothing changes and a warning says so.
    await logKey.fill(c.kt.formatVerifierKey('other.example/log', 1, c.randomBytes(32)));
    await section.getByRole('button', { name: 'Save log key', exact: true }).click();
    const warning = section.getByRole('alert').filter({ hasText: 'does not sign the log this device has checked' });
    await warning.waitFor();
    expect(await section.locator('[data-key]').getAttribute('data-key')).toBe(served.verifierKey);
    expect(await section.getByText('On first use of this relay').count()).toBe(1);

    await witnesses.fill(`${c.kt.formatVerifierKey('witness.example', 1, c.randomBytes(32))}`);
    await section.getByRole('button', { name: 'Save witnesses', exact: true }).click();
    await section.getByRole('alert').filter({ hasText: 'Line 1 is a log key' }).waitFor();

    const problems: string[] = [];
    for (const theme of ['light', 'dark'] as const) {
      await a.getByRole('radio', { name: theme === 'light' ? 'Light' : 'Dark' }).check();
      await warning.scrollIntoViewIfNeeded();
      problems.push(...(await audit(a, 'kt-settings-warning', theme)));
    }
    expect(problems).toEqual([]);
    await section.getByRole('button', { name: 'Keep the current key', exact: true }).click();
    await warning.waitFor({ state: 'detached' });

    // The key the relay serves, given by hand: now "configured".
    await logKey.fill(served.verifierKey);
    await section.getByRole('button', { name: 'Save log key', exact: true }).click();
    await section.getByText('Log key saved. Every check now uses it.').waitFor();
    await section.getByText('Configured (given to this app)').waitFor();

    const witness = c.kt.formatVerifierKey('witness.example', c.kt.SIG_COSIGNATURE, c.randomBytes(32));
    await witnesses.fill(witness);
    await section.getByRole('button', { name: 'Save witnesses', exact: true }).click();
    await section.getByText('Witnesses saved.', { exact: false }).waitFor();
    const required = section.getByRole('list', { name: 'Witnesses required' });
    await required.waitFor();
    expect(await required.textContent()).toContain(`witness.example (key id ${witness.split('+')[1]})`);
    for (const theme of ['light', 'dark'] as const) {
      await a.getByRole('radio', { name: theme === 'light' ? 'Light' : 'Dark' }).check();
      await required.scrollIntoViewIfNeeded();
      problems.push(...(await audit(a, 'kt-settings-configured', theme)));
    }
    expect(problems).toEqual([]);
  });
});
