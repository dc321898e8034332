// Socket.IO parser attacks and the relay's rate limits: default-parser packets (binary attachments declared and
// never sent, too many of them), msgpack length bombs and deep nesting lose their own connection and store nothing;
// sign-in brute force and one-time-prekey draining are rate-limited. The frame cap and the reserved event names are
// proven in abuse.test.ts ('loses its own connection for a frame over the limit', '… for reserved event names').
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, messageId, signUp, startRelay, waitFor } from '../helpers.js';
import type { TestAccount, TestDevice, TestRelay } from '../helpers.js';
import { databaseDigest, settledDigest } from './fuzz-support.js';

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
let bystander: TestDevice;

beforeAll(async () => {
  t = await startRelay({ BUNDLE_RATE_BURST: '5', BUNDLE_RATE_PER_MIN: '1' });
  [alice, bob] = await Promise.all([signUp(t.url), signUp(t.url, undefined, { oneTimePrekeys: 50 })]);
  bystander = await connectDevice(t.url, bob.accessToken);
});
afterAll(async () => {
  bystander.close();
  await t.close();
});

/** Writes one raw engine.io message (text or binary) on a fresh connection of alice's. */
async function rawFrame(data: string | Buffer): Promise<TestDevice> {
  const device = await connectDevice(t.url, alice.accessToken);
  (device.socket.io as unknown as { engine: { write(d: unknown): void } }).engine.write(data);
  return device;
}

async function stillServing(): Promise<void> {
  const sender = await connectDevice(t.url, alice.accessToken);
  const id = messageId();
  expect(await sender.send({ id, envelopes: [{ to: bob.deviceId, body: Buffer.from('hi') }] })).toMatchObject({
    ok: true,
  });
  await waitFor(() => bystander.messages.some((m) => m.id === id), 5000, 'the bystander delivery');
  sender.close();
}

describe('the socket parser', () => {
  const attacks: [string, string | Buffer][] = [
    [
      'a default-parser event with a binary attachment declared and never sent',
      '51-["message:send",{"_placeholder":true,"num":0}]',
    ],
    [
      'a default-parser event declaring a million attachments',
      `51000000-["message:send",${'{"_placeholder":true,"num":0},'.repeat(50)}1]`,
    ],
    ['a default-parser plain text event', '2["message:send",{"id":"x"}]'],
    ['a msgpack map declaring 2^32-1 entries', Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61])],
    ['a msgpack array declaring 2^32-1 items', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ['a msgpack string declaring 4 GiB', Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])],
    ['a msgpack bin declaring 4 GiB', Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff, 0x00])],
    ['a msgpack frame nested 100 000 deep', Buffer.alloc(100_000, 0x91)],
    ['a msgpack packet of the wrong shape', Buffer.from([0x93, 0x01, 0x02, 0x03])],
  ];

  for (const [what, frame] of attacks) {
    it(`drops the sender of ${what}; nothing is stored and the relay serves others`, async () => {
      const before = await settledDigest(t, [bob.deviceId]);
      const device = await rawFrame(frame);
      await waitFor(() => !device.socket.connected, 5000, 'the attacker to be dropped');
      expect(databaseDigest(t.dataDir)).toBe(before);
      await stillServing();
    });
  }

  // No memory bound is claimed here: these frames are a few bytes each, so RSS could not tell a parser that
  // allocates what a header declares (it would throw or abort first) from one that does not. What is proven is that
  // every such connection is dropped and the relay keeps serving.
  it('drops each of 100 connections sending declared-but-missing attachments and length bombs, and serves on', async () => {
    const devices: TestDevice[] = [];
    for (let i = 0; i < 100; i++) {
      devices.push(
        await rawFrame(
          i % 2 ? Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]) : '51-["x",{"_placeholder":true,"num":0}]',
        ),
      );
    }
    await waitFor(() => devices.every((d) => !d.socket.connected), 10_000, 'every attacker to be dropped');
    await stillServing();
  });
});

describe('sign-in brute force', () => {
  it('is refused with 429 and Retry-After after 5 failures per name and address, even with the right key', async () => {
    const victim = await signUp(t.url);
    const wrong = { username: victim.username, authKey: Buffer.alloc(32, 9).toString('base64url') };
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => api(t.url, 'POST', '/api/sessions', { body: wrong })),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(3);
    const right = await api(t.url, 'POST', '/api/sessions', {
      body: { username: victim.username, authKey: victim.authKey },
    });
    expect(right.status).toBe(429);
    expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(right.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
    // an unknown name gets the same 401 as a wrong key (no enumeration), and its own counter
    const unknown = await api(t.url, 'POST', '/api/sessions', { body: { ...wrong, username: 'nobody_here_x' } });
    expect(unknown.status).toBe(401);
  });
});

describe('one-time prekey draining', () => {
  it('is rate-limited per requester and target: a loop of bundle fetches gets 429 after the burst', async () => {
    const answers = [];
    for (let i = 0; i < 20; i++) {
      answers.push(await api(t.url, 'GET', `/api/users/${bob.userId}/bundle`, { token: alice.accessToken }));
    }
    expect(answers.slice(0, 5).every((a) => a.status === 200)).toBe(true);
    const refused = answers.slice(5);
    expect(refused.every((a) => a.status === 429)).toBe(true);
    expect(refused[0]!.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
    expect(Number(refused[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(60);
    const count = await api(t.url, 'GET', '/api/devices/self/prekeys', { token: bob.accessToken });
    expect(count.body.oneTimePrekeys).toBe(45); // only the burst was handed out
    // other requesters, and alice's fetches of other users, are not affected
    const carol = await signUp(t.url);
    expect((await api(t.url, 'GET', `/api/users/${bob.userId}/bundle`, { token: carol.accessToken })).status).toBe(200);
    expect((await api(t.url, 'GET', `/api/users/${carol.userId}/bundle`, { token: alice.accessToken })).status).toBe(
      200,
    );
    // fetching one's own bundle (clients look for their own other devices) drains nobody else and is not limited
    for (let i = 0; i < 8; i++) {
      const own = await api(t.url, 'GET', `/api/users/${alice.userId}/bundle`, { token: alice.accessToken });
      expect(own.status).toBe(200);
    }
  });
});
