// Attachments end to end in Node against the real relay: a file sealed and uploaded by the sender, downloaded and
// opened by the recipient, the sender's other device and group members; what the relay stores (bytes on disk,
// metadata row) holds no key, name or type; a changed blob or a wrong digest is refused before anything is opened.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Attachments } from '../../src/client/attachments';
import { loadCrypto } from '../../src/client/crypto-loader';
import type { Attachment } from '../../src/client/schemas';
import type { ChatEngineApi, ChatMessage, Person } from '../../src/client/types';
import { asClient, boot, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let ann: TestUser;
let ann2: ChatEngineApi;
let ben: TestUser;
let cat: TestUser;

const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });
const bytesOf = async (b: Blob) => Buffer.from(await b.arrayBuffer());
/** Where the SQLite relay keeps a blob's bytes (relay/src/store/sqlite/blobs.ts). */
const blobPath = (blobId: string) => join(relay.dataDir, 'blobs', blobId.slice(0, 2), blobId);

function blobRow(blobId: string): Record<string, unknown> {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT * FROM blobs WHERE blob_id = ?').get(blobId) as Record<string, unknown>;
  } finally {
    db.close();
  }
}

async function arrived(engine: ChatEngineApi, conv: string, blobId: string): Promise<ChatMessage> {
  return until(
    'the message with the attachment',
    async () => (await history(engine, conv)).find((m) => m.attachments?.some((a) => a.blobId === blobId)),
    20_000,
  );
}

beforeAll(async () => {
  relay = await startTestRelay();
  [ann, ben, cat] = await Promise.all([
    signUpUser(relay.url, 'at_ann'),
    signUpUser(relay.url, 'at_ben'),
    signUpUser(relay.url, 'at_cat'),
  ]);
  // Ann's second device exists before her first send, so that send lists it (no device-check interval to wait out).
  ann2 = await boot(relay.url, `${ann.db}-second`).signIn(ann.name, ann.password);
  await until('ann2 online', () => ann2.getSnapshot().connection === 'online');
  await openWith(ann, ben);
}, 90_000);

afterAll(async () => {
  for (const e of [ann?.engine, ann2, ben?.engine, cat?.engine]) if (e) asClient(e).close();
  await relay?.close();
});

describe('attachments between two people', () => {
  const file = randomBytes(300_000);
  const NAME = 'quarterly-secret-report.pdf';
  let att: Attachment;

  it('uploads a file sealed, reporting progress up to 1, and sends it in a message', async () => {
    const progress: number[] = [];
    att = await ann.engine.attachments.upload(new Blob([file]), (p) => progress.push(p), {
      name: NAME,
      type: 'application/pdf',
    });
    expect(att).toMatchObject({ size: file.length, name: NAME, type: 'application/pdf' });
    expect(progress.at(-1)).toBe(1);
    expect(progress.every((p, i) => i === 0 || p >= progress[i - 1]!)).toBe(true);
    await ann.engine.send(ben.userId, '', { attachments: [att] });
    expect(ann.engine.getSnapshot().conversations.find((c) => c.conv === ben.userId)?.lastText).toBe(`📎 ${NAME}`);
  });

  it('lets the recipient and the sender’s other device download and open the identical file', async () => {
    for (const [engine, conv] of [
      [ben.engine, ann.userId],
      [ann2, ben.userId],
    ] as const) {
      const got = (await arrived(engine, conv, att.blobId)).attachments![0]!;
      expect(got).toEqual(att);
      const progress: number[] = [];
      const blob = await engine.attachments.download(got, (p) => progress.push(p));
      expect((await bytesOf(blob)).equals(file)).toBe(true);
      // Not an inline image type: the object URL a Save makes can never render as a page in our origin.
      expect(blob.type).toBe('application/octet-stream');
      expect(progress.at(-1)).toBe(1);
    }
    expect(ben.engine.getSnapshot().conversations.find((c) => c.conv === ann.userId)?.lastText).toBe(`📎 ${NAME}`);
  });

  it('sends an image that opens as an image, and an SVG that never does', async () => {
    // A 1×1 PNG: what matters here is the type kept for inline display, not the pixels.
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
      'base64',
    );
    const image = await ann.engine.attachments.upload(new Blob([png], { type: 'image/png' }), undefined, {
      name: 'dot.png',
    });
    const svg = await ann.engine.attachments.upload(
      new Blob(['<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'], { type: 'image/svg+xml' }),
      undefined,
      { name: 'x.svg' },
    );
    await ann.engine.send(ben.userId, 'two pictures', { attachments: [image, svg] });
    const got = (await arrived(ben.engine, ann.userId, image.blobId)).attachments!;
    const opened = await ben.engine.attachments.download(got[0]!);
    expect(opened.type).toBe('image/png');
    expect((await bytesOf(opened)).equals(png)).toBe(true);
    expect((await ben.engine.attachments.download(got[1]!)).type).toBe('application/octet-stream');
  });

  it('stores nothing at the relay that holds the key, name, type or plaintext', async () => {
    const c = await loadCrypto();
    const stored = readFileSync(blobPath(att.blobId));
    expect(stored.length).toBe(c.attachmentSealedSize(file.length));
    expect(stored.length).toBeGreaterThan(file.length); // padded: the true size is only in the message
    expect(stored.includes(file.subarray(0, 64))).toBe(false);
    expect(stored.includes(file.subarray(150_000, 150_064))).toBe(false);
    expect(stored.includes(Buffer.from(NAME))).toBe(false);
    expect(stored.includes(Buffer.from('application/pdf'))).toBe(false);
    expect(stored.includes(Buffer.from(c.fromBase64Url(att.key, 32)))).toBe(false);
    const row = JSON.stringify(blobRow(att.blobId));
    for (const secret of [NAME, 'pdf', att.key, 'application']) expect(row.includes(secret)).toBe(false);
    expect(Object.keys(blobRow(att.blobId)).sort()).toEqual(
      ['blob_id', 'completed_at', 'created_at', 'expires_at', 'owner', 'received', 'sha256', 'size'].sort(),
    );
  });

  it('refuses a blob whose bytes the relay changed, before decrypting anything', async () => {
    const f = randomBytes(5_000);
    const sent = await ann.engine.attachments.upload(new Blob([f]), undefined, { name: 'a.bin' });
    const path = blobPath(sent.blobId);
    const original = readFileSync(path);
    const changed = Buffer.from(original);
    changed[100] = changed[100]! ^ 1;
    writeFileSync(path, changed);
    await expect(ben.engine.attachments.download(sent)).rejects.toThrow(/do not match the digest/);
    // Another complete, well-formed blob under the same id (the relay swapping files) is refused the same way.
    const other = await ann.engine.attachments.upload(new Blob([randomBytes(5_000)]), undefined, { name: 'b.bin' });
    writeFileSync(path, readFileSync(blobPath(other.blobId)));
    await expect(ben.engine.attachments.download(sent)).rejects.toThrow(/do not match the digest/);
    writeFileSync(path, original);
    expect((await bytesOf(await ben.engine.attachments.download(sent))).equals(f)).toBe(true);
  });

  it('refuses an attachment whose message names another digest', async () => {
    const sent = await ann.engine.attachments.upload(new Blob([randomBytes(2_000)]), undefined, { name: 'c.bin' });
    const c = await loadCrypto();
    const wrong = { ...sent, digest: c.toBase64Url(c.randomBytes(32)) };
    await expect(ben.engine.attachments.download(wrong)).rejects.toThrow(/do not match the digest/);
  });

  it('refuses an attachment opened with another key (a message that names the wrong key)', async () => {
    const sent = await ann.engine.attachments.upload(new Blob([randomBytes(2_000)]), undefined, { name: 'd.bin' });
    const c = await loadCrypto();
    const wrong = { ...sent, key: c.toBase64Url(c.randomBytes(32)) };
    await expect(ben.engine.attachments.download(wrong)).rejects.toThrow(/does not open with the key/);
  });

  it('refuses, before storing anything, an attachment that would not read back or a set too large for one message', async () => {
    const sent = await ann.engine.attachments.upload(new Blob([randomBytes(500)]), undefined, { name: 'e.bin' });
    const before = (await history(ann.engine, ben.userId)).length; // baseline
    // A digest whose last character is not canonical base64url would be stored and then fail to open.
    const malformed = { ...sent, digest: `${sent.digest.slice(0, 42)}B` };
    await expect(ann.engine.send(ben.userId, '', { attachments: [malformed] })).rejects.toMatchObject({
      code: 'invalid_input',
    });
    // Ten attachments with the largest thumbnails do not fit one encrypted message.
    const heavy = Array.from({ length: 10 }, () => ({ ...sent, thumbnail: 'A'.repeat(16_000) }));
    await expect(ann.engine.send(ben.userId, 'x', { attachments: heavy })).rejects.toMatchObject({
      code: 'invalid_input',
    });
    expect((await history(ann.engine, ben.userId)).length).toBe(before);
    expect(await asClient(ann.engine).dangerousTestOnlyOutboxSize()).toBe(0);
  });
});

describe('attachments in a group', () => {
  it('lets every member and the sender’s other device download the same file', async () => {
    const group = await ann.engine.createGroup('Attach club', [person(ben), person(cat)]);
    for (const e of [ben.engine, cat.engine, ann2]) {
      await until('the group arrived', () => e.getSnapshot().conversations.some((c) => c.conv === group), 20_000);
    }
    const file = randomBytes(70_000);
    const att = await ann.engine.attachments.upload(new Blob([file]), undefined, {
      name: 'minutes.txt',
      type: 'text/plain',
    });
    await ann.engine.send(group, 'the minutes', { attachments: [att] });
    for (const e of [ben.engine, cat.engine, ann2]) {
      const got = (await arrived(e, group, att.blobId)).attachments![0]!;
      expect((await bytesOf(await e.attachments.download(got))).equals(file)).toBe(true);
    }
  });
});

describe('interrupted transfers', () => {
  // The engine's own attachment parts (its tokens) over a network that breaks once; the relay is the real one.
  const partsFor = (user: TestUser, fetchImpl: typeof fetch): Attachments =>
    asClient(user.engine).attachments.dangerousTestOnlyWithNetwork(fetchImpl, () => Promise.resolve());

  it('resumes an upload from what the relay received when a chunk request breaks half-way', async () => {
    const puts: string[] = [];
    let broken = false;
    const flaky: typeof fetch = async (input, init) => {
      const url = String(input);
      if (init?.method === 'PUT') puts.push(new URL(url).search);
      if (init?.method === 'PUT' && !broken) {
        broken = true;
        // Half of the body reaches the relay, then the connection drops before the answer.
        const body = init.body as Blob;
        await fetch(input, { ...init, body: body.slice(0, Math.floor(body.size / 2)) });
        throw new TypeError('network error');
      }
      return fetch(input, init);
    };
    const parts = partsFor(ann, flaky);
    const file = randomBytes(100_000);
    const att = await parts.upload(new Blob([file]), undefined, { name: 'resumed.bin' });
    const c = await loadCrypto();
    const half = Math.floor(c.attachmentSealedSize(file.length) / 2);
    expect(puts).toEqual(['?offset=0', `?offset=${half}`]);
    expect((await bytesOf(await ben.engine.attachments.download(att))).equals(file)).toBe(true);
  });

  it('resumes a download with a Range request when the stream breaks', async () => {
    const file = randomBytes(200_000);
    const att = await ann.engine.attachments.upload(new Blob([file]), undefined, { name: 'ranged.bin' });
    const ranges: (string | null)[] = [];
    let broken = false;
    const flaky: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      ranges.push(new Headers(init?.headers).get('range'));
      if (broken || !res.body) return res;
      broken = true;
      // Pass on the first 50,000 bytes, then fail the stream as a dropped connection does.
      const reader = res.body.getReader();
      let sent = 0;
      const cut = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === 50_000) {
            await reader.cancel();
            return controller.error(new TypeError('network error'));
          }
          const { done, value } = await reader.read();
          if (done) return controller.close();
          if (sent + value.length >= 50_000) {
            controller.enqueue(value.subarray(0, 50_000 - sent));
            sent = 50_000;
            return;
          }
          sent += value.length;
          controller.enqueue(value);
        },
      });
      return new Response(cut, { status: res.status, headers: res.headers });
    };
    const parts = partsFor(ben, flaky);
    expect((await bytesOf(await parts.download(att))).equals(file)).toBe(true);
    expect(ranges).toEqual([null, 'bytes=50000-']);
  });
});
