// When blobs go (issue #15), on a relay with an injected clock: an upload left incomplete for a day, a complete blob
// after LIMITS.blobTtlDays, a blob whose message every recipient device acknowledged after LIMITS.blobGraceHours,
// and every blob of a deleted account at once — files and quota alike.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../src/protocol.js';
import { api, connectDevice, messageId, signIn, signUp, sleep, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
let clock = Date.UTC(2026, 0, 1);
let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
beforeAll(async () => {
  t = await startRelay({}, { now: () => clock, sweepIntervalMs: 3600 * 1000 });
  alice = await signUp(t.url);
  bob = await signUp(t.url);
});
afterAll(() => t.close());

/** Moves the relay's clock; alice and bob sign in again on the same devices (their access tokens expired). */
async function advance(ms: number): Promise<void> {
  clock += ms;
  for (const account of [alice, bob]) {
    account.accessToken = (await signIn(t.url, account, account.deviceId)).accessToken;
  }
}

/** Polls an async condition every 10 ms (at most 5 s). */
async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64url');
const fileOf = (blobId: string): string => join(t.dataDir, 'blobs', blobId.slice(0, 2), blobId);

async function create(account: TestAccount, bytes: Buffer): Promise<string> {
  const res = await api(t.url, 'POST', '/api/blobs', {
    token: account.accessToken,
    body: { size: bytes.length, sha256: sha256(bytes) },
  });
  expect(res.status).toBe(201);
  return res.body.blobId as string;
}

async function putData(account: TestAccount, blobId: string, offset: number, bytes: Uint8Array): Promise<number> {
  const res = await fetch(`${t.url}/api/blobs/${blobId}/data?offset=${offset}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${account.accessToken}`, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  await res.arrayBuffer();
  return res.status;
}

async function upload(account: TestAccount, bytes = randomBytes(5000)): Promise<string> {
  const blobId = await create(account, bytes);
  expect(await putData(account, blobId, 0, bytes)).toBe(200);
  return blobId;
}

const downloadStatus = async (blobId: string, token = bob.accessToken): Promise<number> =>
  (await api(t.url, 'GET', `/api/blobs/${blobId}`, { token })).status;

describe('blob expiry', () => {
  it('deletes an upload left incomplete for 24 hours, its file and its quota', async () => {
    const bytes = randomBytes(4000);
    const blobId = await create(alice, bytes);
    expect(await putData(alice, blobId, 0, bytes.subarray(0, 1000))).toBe(200);
    await advance(24 * HOUR - 1);
    await t.relay.sweep();
    expect(existsSync(fileOf(blobId))).toBe(true);
    await advance(1);
    expect((await t.relay.sweep()).blobs).toBeGreaterThanOrEqual(1);
    expect(existsSync(fileOf(blobId))).toBe(false);
    const status = await api(t.url, 'GET', `/api/blobs/${blobId}/status`, { token: alice.accessToken });
    expect(status.status).toBe(404);
    expect(await t.relay.store.blobs.usage(alice.userId)).toBe(0);
  });

  it(`keeps a complete blob that no message names for ${LIMITS.blobTtlDays} days, then deletes it`, async () => {
    const blobId = await upload(alice);
    await advance(LIMITS.blobTtlDays * DAY - 1);
    await t.relay.sweep();
    expect(await downloadStatus(blobId)).toBe(200);
    await advance(1);
    await t.relay.sweep();
    expect(await downloadStatus(blobId)).toBe(404);
    expect(existsSync(fileOf(blobId))).toBe(false);
  });

  it(`deletes a sent blob ${LIMITS.blobGraceHours} hours after every recipient device acknowledged its message`, async () => {
    const sent = await upload(alice);
    const unsent = await upload(alice);
    const bobs = await upload(bob); // named by alice's send, but not hers: unaffected
    const bobDevice = await connectDevice(t.url, bob.accessToken, { autoAck: false });
    const aliceDevice = await connectDevice(t.url, alice.accessToken);
    try {
      const ack = await aliceDevice.send({
        id: messageId(),
        envelopes: [{ to: bob.deviceId, body: randomBytes(100) }],
        blobs: [sent, bobs, randomBytes(16).toString('base64url')],
      });
      expect(ack).toMatchObject({ ok: true });
      const before = await t.relay.store.blobs.get(sent);
      await bobDevice.waitForMessages(1);
      // Not yet acknowledged: the sweep keeps the blob's full lifetime.
      await t.relay.sweep();
      expect((await t.relay.store.blobs.get(sent))?.expiresAt).toBe(before?.expiresAt);

      for (const done of bobDevice.pendingAcks.splice(0)) done();
      await until(async () => (await t.relay.store.countMailbox(bob.deviceId)) === 0, 'the ack to delete the entry');
      await t.relay.sweep();
      expect((await t.relay.store.blobs.get(sent))?.expiresAt).toBe(clock + LIMITS.blobGraceHours * HOUR);
      expect((await t.relay.store.blobs.get(unsent))?.expiresAt).toBe(before?.expiresAt);
      expect((await t.relay.store.blobs.get(bobs))?.expiresAt).toBe(before?.expiresAt);

      await advance(LIMITS.blobGraceHours * HOUR - 1);
      await t.relay.sweep();
      expect(await downloadStatus(sent)).toBe(200);
      await advance(1);
      await t.relay.sweep();
      expect(await downloadStatus(sent)).toBe(404);
      expect(existsSync(fileOf(sent))).toBe(false);
      expect(await downloadStatus(unsent)).toBe(200);
      expect(await downloadStatus(bobs, alice.accessToken)).toBe(200);
    } finally {
      bobDevice.close();
      aliceDevice.close();
    }
  });

  it("deletes every blob of a deleted account with its files, and frees nobody else's", async () => {
    const carol = await signUp(t.url);
    const done = await upload(carol);
    const pending = await create(carol, randomBytes(3000));
    expect(await putData(carol, pending, 0, randomBytes(100))).toBe(200);
    const bobs = await upload(bob);
    const res = await api(t.url, 'DELETE', '/api/accounts/self', {
      token: carol.accessToken,
      body: { authKey: carol.authKey },
    });
    expect(res.status).toBe(204);
    expect(existsSync(fileOf(done))).toBe(false);
    expect(existsSync(fileOf(pending))).toBe(false);
    expect(await t.relay.store.blobs.get(done)).toBeNull();
    expect(await downloadStatus(done)).toBe(404);
    expect(await downloadStatus(bobs)).toBe(200);
  });

  it('removes a blob file that no blob row names (left by a crash), and keeps the others', async () => {
    const kept = await upload(alice);
    const stray = randomBytes(16).toString('base64url');
    mkdirSync(join(t.dataDir, 'blobs', stray.slice(0, 2)), { recursive: true });
    writeFileSync(fileOf(stray), randomBytes(100));
    await t.relay.sweep();
    expect(existsSync(fileOf(stray))).toBe(false);
    expect(existsSync(fileOf(kept))).toBe(true);
    expect(await downloadStatus(kept)).toBe(200);
  });
});
