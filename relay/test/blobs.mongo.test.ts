// The blob routes (issue #15) on a relay whose store is MongoDB (FerretDB here; skipped without it): the bytes go to
// GridFS, one file per data request. Chunked and resumed uploads, Range downloads across those files, a digest
// mismatch, another account's requests, the grace after every ack, and account deletion — all through HTTP.
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS, blobOffsetAnswerSchema } from '../src/protocol.js';
import { BlobWriteConflict } from '../src/store/store.js';
import { api, connectDevice, messageId, signIn, signUp, sleep, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';
import { startMongo, withDatabase } from './services.js';
import type { Service } from './services.js';

const started = await startMongo();
const mongo: Service | null = 'service' in started ? started.service : null;
if (!mongo) console.warn(`[blobs.mongo] skipped: ${'skip' in started ? started.skip : ''}`);

const HOUR = 3600 * 1000;
let clock = Date.UTC(2026, 1, 1);
let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64url');

async function create(account: TestAccount, size: number, digest: string): Promise<string> {
  const res = await api(t.url, 'POST', '/api/blobs', { token: account.accessToken, body: { size, sha256: digest } });
  expect(res.status).toBe(201);
  return res.body.blobId as string;
}

async function putData(account: TestAccount, blobId: string, offset: number, bytes: Uint8Array) {
  const res = await fetch(`${t.url}/api/blobs/${blobId}/data?offset=${offset}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${account.accessToken}`, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  return { status: res.status, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function download(account: TestAccount, blobId: string, range?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${account.accessToken}` };
  if (range !== undefined) headers.range = range;
  const res = await fetch(`${t.url}/api/blobs/${blobId}`, { headers });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe.skipIf(!mongo)('blobs on a MongoDB relay (GridFS)', () => {
  beforeAll(async () => {
    if (!mongo) return;
    t = await startRelay({ MONGODB_URI: withDatabase(mongo.url, `blobs_${Date.now()}`) }, { now: () => clock });
    alice = await signUp(t.url);
    bob = await signUp(t.url);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await mongo?.stop();
  });

  it('uploads in chunks, resumes after a request that broke off, and serves the whole blob and any Range', async () => {
    const bytes = randomBytes(700_000);
    const blobId = await create(alice, bytes.length, sha256(bytes));
    expect((await putData(alice, blobId, 0, bytes.subarray(0, 300_000))).status).toBe(200);
    // A request that announces 400,000 bytes and breaks off after 100,000.
    await new Promise<void>((resolve) => {
      const req = request(`${t.url}/api/blobs/${blobId}/data?offset=300000`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${alice.accessToken}`,
          'content-type': 'application/octet-stream',
          'content-length': '400000',
        },
      });
      req.on('error', () => resolve());
      // Cut once the bytes are on the wire (whether the relay read them yet is not observed here; the SQLite test
      // waits for its file to grow first).
      req.write(bytes.subarray(300_000, 400_000), () => req.destroy());
    });
    const status = await api(t.url, 'GET', `/api/blobs/${blobId}/status`, { token: alice.accessToken });
    expect(status.body).toMatchObject({ received: 300_000, complete: false });
    const wrong = await putData(alice, blobId, 0, bytes.subarray(0, 10));
    expect(wrong.status).toBe(409);
    expect(blobOffsetAnswerSchema.parse(wrong.body).blob.received).toBe(300_000);
    // On a busy machine the relay may not have seen the cut yet: until it does, it answers that another request is
    // writing this upload, with the offset, and a client resumes once that request is gone. Any other answer fails.
    const resume = () => putData(alice, blobId, 300_000, bytes.subarray(300_000, 500_000));
    let resumed = await resume();
    const deadline = Date.now() + 10_000;
    while (resumed.status === 409 && Date.now() < deadline) {
      const answer = blobOffsetAnswerSchema.parse(resumed.body);
      expect(answer.error.message).toBe('another request is writing this upload');
      expect(answer.blob.received).toBe(300_000);
      await sleep(20);
      resumed = await resume();
    }
    expect(resumed.status).toBe(200);
    expect((await putData(alice, blobId, 500_000, bytes.subarray(500_000))).body.complete).toBe(true);

    const whole = await download(bob, blobId);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe('700000');
    expect(whole.bytes.equals(bytes)).toBe(true);
    const across = await download(bob, blobId, 'bytes=299990-500009'); // spans all three GridFS files
    expect(across.status).toBe(206);
    expect(across.bytes.equals(bytes.subarray(299_990, 500_010))).toBe(true);
    expect((await download(bob, blobId, 'bytes=650000-')).bytes.equals(bytes.subarray(650_000))).toBe(true);
  });

  it('deletes a blob whose digest does not match, and hides an upload from other accounts', async () => {
    const bytes = randomBytes(1000);
    const bad = await create(alice, bytes.length, sha256(randomBytes(1000)));
    const last = await putData(alice, bad, 0, bytes);
    expect(last.status).toBe(400);
    expect(last.body.error.code).toBe('digest_mismatch');
    expect((await download(alice, bad)).status).toBe(404);
    const mine = await create(alice, bytes.length, sha256(bytes));
    expect((await api(t.url, 'GET', `/api/blobs/${mine}/status`, { token: bob.accessToken })).status).toBe(404);
    expect((await putData(bob, mine, 0, bytes)).status).toBe(404);
    expect((await api(t.url, 'DELETE', `/api/blobs/${mine}`, { token: bob.accessToken })).status).toBe(404);
    expect((await putData(alice, mine, 0, bytes)).body.complete).toBe(true);
  });

  it(`graces a sent blob once its message is acknowledged, deletes it ${LIMITS.blobGraceHours} h later`, async () => {
    const bytes = randomBytes(2000);
    const blobId = await create(alice, bytes.length, sha256(bytes));
    await putData(alice, blobId, 0, bytes);
    const bobDevice = await connectDevice(t.url, bob.accessToken);
    const aliceDevice = await connectDevice(t.url, alice.accessToken);
    try {
      const ack = await aliceDevice.send({
        id: messageId(),
        envelopes: [{ to: bob.deviceId, body: randomBytes(50) }],
        blobs: [blobId],
      });
      expect(ack).toMatchObject({ ok: true });
      await bobDevice.waitForMessages(1);
      const deadline = Date.now() + 10_000;
      while ((await t.relay.store.countMailbox(bob.deviceId)) > 0) {
        if (Date.now() > deadline) throw new Error('the ack did not delete the entry');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      bobDevice.close();
      aliceDevice.close();
    }
    await t.relay.sweep();
    expect((await t.relay.store.blobs.get(blobId))?.expiresAt).toBe(clock + LIMITS.blobGraceHours * HOUR);
    clock += LIMITS.blobGraceHours * HOUR;
    await t.relay.sweep();
    expect(await t.relay.store.blobs.get(blobId)).toBeNull();
    bob.accessToken = (await signIn(t.url, bob, bob.deviceId)).accessToken;
    expect((await download(bob, blobId)).status).toBe(404);
  });

  it('commits one of two writes racing at the same offset (two nodes; FerretDB too), and reads only its bytes', async () => {
    const first = randomBytes(5000);
    const second = randomBytes(5000);
    const blobs = t.relay.store.blobs;
    const blobId = randomBytes(16).toString('base64url');
    const blob = {
      blobId,
      owner: alice.userId,
      size: 5000,
      sha256: sha256(first),
      now: clock,
      expiresAt: clock + HOUR,
    };
    expect(await blobs.create(blob, LIMITS.blobQuotaBytes)).toBe('created');
    async function* slowly(bytes: Buffer): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < bytes.length; i += 1000) {
        yield bytes.subarray(i, i + 1000);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    const outcomes = await Promise.allSettled([
      blobs.write(blobId, 0, slowly(first)),
      blobs.write(blobId, 0, slowly(second)),
    ]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
    const lost = outcomes.find((o) => o.status === 'rejected');
    expect(lost?.status === 'rejected' && lost.reason).toBeInstanceOf(BlobWriteConflict);
    const winner = outcomes[0]?.status === 'fulfilled' ? first : second;
    const parts: Buffer[] = [];
    for await (const chunk of blobs.read(blobId, 0, 4999)) parts.push(Buffer.from(chunk as Uint8Array));
    expect(Buffer.concat(parts).equals(winner)).toBe(true);
    expect((await blobs.get(blobId))?.received).toBe(5000);
  });

  it('deletes every blob of a deleted account', async () => {
    const carol = await signUp(t.url);
    const bytes = randomBytes(3000);
    const blobId = await create(carol, bytes.length, sha256(bytes));
    await putData(carol, blobId, 0, bytes);
    const res = await api(t.url, 'DELETE', '/api/accounts/self', {
      token: carol.accessToken,
      body: { authKey: carol.authKey },
    });
    expect(res.status).toBe(204);
    expect(await t.relay.store.blobs.get(blobId)).toBeNull();
    expect(await t.relay.store.blobs.usage(carol.userId)).toBe(0);
  });
});
