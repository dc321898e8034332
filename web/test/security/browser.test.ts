// The web app under attack in a real Chromium: a strict CSP on every route (errors and 404s included), XSS payloads
// in messages and group names render as literal text with no script run, no foreign request and no CSP violation,
// usernames cannot carry markup, and IndexedDB holds neither private keys nor message text in the clear.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCrypto } from '../../src/client/crypto-loader';
import { OwnKeys } from '../../src/client/own-keys';
import {
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
} from '../e2e/harness';
import { postAccount } from '../support/accounts';
import { startTestRelay, type TestRelay } from '../support/relay';

const reason = skipReason();
if (reason) console.warn(reason);

const stamp = Date.now().toString(36);
const ALICE = `xss_alice_${stamp}`;
const BOB = `xss_bob_${stamp}`;
const CAROL = `xss_carol_${stamp}`; // a group needs two other members; carol is a bare relay account
const PASSWORD = 'a long enough password';

/** Each payload sets window.__xss or loads from a foreign host if it ever runs or renders as markup. */
const PAYLOADS = [
  '<img src=x onerror="window.__xss=1">',
  '<script>window.__xss=1</script>',
  '"><svg onload=window.__xss=1>',
  '<a href="javascript:window.__xss=1">click me</a>',
  'javascript:window.__xss=1',
  '<iframe src="https://evil.example/frame"></iframe>',
  '<img src="https://evil.example/pixel.png">',
  '<style>body{background:url(https://evil.example/css)}</style>',
  '<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>',
  "{{constructor.constructor('window.__xss=1')()}}",
];
const GROUP_NAME = '<img src=x onerror=window.__xss=1> crew';

/**
 * A stored leaf and what it may hide: every base64, base64url or hex token in its bytes decoded again, `depth` levels
 * deep (a sealed record stored in the clear would be JSON whose byte fields read `{"$b":"<base64url>"}`).
 */
function decodedForms(where: string, bytes: Buffer, depth: number): { where: string; bytes: Buffer }[] {
  const out = [{ where, bytes }];
  if (depth === 0) return out;
  for (const [token] of bytes.toString('latin1').matchAll(/[A-Za-z0-9+/_-]{16,}={0,2}/g)) {
    const decoded = [Buffer.from(token, 'base64')]; // Node reads both base64 alphabets
    if (/^(?:[0-9a-fA-F]{2})+$/.test(token)) decoded.push(Buffer.from(token, 'hex'));
    for (const d of decoded) out.push(...decodedForms(`${where} (decoded)`, d, depth - 1));
  }
  return out;
}

/** Parses a CSP header into directive → sources. */
function directives(header: string | null): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of (header ?? '').split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), sources);
  }
  return out;
}

function expectStrictCsp(header: string | null, what: string): void {
  const csp = directives(header);
  expect(csp.get('default-src'), what).toEqual(["'self'"]);
  const script = csp.get('script-src') ?? [];
  expect(script, what).toEqual(expect.arrayContaining(["'self'"]));
  for (const source of [...script, ...(csp.get('style-src') ?? [])]) {
    expect(source, what).not.toMatch(
      /^'unsafe-inline'$|^'unsafe-eval'$|^'unsafe-hashes'$|^\*$|^https?:$|^data:$|nonce-|sha\d+-/,
    );
  }
  expect(csp.get('style-src'), what).toEqual(["'self'"]);
  expect(csp.get('frame-ancestors'), what).toEqual(["'none'"]);
  expect(csp.get('connect-src'), what).toEqual(["'self'"]);
}

describe.skipIf(reason !== null)('the web app under attack (Chromium)', () => {
  let dist: string;
  let relay: TestRelay;
  let browser: Browser;
  let alice: WatchedPage;
  let bob: WatchedPage;
  const foreign: string[] = [];

  async function guarded(): Promise<WatchedPage> {
    const w = await watchedPage(browser);
    await fence(w.context);
    return w;
  }

  /** Aborts and records every request to a host other than this machine. */
  async function fence(context: BrowserContext): Promise<void> {
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (/^(https?|wss?):$/.test(url.protocol) && !['localhost', '127.0.0.1'].includes(url.hostname)) {
        foreign.push(url.href);
        return route.abort();
      }
      return route.continue();
    });
  }

  async function signUp(page: Page, name: string): Promise<void> {
    await signUpInBrowser(page, relay.url, name, PASSWORD);
  }

  beforeAll(async () => {
    dist = buildWeb();
    relay = await startTestRelay({ WEB_DIST: dist });
    browser = await launch();
    [alice, bob] = await Promise.all([guarded(), guarded()]);
    await Promise.all([signUp(alice.page, ALICE), signUp(bob.page, BOB)]);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    removeBuild(dist);
  });

  it('sends a strict CSP (no inline script or style) on every route, 404s and errors included', async () => {
    const asset = readdirSync(join(dist, 'assets')).find((f) => f.endsWith('.js'))!;
    const requests: [string, RequestInit?][] = [
      ['/'],
      ['/index.html'],
      ['/a/deep/link?x=<script>'],
      [`/assets/${asset}`],
      ['/assets/missing.js'],
      ['/favicon.svg'],
      ['/api/health'],
      ['/api/no-such-route'],
      ['/api/accounts', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' }],
      ['/api/devices/self/prekeys'],
      ['/', { method: 'DELETE' }],
      ['/socket.io/?EIO=4&transport=polling'],
      ['/socket.io/?EIO=3&transport=polling'],
    ];
    for (const [path, init] of requests) {
      const res = await fetch(new URL(path, relay.url), init);
      await res.arrayBuffer();
      expectStrictCsp(res.headers.get('content-security-policy'), `${init?.method ?? 'GET'} ${path} (${res.status})`);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('refuses usernames that are not [A-Za-z0-9_], so a name can never carry markup', async () => {
    const c = await loadCrypto();
    const keys = c.createAccountKeys({ oneTimePrekeyCount: 1 });
    for (const username of ['<img src=x onerror=alert(1)>', 'bob"><script>', 'al ice', 'ålice', 'a&amp;b']) {
      expect((await postAccount(relay.url, username, keys)).status).toBe(400);
    }
    const w = await guarded();
    await w.page.goto(relay.url);
    await w.page.getByRole('textbox', { name: 'Username' }).fill('<img src=x onerror=window.__xss=1>');
    await w.page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await w.page.getByLabel('Confirm password').fill(PASSWORD);
    await w.page.getByRole('button', { name: 'Create account', exact: true }).click();
    // Refused (by the page, or else by the relay): an error is shown and the chat never opens.
    await w.page.getByRole('alert').waitFor({ timeout: 30_000 });
    expect(await w.page.getByRole('searchbox', { name: 'Find people' }).count()).toBe(0);
    expect(await w.page.getByRole('button', { name: 'Create account', exact: true }).isEnabled()).toBe(true);
    expect(await w.page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    expect(w.dialogs).toEqual([]);
    await w.context.close();
  });

  it('lets the page open a WebSocket to its own origin and to no other', async () => {
    const w = await guarded();
    await w.page.goto(relay.url);
    const page = new URL(relay.url);
    const path = '/socket.io/?EIO=4&transport=websocket';
    const opens = (target: string) =>
      w.page.evaluate(
        (u) =>
          new Promise<string>((resolve) => {
            try {
              const ws = new WebSocket(u);
              ws.onopen = () => {
                ws.close();
                resolve('open');
              };
              ws.onerror = () => resolve('error');
            } catch (err) {
              resolve(`threw ${(err as Error).name}`);
            }
          }),
        target,
      );
    expect(await opens(`ws://${page.host}${path}`)).toBe('open');
    // The same relay under another name is another origin: without the CSP it would open.
    const other = `ws://127.0.0.1:${page.port}${path}`;
    expect(page.hostname).not.toBe('127.0.0.1');
    expect(await opens(other)).not.toBe('open');
    await expect.poll(() => cspViolations(w).join('\n'), { timeout: 10_000 }).toContain('connect-src');
    await w.context.close();
  });

  it('renders XSS payloads in messages and a group name as literal text: no script, no foreign request, no CSP report', async () => {
    const a = alice.page;
    const b = bob.page;
    const c = await loadCrypto();
    const carolKeys = c.createAccountKeys({ oneTimePrekeyCount: 5 });
    const carol = await postAccount(relay.url, CAROL, carolKeys, OwnKeys.initialKemPrekeys(c, carolKeys.identity));
    expect(carol.status).toBe(201);
    // the group first: bob is then not yet in alice's conversation list, only in the "Add people" results
    await a.getByRole('button', { name: 'New group' }).click();
    await a.getByRole('textbox', { name: 'Group name' }).fill(GROUP_NAME);
    for (const name of [BOB, CAROL]) {
      await a.getByRole('searchbox', { name: 'Add people' }).fill(name);
      await a.getByRole('button', { name: name.toLowerCase(), exact: true }).click();
    }
    await a.getByRole('button', { name: 'Create group' }).click();
    await conversationLog(a, GROUP_NAME).waitFor({ timeout: 15_000 });
    await a.getByRole('textbox', { name: 'Message' }).fill(PAYLOADS[0]!);
    await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    const group = b.getByRole('button', { name: /\(group\)/ });
    await group.first().waitFor({ timeout: 20_000 });
    expect(await group.first().textContent()).toContain(GROUP_NAME);
    await group.first().click();
    await conversationLog(b, GROUP_NAME)
      .locator('.message .text')
      .filter({ hasText: PAYLOADS[0]! })
      .first()
      .waitFor({ timeout: 15_000 });

    await a.getByRole('searchbox', { name: 'Find people' }).fill(BOB);
    await a.getByRole('button', { name: BOB.toLowerCase(), exact: true }).click();
    await conversationLog(a, BOB).waitFor({ timeout: 15_000 });
    for (const payload of PAYLOADS) {
      await a.getByRole('textbox', { name: 'Message' }).fill(payload);
      await a.getByRole('textbox', { name: 'Message' }).press('Enter');
    }
    await b.getByRole('button', { name: new RegExp(`^${ALICE.toLowerCase()}`) }).click();
    const texts = () => conversationLog(b, ALICE).locator('.message .text').allTextContents();
    await expect.poll(texts, { timeout: 20_000 }).toEqual(expect.arrayContaining(PAYLOADS));
    const sent = await conversationLog(a, BOB).locator('.message .text').allTextContents();
    expect(sent.sort()).toEqual([...PAYLOADS].sort());

    for (const [w, peer] of [
      [alice, BOB],
      [bob, ALICE],
    ] as const) {
      expect(await w.page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
      const markup = 'img, iframe, script, style, svg a, a[href^="javascript"]';
      expect(await conversationLog(w.page, peer).locator(markup).count()).toBe(0);
      expect(w.dialogs).toEqual([]);
      expect(w.errors).toEqual([]);
      const fromApp = cspViolations(w);
      await proveCspRecorder(w);
      expect(fromApp).toEqual([]);
    }
    expect(foreign).toEqual([]);
  });

  // At rest, in the real browser. The unit proofs beside it: web/test/client/vault.test.ts (a sealed record's
  // ciphertext does not contain its plaintext; slot and key binding) and web/test/client/store.test.ts (message text
  // stays out of the stored rows).
  it('keeps no private key and no message text in the clear in IndexedDB, in any encoding', async () => {
    // The test knows alice's password: recover her real private keys from her encrypted backup on the relay.
    const c = await loadCrypto();
    const kdf = (await (await fetch(new URL(`/api/accounts/${ALICE}/kdf`, relay.url))).json()) as {
      salt: string;
      opslimit: number;
      memlimit: number;
    };
    const keys = c.derivePasswordKeys(PASSWORD, kdf);
    const session = (await (
      await fetch(new URL('/api/sessions', relay.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: ALICE, authKey: keys.authKeyBase64Url }),
      })
    ).json()) as { accessToken: string; userId: string };
    const backup = (await (
      await fetch(new URL('/api/backup', relay.url), { headers: { authorization: `Bearer ${session.accessToken}` } })
    ).json()) as { backup: string };
    const sealed = c.fromBase64Url(backup.backup);
    const backupKey = c.unwrapBackupKey(keys.wrapKey, session.userId, sealed);
    const identity = c.openAccountBackup(backupKey, session.userId, sealed).identity;
    const secrets = [identity.signingKey.slice(0, 32), identity.dhPrivateKey, keys.wrapKey];

    // Every leaf of every record in every database of alice's profile: bytes as they are, strings as UTF-8.
    const dump = await alice.page.evaluate(async () => {
      const leaves: { where: string; base64: string }[] = [];
      const cryptoKeys: { where: string; extractable: boolean }[] = [];
      const base64 = (bytes: Uint8Array) => {
        let binary = '';
        for (const byte of bytes) binary += String.fromCharCode(byte);
        return btoa(binary);
      };
      const text = (v: string) => base64(new TextEncoder().encode(v));
      const walk = (v: unknown, where: string): void => {
        if (v instanceof ArrayBuffer) leaves.push({ where, base64: base64(new Uint8Array(v)) });
        else if (ArrayBuffer.isView(v)) {
          leaves.push({ where, base64: base64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) });
        } else if (typeof CryptoKey !== 'undefined' && v instanceof CryptoKey) {
          cryptoKeys.push({ where, extractable: v.extractable });
        } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
        else if (typeof v === 'object' && v !== null) {
          for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
        } else if (v !== undefined && v !== null) leaves.push({ where, base64: text(String(v)) });
      };
      const req = <T>(r: IDBRequest<T>) =>
        new Promise<T>((resolve, reject) => {
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(r.error);
        });
      let records = 0;
      for (const info of await indexedDB.databases()) {
        const db = await req(indexedDB.open(info.name!));
        for (const store of Array.from(db.objectStoreNames)) {
          const os = db.transaction(store, 'readonly').objectStore(store);
          const [keys, values] = await Promise.all([req(os.getAllKeys()), req(os.getAll())]);
          keys.forEach((key, i) => walk(key, `${db.name}/${store}#${i}.key`));
          values.forEach((value, i) => walk(value, `${db.name}/${store}#${i}.value`));
          records += values.length;
        }
        db.close();
      }
      return { leaves, cryptoKeys, records };
    });
    expect(dump.records).toBeGreaterThan(20); // the database is really there: keys, sessions, messages

    const blobs = dump.leaves.flatMap(({ where, base64 }) => decodedForms(where, Buffer.from(base64, 'base64'), 3));
    const holders = (needle: Buffer) => blobs.filter((b) => b.bytes.includes(needle)).map((b) => b.where);

    // The search finds what is there: alice's public KDF salt and her name are kept in the clear.
    expect(holders(Buffer.from(kdf.salt, 'base64url'))).not.toEqual([]);
    expect(holders(Buffer.from(ALICE))).not.toEqual([]);

    const found: string[] = [];
    const names = ['signing key seed', 'DH private key', 'wrap key'];
    secrets.forEach((secret, i) => {
      const raw = Buffer.from(secret);
      const forms = ['base64url', 'base64', 'hex'] as const;
      for (const [form, needle] of [
        ['raw', raw] as const,
        ...forms.map((f) => [f, Buffer.from(raw.toString(f))] as const),
      ]) {
        const where = holders(needle);
        if (where.length > 0) found.push(`${names[i]} (${form}) in ${where.join(', ')}`);
      }
    });
    for (const text of [...PAYLOADS, GROUP_NAME, 'window.__xss']) {
      // as typed, and as it reads inside JSON (quotes and backslashes escaped)
      for (const form of new Set([text, JSON.stringify(text).slice(1, -1)])) {
        const where = holders(Buffer.from(form));
        if (where.length > 0) found.push(`${JSON.stringify(form)} in ${where.join(', ')}`);
      }
    }
    expect(found.join('\n')).toBe('');
    for (const key of dump.cryptoKeys) expect(key, key.where).toMatchObject({ extractable: false });
  });
});
