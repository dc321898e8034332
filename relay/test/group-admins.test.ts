// PUT /api/groups/:groupId/admins and the admin rules of PUT /api/groups/:groupId/members, on both stores: only
// admins change admins or members, nobody outside the group learns it exists, a group always keeps an admin.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';
import { startMongo, withDatabase, type Service } from './services.js';

const started = await startMongo();
const mongo: Service | null = 'service' in started ? started.service : null;
if (!mongo) console.warn(`[group-admins] MongoDB store skipped: ${'skip' in started ? started.skip : ''}`);
afterAll(async () => {
  await mongo?.stop();
});

const backends: [string, () => Record<string, string> | null][] = [
  ['SQLite', () => ({})],
  ['MongoDB', () => (mongo ? { MONGODB_URI: withDatabase(mongo.url, `admins_${Date.now()}`) } : null)],
];

const newId = () => randomBytes(16).toString('base64url');

describe.each(backends)('group admins on the %s store', (name, env) => {
  const overrides = env();
  let t: TestRelay;
  let ann: TestAccount;
  let ben: TestAccount;
  let cat: TestAccount;
  let eve: TestAccount;
  beforeAll(async () => {
    if (!overrides) return;
    t = await startRelay(overrides);
    [ann, ben, cat, eve] = await Promise.all([signUp(t.url), signUp(t.url), signUp(t.url), signUp(t.url)]);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  const create = async (owner: TestAccount, members: TestAccount[]): Promise<string> => {
    const res = await api(t.url, 'POST', '/api/groups', {
      token: owner.accessToken,
      body: { members: members.map((m) => m.userId) },
    });
    expect(res.status).toBe(201);
    return res.body.groupId as string;
  };
  const admins = (who: TestAccount, groupId: string, body: unknown) =>
    api(t.url, 'PUT', `/api/groups/${groupId}/admins`, { token: who.accessToken, body });
  const members = (who: TestAccount, groupId: string, body: unknown) =>
    api(t.url, 'PUT', `/api/groups/${groupId}/members`, { token: who.accessToken, body });
  const groupAsSeenBy = async (who: TestAccount, groupId: string) =>
    (
      (await api(t.url, 'GET', '/api/groups', { token: who.accessToken })).body as {
        groups: { groupId: string; members: string[]; admins: string[] }[];
      }
    ).groups.find((g) => g.groupId === groupId);

  describe.skipIf(!overrides)(name, () => {
    it('lets an admin make a member admin, and the new admin then changes members and admins', async () => {
      const groupId = await create(ann, [ben, cat]);
      const res = await admins(ann, groupId, { add: [ben.userId] });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        groupId,
        members: [ann.userId, ben.userId, cat.userId],
        admins: [ann.userId, ben.userId],
      });
      expect((await groupAsSeenBy(cat, groupId))?.admins).toEqual([ann.userId, ben.userId]);
      // The creator is not special: the new admin may demote her, and she then may not change anything.
      expect((await admins(ben, groupId, { remove: [ann.userId] })).body.admins).toEqual([ben.userId]);
      expect((await members(ann, groupId, { remove: [cat.userId] })).status).toBe(403);
      expect((await admins(ann, groupId, { add: [ann.userId] })).status).toBe(403);
      expect((await members(ben, groupId, { remove: [cat.userId] })).body.members).toEqual([ann.userId, ben.userId]);
    });

    it('answers 403 forbidden when a member who is not an admin promotes or demotes anyone, itself included', async () => {
      const groupId = await create(ann, [ben, cat]);
      for (const body of [{ add: [ben.userId] }, { add: [cat.userId] }, { remove: [ann.userId] }]) {
        const res = await admins(ben, groupId, body);
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      }
      expect((await groupAsSeenBy(ann, groupId))?.admins).toEqual([ann.userId]);
    });

    it('answers 404 not_found to someone outside the group, for admins and members alike, and changes nothing', async () => {
      const groupId = await create(ann, [ben]);
      for (const res of [
        await admins(eve, groupId, { add: [eve.userId] }),
        await admins(eve, groupId, { remove: [ann.userId] }),
        await members(eve, groupId, { add: [eve.userId] }),
        await members(eve, groupId, { remove: [ben.userId] }),
        await admins(eve, newId(), { add: [eve.userId] }),
      ]) {
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      }
      expect(await groupAsSeenBy(ann, groupId)).toEqual({
        groupId,
        members: [ann.userId, ben.userId],
        admins: [ann.userId],
      });
    });

    it('refuses with last_admin (409) to demote the only admin, and changes nothing', async () => {
      const groupId = await create(ann, [ben]);
      const res = await admins(ann, groupId, { remove: [ann.userId] });
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('last_admin');
      // With two admins, the same request goes through; then the other one is the last.
      await admins(ann, groupId, { add: [ben.userId] });
      expect((await admins(ann, groupId, { remove: [ann.userId] })).body.admins).toEqual([ben.userId]);
      expect((await admins(ben, groupId, { remove: [ben.userId] })).body.error.code).toBe('last_admin');
      // Swapping roles in one request keeps an admin and is allowed.
      expect((await admins(ben, groupId, { add: [ann.userId], remove: [ben.userId] })).body.admins).toEqual([
        ann.userId,
      ]);
    });

    it('promotes the longest-standing member when the last admin leaves, so a group always keeps an admin', async () => {
      const groupId = await create(ann, [ben, cat]);
      const res = await members(ann, groupId, { remove: [ann.userId] });
      expect(res.body).toEqual({ groupId, members: [ben.userId, cat.userId], admins: [ben.userId] });
      // Another admin leaving promotes no one.
      await admins(ben, groupId, { add: [cat.userId] });
      expect((await members(ben, groupId, { remove: [ben.userId] })).body.admins).toEqual([cat.userId]);
    });

    it('rejects malformed changes and ids that are not members with invalid_input', async () => {
      const groupId = await create(ann, [ben]);
      for (const body of [
        {},
        { add: [] },
        { add: 'x' },
        { add: ['short'] },
        { add: [ben.userId, ben.userId] },
        { add: [ben.userId], remove: [ben.userId] },
        { add: [ben.userId], promote: [] },
        { add: [cat.userId] },
        { remove: [newId()] },
      ]) {
        const res = await admins(ann, groupId, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body.error.code).toBe('invalid_input');
      }
      expect((await admins(ann, 'bad-id', { add: [ben.userId] })).status).toBe(400);
      expect((await groupAsSeenBy(ann, groupId))?.admins).toEqual([ann.userId]);
    });

    it('requires authentication', async () => {
      const groupId = await create(ann, [ben]);
      expect((await api(t.url, 'PUT', `/api/groups/${groupId}/admins`, { body: { add: [ben.userId] } })).status).toBe(
        401,
      );
    });
  });
});
