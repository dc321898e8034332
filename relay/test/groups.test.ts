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
