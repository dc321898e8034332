// Property-based fuzzing of the relay's own inputs: every HTTP body, path, query and socket payload, mutated from
// a valid one into something the protocol forbids, gets a protocol error — never a 5xx, never an echo of the
// input — the database is byte-for-byte unchanged, and the relay keeps serving.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountBody,
  api,
  connectDevice,
  messageId,
  oneTimePrekeys,
  signUp,
  signedPrekey,
  startRelay,
  uniqueUsername,
  waitFor,
} from '../helpers.js';
import type { TestAccount, TestDevice, TestRelay } from '../helpers.js';
import { databaseDigest, mutate, mutation, settledDigest, stringLeaves } from './fuzz-support.js';
import type { BodySpec } from './fuzz-support.js';

const RUNS = 60;

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
let carol: TestAccount;
let groupId: string;
let sender: TestDevice;
let bobDevice: TestDevice;

beforeAll(async () => {
  t = await startRelay({ SEND_RATE_BURST: '1000000', SEND_RATE_PER_SEC: '1000000' });
  [alice, bob, carol] = await Promise.all([signUp(t.url), signUp(t.url), signUp(t.url)]);
  groupId = (await api(t.url, 'POST', '/api/groups', { token: alice.accessToken, body: { members: [bob.userId] } }))
    .body.groupId as string;
  sender = await connectDevice(t.url, alice.accessToken);
  bobDevice = await connectDevice(t.url, bob.accessToken);
});
afterAll(async () => {
  sender.close();
  bobDevice.close();
  await t.close();
});

/** The answer is a protocol error of an allowed status, in the one error shape, echoing none of the input. */
function expectRefusal(res: { status: number; body: unknown }, allowed: number[], sent: unknown): void {
  expect(allowed, JSON.stringify(res.body)).toContain(res.status);
  expect(res.body).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  const message = (res.body as { error: { message: string } }).error.message;
  expect(message).not.toMatch(/\n\s+at /); // no stack trace
  for (const value of stringLeaves(sent)) if (value.length >= 8) expect(message).not.toContain(value);
}

/** Runs a property and checks the database did not move and the relay still answers. */
async function unchanged(run: () => Promise<void>): Promise<void> {
  const before = await settledDigest(t, [bob.deviceId]);
  await run();
  expect(databaseDigest(t.dataDir)).toBe(before);
  expect((await api(t.url, 'GET', '/api/health')).status).toBe(200);
}

interface Route {
  name: string;
  method: string;
  path: () => string;
  token?: () => string;
  base: () => unknown;
  spec: BodySpec;
  statuses: number[];
}

const routes: Route[] = [
  {
    name: 'POST /api/accounts',
    method: 'POST',
    path: () => '/api/accounts',
    base: () => accountBody(uniqueUsername('fz')).body,
    spec: { strings: { username: 'username' }, arrays: { oneTimePrekeys: 100 } },
    statuses: [400, 413],
  },
  {
    name: 'POST /api/sessions',
    method: 'POST',
    path: () => '/api/sessions',
    base: () => ({ username: alice.username, authKey: alice.authKey, deviceId: alice.deviceId }),
    spec: { strings: { username: 'username' }, optional: ['deviceId'] },
    statuses: [400],
  },
  {
    name: 'POST /api/sessions/refresh',
    method: 'POST',
    path: () => '/api/sessions/refresh',
    base: () => ({ refreshToken: randomBytes(32).toString('base64url') }),
    spec: { strings: { refreshToken: 'opaque' } },
    statuses: [400, 401],
  },
  {
    name: 'PUT /api/devices/self/prekeys',
    method: 'PUT',
    path: () => '/api/devices/self/prekeys',
    token: () => alice.accessToken,
    base: () => ({ signedPrekey: signedPrekey(alice.identity, 9), oneTimePrekeys: oneTimePrekeys(3, 500) }),
    spec: { optional: ['signedPrekey', 'oneTimePrekeys'], arrays: { oneTimePrekeys: 100 } },
    statuses: [400, 413],
  },
  {
    name: 'PUT /api/settings',
    method: 'PUT',
    path: () => '/api/settings',
    token: () => alice.accessToken,
    base: () => ({ sharePresence: true }),
    spec: {},
    statuses: [400],
  },
  {
    name: 'PUT /api/blocks/:userId',
    method: 'PUT',
    path: () => `/api/blocks/${bob.userId}`,
    token: () => alice.accessToken,
    base: () => ({}),
    spec: {},
    statuses: [400],
  },
  {
    name: 'PUT /api/backup',
    method: 'PUT',
    path: () => '/api/backup',
    token: () => alice.accessToken,
    base: () => ({ backup: randomBytes(100).toString('base64url') }),
    spec: { strings: { backup: 'b64any' } },
    statuses: [400, 413],
  },
  {
    name: 'POST /api/groups',
    method: 'POST',
    path: () => '/api/groups',
    token: () => alice.accessToken,
    base: () => ({ members: [bob.userId, carol.userId] }),
    spec: { arrays: { members: 256 } },
    statuses: [400, 413],
  },
  {
    name: 'PUT /api/groups/:groupId/members',
    method: 'PUT',
    path: () => `/api/groups/${groupId}/members`,
    token: () => alice.accessToken,
    base: () => ({ add: [carol.userId], remove: [bob.userId] }),
    spec: { optional: ['add', 'remove'], arrays: { add: 256, remove: 256 } },
    statuses: [400, 413],
  },
];

describe('HTTP bodies', () => {
  for (const route of routes) {
    it(`${route.name}: every mutated body is a protocol error and writes nothing`, async () => {
      await unchanged(() =>
        fc.assert(
          fc.asyncProperty(mutation, async (m) => {
            const body = mutate(route.base(), route.spec, m);
            fc.pre(body !== null);
            const rawBody = JSON.stringify(body);
            const token = route.token?.();
            const res = await api(t.url, route.method, route.path(), { rawBody, ...(token ? { token } : {}) });
            expectRefusal(res, route.statuses, body);
          }),
          { numRuns: RUNS },
        ),
      );
    });
  }

  it('bodies that are not JSON objects, or not JSON, are invalid_input', async () => {
    const raw = [
      'null',
      '1',
      '"x"',
      '[]',
      '{',
      '{"a":1,}',
      "{'a':1}",
      '{"__proto__":{"isAdmin":true}}',
      '{"constructor":{"prototype":{"polluted":1}}}',
      '['.repeat(60_000) + ']'.repeat(60_000).slice(0, 100),
      '{"a":'.repeat(10_000),
      '\u0000',
    ];
    await unchanged(async () => {
      for (const rawBody of raw) {
        for (const route of routes) {
          const token = route.token?.();
          const res = await api(t.url, route.method, route.path(), { rawBody, ...(token ? { token } : {}) });
          expectRefusal(res, [400, 413], '');
        }
      }
      // a body under another content type is not read as JSON
      const form = await api(t.url, 'PUT', '/api/settings', {
        token: alice.accessToken,
        rawBody: 'sharePresence=false',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expectRefusal(form, [400], '');
    });
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

/** Path ids and usernames that are not of their form: wrong length, other alphabets, traversal, encodings. */
const badSegment = fc.oneof(
  fc.constantFrom(
    'A'.repeat(21),
    'A'.repeat(23),
    `${'A'.repeat(21)}=`,
    `${'A'.repeat(21)}+`,
    '..',
    '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '%00',
    '__proto__x',
    'constructor',
    '%F0%9F%98%80',
    `${'A'.repeat(21)}B`, // 22 characters, non-zero trailing bits
    'x'.repeat(2000),
  ),
  fc.string({ minLength: 1, maxLength: 60 }).map(encodeURIComponent),
);

describe('HTTP paths and queries', () => {
  it('malformed ids in paths are invalid_input, and a well-formed unknown name gets the same fake salt twice', async () => {
    await unchanged(() =>
      fc.assert(
        fc.asyncProperty(badSegment, async (segment) => {
          fc.pre(!/^[A-Za-z0-9_-]{22}$/.test(decodeURIComponent(segment)));
          // A segment the URL parser rewrites (e.g. "..") never reaches the route: only there is 404 allowed.
          const reaches = (path: string) => new URL(path, t.url).pathname === path;
          const bundlePath = `/api/users/${segment}/bundle`;
          const bundle = await api(t.url, 'GET', bundlePath, { token: alice.accessToken });
          expectRefusal(bundle, reaches(bundlePath) ? [400] : [400, 404], segment);
          const groupPath = `/api/groups/${segment}/members`;
          const group = await api(t.url, 'PUT', groupPath, {
            token: alice.accessToken,
            body: { add: [carol.userId] },
          });
          expectRefusal(group, reaches(groupPath) ? [400] : [400, 404], segment);
          const kdfPath = `/api/accounts/${segment}/kdf`;
          const kdf = await api(t.url, 'GET', kdfPath);
          if (/^[A-Za-z0-9_]{3,32}$/.test(decodeURIComponent(segment))) {
            // A well-formed unknown name: a fake salt of the real shape, the same on every call (no enumeration).
            expect(kdf.status).toBe(200);
            expect(Object.keys(kdf.body as object).sort()).toEqual(['memlimit', 'opslimit', 'salt']);
            const again = await api(t.url, 'GET', kdfPath);
            expect(again.body).toEqual(kdf.body);
          } else expectRefusal(kdf, reaches(kdfPath) ? [400] : [400, 404], segment);
        }),
        { numRuns: RUNS },
      ),
    );
  });

  it('search queries outside the username alphabet, repeated or nested, are invalid_input', async () => {
    const query = fc.oneof(
      fc
        .string({ maxLength: 40 })
        .filter((s) => !/^[A-Za-z0-9_]{1,32}$/.test(s))
        .map((s) => `query=${encodeURIComponent(s)}`),
      fc.constantFrom(
        'query=a&query=b',
        'query[__proto__]=x',
        'query[a]=b',
        '__proto__=x',
        'query=%',
        `query=${'a'.repeat(33)}`,
        'query=a%25',
        'query=a*',
        'other=a',
        '',
      ),
    );
    await unchanged(() =>
      fc.assert(
        fc.asyncProperty(query, async (q) => {
          const res = await api(t.url, 'GET', `/api/users?${q}`, { token: alice.accessToken });
          expectRefusal(res, [400], q);
        }),
        { numRuns: RUNS },
      ),
    );
  });
});

describe('socket payloads', () => {
  const events: { name: string; base: () => unknown; spec: BodySpec }[] = [
    {
      name: 'message:send (direct)',
      base: () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(40) }] }),
      spec: { arrays: { envelopes: 100 } },
    },
    {
      name: 'message:send (group)',
      base: () => ({ id: messageId(), group: groupId, body: randomBytes(40), ephemeral: false }),
      spec: { optional: ['ephemeral'] },
    },
    {
      name: 'presence:watch',
      base: () => ({ userIds: [bob.userId, carol.userId] }),
      spec: { arrays: { userIds: 200 } },
    },
  ];

  for (const event of events) {
    it(`${event.name}: every mutated payload is answered invalid_input and stores nothing`, async () => {
      await unchanged(() =>
        fc.assert(
          fc.asyncProperty(mutation, async (m) => {
            // "__proto__" map keys are refused by the parser itself (the connection closes: tested below)
            fc.pre(!(m.kind === 'extraKey' && m.key === '__proto__'));
            const payload = mutate(event.base(), event.spec, m);
            fc.pre(payload !== null);
            const name = event.name.split(' ')[0]!;
            const ack: unknown = await sender.socket.timeout(10_000).emitWithAck(name, payload);
            expect(ack).toMatchObject({ ok: false, error: { code: 'invalid_input', message: expect.any(String) } });
          }),
          { numRuns: RUNS },
        ),
      );
      expect(sender.socket.connected).toBe(true);
    });
  }

  it('a "__proto__" map key anywhere in a payload closes the connection and stores nothing', async () => {
    const before = await settledDigest(t, [bob.deviceId]);
    const evil = [{ id: 1 }, null, [1], { envelopes: [{ to: bob.deviceId, body: Buffer.alloc(1) }] }];
    for (const [i, value] of evil.entries()) {
      const device = await connectDevice(t.url, alice.accessToken);
      const payload = { id: messageId(), envelopes: [{ to: bob.deviceId, body: Buffer.alloc(4) }] };
      const target = i % 2 ? payload : payload.envelopes[0]!;
      Object.defineProperty(target, '__proto__', { value, enumerable: true, writable: true, configurable: true });
      device.socket.emit('message:send', payload, () => undefined);
      await waitFor(() => !device.socket.connected, 5000, 'the __proto__ sender to be dropped');
    }
    expect(databaseDigest(t.dataDir)).toBe(before);
    expect(sender.socket.connected).toBe(true);
  });

  it('binary bodies of 0 and 65537 bytes are invalid_input; 65536 bytes is accepted', async () => {
    for (const size of [0, 64 * 1024 + 1]) {
      const ack: unknown = await sender.send({
        id: messageId(),
        envelopes: [{ to: bob.deviceId, body: Buffer.alloc(size) }],
      });
      expect(ack).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    }
    const ok = await sender.send({ id: messageId(), envelopes: [{ to: bob.deviceId, body: Buffer.alloc(64 * 1024) }] });
    expect(ok).toMatchObject({ ok: true });
    await bobDevice.waitForMessages(1);
  });
});
