// POST /api/groups, GET /api/groups, PUT /api/groups/:groupId/members.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
let carol: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  [alice, bob, carol] = await Promise.all([signUp(t.url), signUp(t.url), signUp(t.url)]);
});
afterAll(() => t.close());

const create = (token: string, members: unknown) => api(t.url, 'POST', '/api/groups', { token, body: { members } });
const update = (token: string, groupId: string, body: unknown) =>
  api(t.url, 'PUT', `/api/groups/${groupId}/members`, { token, body });
const newId = () => randomBytes(16).toString('base64url');

describe('POST /api/groups', () => {
  it('creates a group whose creator is the first member and the admin', async () => {
    const res = await create(alice.accessToken, [bob.userId, carol.userId, alice.userId]);
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      groupId: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      members: [alice.userId, bob.userId, carol.userId],
      admins: [alice.userId],
    });
  });

  it('answers unknown_recipient (400) when a member does not exist, and creates nothing', async () => {
    const dave = await signUp(t.url);
    const res = await create(dave.accessToken, [bob.userId, newId()]);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('unknown_recipient');
    expect((await api(t.url, 'GET', '/api/groups', { token: dave.accessToken })).body).toEqual({ groups: [] });
  });

  it('rejects malformed member lists', async () => {
    for (const members of ['x', [42], ['short'], [bob.userId, bob.userId], Array.from({ length: 257 }, newId)]) {
      const res = await create(alice.accessToken, members);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });

  it('requires authentication', async () => {
    expect((await api(t.url, 'POST', '/api/groups', { body: { members: [] } })).status).toBe(401);
  });
});

describe('GET /api/groups', () => {
  it("lists the caller's groups only", async () => {
    const erin = await signUp(t.url);
    const frank = await signUp(t.url);
    const group = (await create(erin.accessToken, [frank.userId])).body;
    await create(alice.accessToken, [bob.userId]);
    expect((await api(t.url, 'GET', '/api/groups', { token: frank.accessToken })).body).toEqual({ groups: [group] });
  });
});

describe('PUT /api/groups/:groupId/members', () => {
  it('lets an admin add and remove members', async () => {
    const { groupId } = (await create(alice.accessToken, [bob.userId])).body;
    const res = await update(alice.accessToken, groupId, { add: [carol.userId], remove: [bob.userId] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ groupId, members: [alice.userId, carol.userId], admins: [alice.userId] });
    expect((await api(t.url, 'GET', '/api/groups', { token: bob.accessToken })).body.groups).not.toContainEqual(
      expect.objectContaining({ groupId }),
    );
  });

  it('answers 403 forbidden when a member who is not an admin changes others', async () => {
    const { groupId } = (await create(alice.accessToken, [bob.userId, carol.userId])).body;
    const res = await update(bob.accessToken, groupId, { remove: [carol.userId] });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
    const adding = await update(bob.accessToken, groupId, { add: [newId()] });
    expect(adding.status).toBe(403);
  });

  it('lets any member leave by removing only themselves', async () => {
    const { groupId } = (await create(alice.accessToken, [bob.userId, carol.userId])).body;
    const res = await update(bob.accessToken, groupId, { remove: [bob.userId] });
    expect(res.status).toBe(200);
    expect(res.body.members).toEqual([alice.userId, carol.userId]);
  });

  it('makes the oldest remaining member admin when the last admin leaves', async () => {
    const { groupId } = (await create(alice.accessToken, [bob.userId, carol.userId])).body;
    const res = await update(alice.accessToken, groupId, { remove: [alice.userId] });
    expect(res.body).toEqual({ groupId, members: [bob.userId, carol.userId], admins: [bob.userId] });
    expect((await update(bob.accessToken, groupId, { add: [alice.userId] })).status).toBe(200);
  });

  it('answers 404 not_found for an unknown group and for a group the caller is not in', async () => {
    const unknown = await update(alice.accessToken, newId(), { add: [bob.userId] });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    const { groupId } = (await create(alice.accessToken, [bob.userId])).body;
    expect((await update(carol.accessToken, groupId, { remove: [carol.userId] })).status).toBe(404);
  });

  it('answers unknown_recipient when an added user does not exist', async () => {
    const { groupId } = (await create(alice.accessToken, [])).body;
    const res = await update(alice.accessToken, groupId, { add: [newId()] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('unknown_recipient');
  });

  it('rejects malformed changes', async () => {
    const { groupId } = (await create(alice.accessToken, [bob.userId])).body;
    for (const body of [{ add: 'x' }, { add: [bob.userId], remove: [bob.userId] }, { add: [], kick: [] }]) {
      const res = await update(alice.accessToken, groupId, body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    expect((await update(alice.accessToken, 'bad-id', { add: [] })).status).toBe(400);
  });
});

describe('group limits', () => {
  let small: TestRelay;
  beforeAll(async () => {
    small = await startRelay({ GROUPS_PER_USER: '3', GROUP_ADDS_PER_HOUR: '6' });
  });
  afterAll(() => small.close());

  const createOn = (token: string, members: string[]) =>
    api(small.url, 'POST', '/api/groups', { token, body: { members } });
  const groupsOf = async (account: TestAccount): Promise<number> =>
    ((await api(small.url, 'GET', '/api/groups', { token: account.accessToken })).body as { groups: unknown[] }).groups
      .length;

  it('refuses with group_limit (409) to add a user who is in GROUPS_PER_USER groups, by creation or by add, and changes nothing', async () => {
    const [owner, other, victim] = await Promise.all([signUp(small.url), signUp(small.url), signUp(small.url)]);
    for (let i = 0; i < 3; i++) expect((await createOn(owner.accessToken, [victim.userId])).status).toBe(201);
    expect(await groupsOf(victim)).toBe(3);

    const refused = await createOn(other.accessToken, [victim.userId]);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('group_limit');
    expect(await groupsOf(other)).toBe(0);

    const own = await createOn(other.accessToken, []);
    expect(own.status).toBe(201);
    const add = await api(small.url, 'PUT', `/api/groups/${own.body.groupId}/members`, {
      token: other.accessToken,
      body: { add: [victim.userId] },
    });
    expect(add.status).toBe(409);
    expect(add.body.error.code).toBe('group_limit');
    expect(await groupsOf(victim)).toBe(3);
  });

  it('refuses with rate_limited (429) an account that adds more than GROUP_ADDS_PER_HOUR users in an hour', async () => {
    const adder = await signUp(small.url);
    const users = await Promise.all(Array.from({ length: 7 }, () => signUp(small.url)));
    expect(
      (
        await createOn(
          adder.accessToken,
          users.slice(0, 4).map((u) => u.userId),
        )
      ).status,
    ).toBe(201);
    const group = await createOn(adder.accessToken, [users[4]?.userId ?? '', users[5]?.userId ?? '']);
    expect(group.status).toBe(201);
    const over = await api(small.url, 'PUT', `/api/groups/${group.body.groupId}/members`, {
      token: adder.accessToken,
      body: { add: [users[6]?.userId] },
    });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('rate_limited');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await groupsOf(users[6] as TestAccount)).toBe(0);
  });
});
