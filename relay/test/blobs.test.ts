// The blob routes (issue #15) on a real relay with real files in a temporary DATA_DIR: resumable uploads in
// chunks, downloads whole and by Range, the headers of a download, who may see what, and the protocol's errors.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS, blobOffsetAnswerSchema, blobStatusSchema } from '../src/protocol.js';
import { api, signUp, startRelay, waitFor } from './helpers.js';
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
    const rest = await putData(alice.accessToken, blobId, status.body.received as number, bytes.subarray(200_000));
    expect(rest.body).toMatchObject({ received: 600_000, complete: true });
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
