// The blob routes (issue #15) on a real relay with real files in a temporary DATA_DIR: resumable uploads in
// chunks, downloads whole and by Range, the headers of a download, who may see what, and the protocol's errors.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS, blobOffsetAnswerSchema, blobStatusSchema } from '../src/protocol.js';
import { api, connectDevice, messageId, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url);
  bob = await signUp(t.url);
});
afterAll(() => t.close());

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64url');

function create(token: string, size: number, digest: string) {
  return api(t.url, 'POST', '/api/blobs', { token, body: { size, sha256: digest } });
}

async function putData(token: string | undefined, blobId: string, offset: number | string, bytes: Uint8Array) {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${t.url}/api/blobs/${blobId}/data?offset=${offset}`, {
    method: 'PUT',
    headers,
    body: bytes,
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function download(token: string | undefined, blobId: string, range?: string) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (range !== undefined) headers.range = range;
  const res = await fetch(`${t.url}/api/blobs/${blobId}`, { headers, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** Uploads `bytes` in requests of `chunk` bytes; returns the blob id. */
async function upload(account: TestAccount, bytes: Buffer, chunk = LIMITS.blobChunkBytes): Promise<string> {
  const created = await create(account.accessToken, bytes.length, sha256(bytes));
  expect(created.status).toBe(201);
  const blobId = blobStatusSchema.parse(created.body).blobId;
  for (let offset = 0; offset < bytes.length; offset += chunk) {
    const res = await putData(account.accessToken, blobId, offset, bytes.subarray(offset, offset + chunk));
    expect(res.status).toBe(200);
  }
  return blobId;
}

const fileOf = (blobId: string): string => join(t.dataDir, 'blobs', blobId.slice(0, 2), blobId);

describe('uploading a blob', () => {
  it('takes the bytes in several chunks, reports its progress, and completes when the digest checks out', async () => {
    const bytes = randomBytes(3 * 100_000 + 17);
    const created = await create(alice.accessToken, bytes.length, sha256(bytes));
    expect(created.status).toBe(201);
    const status = blobStatusSchema.parse(created.body);
    expect(status).toEqual({
      blobId: status.blobId,
      size: bytes.length,
      received: 0,
      complete: false,
      chunkBytes: LIMITS.blobChunkBytes,
    });
    for (const [i, offset] of [0, 100_000, 200_000, 300_000].entries()) {
      const res = await putData(alice.accessToken, status.blobId, offset, bytes.subarray(offset, offset + 100_000));
      expect(res.status).toBe(200);
      const after = blobStatusSchema.parse(res.body);
      expect(after.received).toBe(Math.min(bytes.length, (i + 1) * 100_000));
      expect(after.complete).toBe(i === 3);
      const polled = await api(t.url, 'GET', `/api/blobs/${status.blobId}/status`, { token: alice.accessToken });
      expect(polled.body).toEqual(after);
    }
    // The relay holds exactly the ciphertext it was given, in a file of its own.
    expect(readFileSync(fileOf(status.blobId)).equals(bytes)).toBe(true);
  });

  it('refuses an offset that is not what it holds with upload_offset and the status to resume from', async () => {
    const bytes = randomBytes(5000);
    const created = await create(alice.accessToken, bytes.length, sha256(bytes));
    const blobId = created.body.blobId as string;
    expect((await putData(alice.accessToken, blobId, 0, bytes.subarray(0, 2000))).status).toBe(200);
    for (const offset of [0, 1999, 2001, 4000]) {
      const res = await putData(alice.accessToken, blobId, offset, bytes.subarray(offset, offset + 1000));
      expect(res.status).toBe(409);
      const answer = blobOffsetAnswerSchema.parse(res.body);
      expect(answer.error.code).toBe('upload_offset');
      expect(answer.blob).toMatchObject({ blobId, received: 2000, complete: false });
    }
    expect((await putData(alice.accessToken, blobId, 2000, bytes.subarray(2000))).body.complete).toBe(true);
    // A complete upload takes nothing more, and says so the same way.
    const again = await putData(alice.accessToken, blobId, 5000, bytes.subarray(0, 1));
    expect(again.status).toBe(409);
    expect(blobOffsetAnswerSchema.parse(again.body).blob.complete).toBe(true);
  });

  it('keeps nothing of a request that breaks off mid-body, and the upload resumes from its status', async () => {
    const bytes = randomBytes(600_000);
    const created = await create(alice.accessToken, bytes.length, sha256(bytes));
    const blobId = created.body.blobId as string;
    expect((await putData(alice.accessToken, blobId, 0, bytes.subarray(0, 200_000))).status).toBe(200);

    // A raw request that announces 400,000 bytes, sends 150,000 and then its connection dies.
    await new Promise<void>((resolve) => {
      const req = request(`${t.url}/api/blobs/${blobId}/data?offset=200000`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${alice.accessToken}`,
          'content-type': 'application/octet-stream',
          'content-length': '400000',
        },
      });
      req.on('error', () => resolve());
      req.write(bytes.subarray(200_000, 350_000), () => {
        // The relay has read the bytes when its file has grown; then the connection is cut.
        void waitFor(() => existsSync(fileOf(blobId)) && statSync(fileOf(blobId)).size > 200_000, 5000, 'bytes')
          .catch(() => undefined)
          .then(() => req.destroy());
      });
    });
    // The partial bytes are discarded: the status and the file still say 200,000.
    await waitFor(() => statSync(fileOf(blobId)).size === 200_000, 5000, 'the file truncated back');
    const status = await api(t.url, 'GET', `/api/blobs/${blobId}/status`, { token: alice.accessToken });
    expect(status.body).toMatchObject({ received: 200_000, complete: false });
    // The relay holds the upload until it has closed the broken request's file, a moment after truncating it. As the
    // protocol says (and the web client does), a 409 `upload_offset` in that moment carries the status: try again.
    const resume = () => putData(alice.accessToken, blobId, status.body.received as number, bytes.subarray(200_000));
    let rest = await resume();
    for (const end = Date.now() + 5000; rest.status === 409 && Date.now() < end; rest = await resume()) {
      expect(rest.body).toMatchObject({ error: { code: 'upload_offset' }, blob: { received: 200_000 } });
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(rest.body).toMatchObject({ received: 600_000, complete: true });
    expect((await download(bob.accessToken, blobId)).bytes.equals(bytes)).toBe(true);
  });

  it('never hands a data request to the JSON parser, whatever its Content-Type says', async () => {
    const bytes = Buffer.from(JSON.stringify({ padding: 'x'.repeat(200_000) })); // past the JSON body limit
    const blobId = (await create(alice.accessToken, bytes.length, sha256(bytes))).body.blobId as string;
    const res = await api(t.url, 'PUT', `/api/blobs/${blobId}/data?offset=0`, {
      token: alice.accessToken,
      rawBody: bytes.toString(),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ received: bytes.length, complete: true });
    expect(readFileSync(fileOf(blobId)).equals(bytes)).toBe(true);
  });

  it('lets one request at a time write an upload: a second one meanwhile gets upload_offset', async () => {
    const bytes = randomBytes(300_000);
    const blobId = (await create(alice.accessToken, bytes.length, sha256(bytes))).body.blobId as string;
    const req = request(`${t.url}/api/blobs/${blobId}/data?offset=0`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${alice.accessToken}`,
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length),
      },
    });
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
    });
    req.write(bytes.subarray(0, 100_000));
    await waitFor(() => existsSync(fileOf(blobId)) && statSync(fileOf(blobId)).size >= 100_000, 5000, 'bytes');
    const second = await putData(alice.accessToken, blobId, 0, bytes);
    expect(second.status).toBe(409);
    expect(blobOffsetAnswerSchema.parse(second.body).blob.received).toBe(0);
    req.end(bytes.subarray(100_000));
    const first = await answered;
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ received: bytes.length, complete: true });
    expect((await download(bob.accessToken, blobId)).bytes.equals(bytes)).toBe(true);
  });

  it('deletes a blob whose bytes do not have the declared SHA-256 (digest_mismatch), and keeps serving', async () => {
    const bytes = randomBytes(10_000);
    const created = await create(alice.accessToken, bytes.length, sha256(randomBytes(10_000)));
    const blobId = created.body.blobId as string;
    expect((await putData(alice.accessToken, blobId, 0, bytes.subarray(0, 4000))).status).toBe(200);
    const last = await putData(alice.accessToken, blobId, 4000, bytes.subarray(4000));
    expect(last.status).toBe(400);
    expect(last.body.error.code).toBe('digest_mismatch');
    expect((await api(t.url, 'GET', `/api/blobs/${blobId}/status`, { token: alice.accessToken })).status).toBe(404);
    expect(existsSync(fileOf(blobId))).toBe(false);
    expect((await download(bob.accessToken, blobId)).status).toBe(404);
    expect((await upload(alice, randomBytes(100))).length).toBe(22);
  });

  it('refuses bytes past the size (invalid_input) and a request over a chunk (payload_too_large)', async () => {
    const bytes = randomBytes(1000);
    const small = (await create(alice.accessToken, bytes.length, sha256(bytes))).body.blobId as string;
    const over = await putData(alice.accessToken, small, 0, randomBytes(1001));
    expect(over.status).toBe(400);
    expect(over.body.error.code).toBe('invalid_input');
    const size = LIMITS.blobChunkBytes + 10;
    const big = (await create(alice.accessToken, size, sha256(randomBytes(1)))).body.blobId as string;
    const huge = await putData(alice.accessToken, big, 0, randomBytes(LIMITS.blobChunkBytes + 1));
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('payload_too_large');
    // Nothing of either was kept, and both uploads go on from 0.
    for (const blobId of [small, big]) {
      const status = await api(t.url, 'GET', `/api/blobs/${blobId}/status`, { token: alice.accessToken });
      expect(status.body.received).toBe(0);
    }
    expect((await putData(alice.accessToken, small, 0, bytes)).body.complete).toBe(true);
  });

  it('refuses a blob over the per-blob cap (payload_too_large) and sizes or digests that are not valid', async () => {
    const tooBig = await create(alice.accessToken, LIMITS.blobMaxBytes + 1, sha256(randomBytes(1)));
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error.code).toBe('payload_too_large');
    const bodies = [
      { size: 0, sha256: sha256(randomBytes(1)) },
      { size: 1.5, sha256: sha256(randomBytes(1)) },
      { size: 10, sha256: 'short' },
      { size: 10 },
      { size: 10, sha256: sha256(randomBytes(1)), owner: bob.userId },
    ];
    for (const body of bodies) {
      const res = await api(t.url, 'POST', '/api/blobs', { token: alice.accessToken, body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    for (const offset of ['-1', 'x', '1.5']) {
      const blobId = (await create(alice.accessToken, 10, sha256(randomBytes(10)))).body.blobId as string;
      expect((await putData(alice.accessToken, blobId, offset, randomBytes(10))).body.error.code).toBe('invalid_input');
    }
    expect((await putData(alice.accessToken, 'not-an-id', 0, randomBytes(1))).status).toBe(400);
  });
});

describe('downloading a blob', () => {
  it('serves a complete blob to any signed-in account as an opaque attachment that is never cached', async () => {
    const bytes = randomBytes(250_000);
    const blobId = await upload(alice, bytes, 100_000);
    const res = await download(bob.accessToken, blobId);
    expect(res.status).toBe(200);
    expect(res.bytes.equals(bytes)).toBe(true);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-disposition')).toBe('attachment');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    // The API's security headers hold here too.
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('cross-origin-resource-policy')).toBe('same-origin');
    expect((await download(alice.accessToken, blobId)).bytes.equals(bytes)).toBe(true);
  });

  it('resumes a download from a byte Range (bytes=N- and bytes=N-M) with 206 and Content-Range', async () => {
    const bytes = randomBytes(100_000);
    const blobId = await upload(alice, bytes);
    const tail = await download(bob.accessToken, blobId, 'bytes=40000-');
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe(`bytes 40000-99999/100000`);
    expect(tail.headers.get('content-length')).toBe('60000');
    expect(tail.bytes.equals(bytes.subarray(40_000))).toBe(true);
    const middle = await download(bob.accessToken, blobId, 'bytes=10-19');
    expect(middle.status).toBe(206);
    expect(middle.headers.get('content-range')).toBe('bytes 10-19/100000');
    expect(middle.bytes.equals(bytes.subarray(10, 20))).toBe(true);
    const pastEnd = await download(bob.accessToken, blobId, 'bytes=99990-200000');
    expect(pastEnd.bytes.equals(bytes.subarray(99_990))).toBe(true);
    const outside = await download(bob.accessToken, blobId, 'bytes=100000-');
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe('bytes */100000');
    // A Range the relay does not serve (several ranges) gets the whole blob.
    const several = await download(bob.accessToken, blobId, 'bytes=0-1,5-6');
    expect(several.status).toBe(200);
    expect(several.bytes.equals(bytes)).toBe(true);
  });

  it('does not serve an upload before it is complete, nor an unknown id', async () => {
    const bytes = randomBytes(2000);
    const blobId = (await create(alice.accessToken, bytes.length, sha256(bytes))).body.blobId as string;
    await putData(alice.accessToken, blobId, 0, bytes.subarray(0, 1000));
    for (const token of [alice.accessToken, bob.accessToken]) {
      const res = await download(token, blobId);
      expect(res.status).toBe(404);
      expect(JSON.parse(res.bytes.toString()).error.code).toBe('not_found');
    }
    expect((await download(bob.accessToken, randomBytes(16).toString('base64url'))).status).toBe(404);
  });
});

describe('who may do what with a blob', () => {
  it("answers another account's status, data and delete requests as if the blob did not exist", async () => {
    const bytes = randomBytes(3000);
    const pending = (await create(alice.accessToken, bytes.length, sha256(bytes))).body.blobId as string;
    const done = await upload(alice, bytes);
    const unknown = randomBytes(16).toString('base64url');
    for (const blobId of [pending, done, unknown]) {
      const status = await api(t.url, 'GET', `/api/blobs/${blobId}/status`, { token: bob.accessToken });
      const data = await putData(bob.accessToken, blobId, 0, bytes.subarray(0, 10));
      const del = await api(t.url, 'DELETE', `/api/blobs/${blobId}`, { token: bob.accessToken });
      for (const res of [status, data, del]) {
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      }
    }
    // Nothing changed: the pending upload still holds nothing, the complete one is served.
    const status = await api(t.url, 'GET', `/api/blobs/${pending}/status`, { token: alice.accessToken });
    expect(status.body.received).toBe(0);
    expect(existsSync(fileOf(done))).toBe(true);
    expect((await download(bob.accessToken, done)).bytes.equals(bytes)).toBe(true);
  });

  it('answers every blob route 401 without a valid bearer token', async () => {
    const bytes = randomBytes(100);
    const blobId = await upload(alice, bytes);
    for (const token of [undefined, 'not-a-token']) {
      const answers = [
        await api(t.url, 'POST', '/api/blobs', { token, body: { size: 10, sha256: sha256(bytes) } }),
        await putData(token, blobId, 0, bytes),
        await api(t.url, 'GET', `/api/blobs/${blobId}/status`, { token }),
        await api(t.url, 'GET', `/api/blobs/${blobId}`, { token }),
        await api(t.url, 'DELETE', `/api/blobs/${blobId}`, { token }),
      ];
      for (const res of answers) {
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe('unauthorized');
      }
    }
    expect((await download(bob.accessToken, blobId)).bytes.equals(bytes)).toBe(true);
  });

  it('lets the uploader delete its blob: the bytes are gone and nobody can download it', async () => {
    const blobId = await upload(alice, randomBytes(1000));
    expect((await api(t.url, 'DELETE', `/api/blobs/${blobId}`, { token: alice.accessToken })).status).toBe(204);
    expect(existsSync(fileOf(blobId))).toBe(false);
    expect((await download(bob.accessToken, blobId)).status).toBe(404);
    expect((await api(t.url, 'DELETE', `/api/blobs/${blobId}`, { token: alice.accessToken })).status).toBe(404);
  });
});

describe('the per-account quota', () => {
  it('counts the reserved sizes of incomplete and complete blobs, refuses past it with 507, frees on delete', async () => {
    const carol = await signUp(t.url);
    const digest = sha256(randomBytes(1));
    const fits = Math.floor(LIMITS.blobQuotaBytes / LIMITS.blobMaxBytes);
    const ids: string[] = [];
    for (let i = 0; i < fits; i++) ids.push((await create(carol.accessToken, LIMITS.blobMaxBytes, digest)).body.blobId);
    const room = LIMITS.blobQuotaBytes - fits * LIMITS.blobMaxBytes;
    const over = await create(carol.accessToken, room + 1, digest);
    expect(over.status).toBe(507);
    expect(over.body.error.code).toBe('quota_exceeded');
    expect((await create(carol.accessToken, room, digest)).status).toBe(201);
    expect((await create(carol.accessToken, 1, digest)).status).toBe(507);
    // Another account's quota is its own.
    expect((await create(bob.accessToken, LIMITS.blobMaxBytes, digest)).status).toBe(201);
    expect((await api(t.url, 'DELETE', `/api/blobs/${ids[0]}`, { token: carol.accessToken })).status).toBe(204);
    expect((await create(carol.accessToken, LIMITS.blobMaxBytes, digest)).status).toBe(201);
    expect((await api(t.url, 'GET', '/api/health')).status).toBe(200);
  });
});

describe('a send that names blobs', () => {
  it('links them with one store call, and a send that names none costs the blob store nothing', async () => {
    const blobs = t.relay.store.blobs;
    const original = blobs.link.bind(blobs);
    const calls: string[][] = [];
    blobs.link = (owner, device, ids, id, ts) => {
      calls.push(ids);
      return original(owner, device, ids, id, ts);
    };
    const device = await connectDevice(t.url, alice.accessToken);
    try {
      const blobId = await upload(alice, randomBytes(100));
      const plain = await device.send({ id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(20) }] });
      expect(plain).toMatchObject({ ok: true });
      expect(calls).toEqual([]);
      const named = await device.send({
        id: messageId(),
        envelopes: [{ to: bob.deviceId, body: randomBytes(20) }],
        blobs: [blobId],
      });
      expect(named).toMatchObject({ ok: true });
      expect(calls).toEqual([[blobId]]);
    } finally {
      device.close();
      blobs.link = original;
    }
  });
});
