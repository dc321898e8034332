// The one contract every Store backend passes. Times are passed in explicitly: no assertion depends on a clock.
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Bytes, NewAccount, SendRequest, Store } from '../src/store/store.js';
import { describeBlobContract } from './store.blobs.contract.js';
import { describeBlockContract } from './store.blocks.contract.js';
import { describeKtContract } from './store.kt.contract.js';

/** The same cap for one-time X25519 and one-time KEM prekeys. */
const limits = (n: number) => ({ oneTime: n, kemOneTime: n });

const id = (): string => randomBytes(16).toString('base64url');
const bytes = (n: number, fill?: number): Buffer => (fill === undefined ? randomBytes(n) : Buffer.alloc(n, fill));
const DAY = 24 * 3600 * 1000;
export const T0 = 1_700_000_000_000;
/** A family start cutoff that no test family reaches (no absolute session lifetime in play). */
const LONG_AGO = T0 - 365 * DAY;

/** A complete NewAccount with random keys (times at T0). */
export function newAccount(username: string, overrides: Partial<NewAccount> = {}): NewAccount {
  return {
    userId: id(),
    username,
    salt: bytes(16),
    authHash: '$2b$04$notarealhashnotarealhashnotarealhashnotarealhashnot',
    identityKey: bytes(32),
    deviceId: id(),
    signedPrekey: { keyId: 1, publicKey: bytes(32), signature: bytes(64) },
    oneTimePrekeys: [],
    session: { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } },
    now: T0,
    ...overrides,
  };
}

const direct = (sender: NewAccount, msgId: string, to: string[], body: Bytes = bytes(8)): SendRequest => ({
  senderUserId: sender.userId,
  senderDeviceId: sender.deviceId,
  id: msgId,
  target: { kind: 'direct', envelopes: to.map((d) => ({ to: d, body })) },
});

const noWrites = { sends: [], acks: [], lastSeen: [] };

export function runStoreContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`the ${name} store`, () => {
    let store: Store;
    let alice: NewAccount;
    let bob: NewAccount;

    beforeEach(async () => {
      store = await makeStore();
      alice = newAccount('alice');
      bob = newAccount('bob');
      expect(await store.createAccount(alice)).toBe('created');
      expect(await store.createAccount(bob)).toBe('created');
    });
    afterEach(async () => {
      await store.close();
    });
    describeBlockContract(() => ({ store, alice, bob }));
    describeBlobContract(() => ({ store, alice, bob }));
    describeKtContract(() => ({ store, alice, bob }));

    it('answers a ping while open, and not once closed', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
      const other = await makeStore();
      await other.close();
      await expect(other.ping()).rejects.toThrow();
    });

    describe('accounts', () => {
      it('finds an account by username and by id, with its salt, hash and identity key', async () => {
        const byName = await store.findUserByUsername('alice');
        expect(byName).toMatchObject({ userId: alice.userId, username: 'alice', authHash: alice.authHash });
        expect(Buffer.from(byName?.salt ?? [])).toEqual(alice.salt);
        expect(Buffer.from(byName?.identityKey ?? [])).toEqual(alice.identityKey);
        expect(byName?.sharePresence).toBe(true);
        expect(await store.getUser(alice.userId)).toMatchObject({ username: 'alice' });
        expect(await store.findUserByUsername('carol')).toBeNull();
      });

      it('refuses a second account with a taken username and stores nothing of it', async () => {
        const again = newAccount('alice');
        expect(await store.createAccount(again)).toBe('username_taken');
        expect(await store.getUser(again.userId)).toBeNull();
        expect(await store.getDeviceOwner(again.deviceId)).toBeNull();
      });

      it('searches usernames by literal prefix, in order, up to the limit', async () => {
        for (const n of ['alfa', 'al_x', 'alxy', 'zed']) await store.createAccount(newAccount(n));
        expect((await store.searchUsers('al', 10)).map((u) => u.username)).toEqual(['al_x', 'alfa', 'alice', 'alxy']);
        expect((await store.searchUsers('al_', 10)).map((u) => u.username)).toEqual(['al_x']);
        expect((await store.searchUsers('al%', 10)).map((u) => u.username)).toEqual([]);
        expect(await store.searchUsers('al', 2)).toHaveLength(2);
      });

      it('tells which user and device ids are unknown', async () => {
        const ghost = id();
        expect(await store.findUnknownUsers([alice.userId, ghost, ghost])).toEqual([ghost]);
        expect(await store.findUnknownDevices([bob.deviceId, ghost])).toEqual([ghost]);
      });

      it('stores no last-seen time for a user who does not share presence, and forgets it when sharing goes off', async () => {
        await store.applyWrites({ ...noWrites, lastSeen: [{ userId: alice.userId, ts: T0 + 1 }] }, T0 + 1);
        expect((await store.getPresence([alice.userId]))[0]?.lastSeen).toBe(T0 + 1);
        await store.setSharePresence(alice.userId, false);
        expect((await store.getPresence([alice.userId]))[0]).toMatchObject({ sharePresence: false, lastSeen: null });
        await store.applyWrites({ ...noWrites, lastSeen: [{ userId: alice.userId, ts: T0 + 2 }] }, T0 + 2);
        expect((await store.getPresence([alice.userId]))[0]?.lastSeen).toBeNull();
        await store.setSharePresence(alice.userId, true);
        await store.applyWrites({ ...noWrites, lastSeen: [{ userId: alice.userId, ts: T0 + 3 }] }, T0 + 3);
        expect((await store.getPresence([alice.userId]))[0]?.lastSeen).toBe(T0 + 3);
      });

      it('records who has written to whom, one way, and forgets it with either user', async () => {
        const carol = newAccount('carol');
        await store.createAccount(carol);
        expect(await store.contactsWritingTo(bob.userId, [alice.userId, carol.userId])).toEqual([]);
        expect(await store.recordContacts(alice.userId, [bob.deviceId, alice.deviceId, id()])).toEqual([bob.userId]);
        expect(await store.recordContacts(alice.userId, [bob.deviceId])).toEqual([bob.userId]);
        expect(await store.contactsWritingTo(bob.userId, [alice.userId, carol.userId])).toEqual([alice.userId]);
        expect(await store.contactsWritingTo(alice.userId, [bob.userId, alice.userId])).toEqual([]);
        await store.deleteUser(alice.userId);
        expect(await store.contactsWritingTo(bob.userId, [alice.userId])).toEqual([]);
      });

      it('records the same contacts from many concurrent sends, every pair (two relay nodes race like this)', async () => {
        const others = Array.from({ length: 12 }, (_, i) => newAccount(`peer${i}`));
        for (const o of others) await store.createAccount(o);
        const devices = others.map((o) => o.deviceId);
        // Reversed orders too, so that concurrent requests meet on different pairs first.
        const runs = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? devices : [...devices].reverse()));
        const answers = await Promise.all(runs.map((d) => store.recordContacts(alice.userId, d)));
        for (const owners of answers) expect([...owners].sort()).toEqual(others.map((o) => o.userId).sort());
        for (const o of others) expect(await store.contactsWritingTo(o.userId, [alice.userId])).toEqual([alice.userId]);
      });

      it('stores presence settings, backups and last-seen times', async () => {
        await store.setSharePresence(alice.userId, false);
        await store.applyWrites({ ...noWrites, lastSeen: [{ userId: bob.userId, ts: T0 + 5 }] }, T0 + 6);
        const presence = await store.getPresence([alice.userId, bob.userId, id()]);
        expect(presence).toHaveLength(2);
        expect(presence.find((p) => p.userId === alice.userId)).toMatchObject({ sharePresence: false, lastSeen: null });
        expect(presence.find((p) => p.userId === bob.userId)).toMatchObject({ sharePresence: true, lastSeen: T0 + 5 });

        expect(await store.getBackup(alice.userId)).toBeNull();
        const backup = bytes(1000);
        await store.putBackup(alice.userId, backup);
        expect(Buffer.from((await store.getBackup(alice.userId)) ?? [])).toEqual(backup);
      });

      it('stores a sealed profile per user, replaces it, and erases it with the user', async () => {
        expect(await store.getProfile(alice.userId)).toEqual({ profile: null });
        expect(await store.getProfile(id())).toBeNull();
        await store.putProfile(alice.userId, bytes(70_000));
        const second = bytes(300);
        await store.putProfile(alice.userId, second);
        expect(Buffer.from((await store.getProfile(alice.userId))?.profile ?? [])).toEqual(second);
        expect(await store.getProfile(bob.userId)).toEqual({ profile: null });
        expect((await store.getUser(alice.userId))?.username).toBe(alice.username);
        await store.deleteUser(alice.userId);
        expect(await store.getProfile(alice.userId)).toBeNull();
      });

      it('deletes a user with its devices and sessions', async () => {
        expect(await store.deleteUser(alice.userId)).toBe(true);
        expect(await store.getUser(alice.userId)).toBeNull();
        expect(await store.getDeviceOwner(alice.deviceId)).toBeNull();
        expect(await store.getSession(alice.session.familyId)).toBeNull();
        expect(await store.deleteUser(alice.userId)).toBe(false);
      });

      it('replaces salt, auth hash and backup together, only while the hash is the expected one', async () => {
        const oldBackup = bytes(100);
        await store.putBackup(alice.userId, oldBackup);
        const next = {
          salt: bytes(16),
          authHash: '$2b$04$anewhashanewhashanewhashanewhashanewhashanewhashane',
          backup: bytes(200),
        };
        expect(await store.changePassword(alice.userId, 'not the stored hash', next)).toBe(false);
        const unchanged = await store.getUser(alice.userId);
        expect(Buffer.from(unchanged?.salt ?? [])).toEqual(Buffer.from(alice.salt));
        expect(unchanged?.authHash).toBe(alice.authHash);
        expect(Buffer.from((await store.getBackup(alice.userId)) ?? [])).toEqual(oldBackup);

        expect(await store.changePassword(alice.userId, alice.authHash, next)).toBe(true);
        const changed = await store.findUserByUsername('alice');
        expect(Buffer.from(changed?.salt ?? [])).toEqual(next.salt);
        expect(changed?.authHash).toBe(next.authHash);
        expect(Buffer.from((await store.getBackup(alice.userId)) ?? [])).toEqual(next.backup);
        // The old hash no longer matches: a second change racing the first is refused.
        expect(await store.changePassword(alice.userId, alice.authHash, { ...next, backup: bytes(10) })).toBe(false);
        expect(Buffer.from((await store.getBackup(alice.userId)) ?? [])).toEqual(next.backup);
        // Bob is untouched.
        expect((await store.getUser(bob.userId))?.authHash).toBe(bob.authHash);
        expect(await store.changePassword(id(), alice.authHash, next)).toBe(false);
      });

      it('deletes a user with prekeys, backup, mailbox, group memberships and sends, and keeps the name free', async () => {
        await store.putPrekeys(alice.deviceId, { oneTimePrekeys: [{ keyId: 1, publicKey: bytes(32) }] }, limits(100));
        await store.putBackup(alice.userId, bytes(50));
        const groupId = id();
        await store.createGroup(
          groupId,
          [
            { userId: alice.userId, admin: true },
            { userId: bob.userId, admin: false },
          ],
          T0,
        );
        const toAlice = id();
        const fromAlice = id();
        await store.applyWrites(
          { ...noWrites, sends: [direct(bob, toAlice, [alice.deviceId]), direct(alice, fromAlice, [bob.deviceId])] },
          T0 + 1,
        );
        expect(await store.deleteUser(alice.userId)).toBe(true);
        expect(await store.getBackup(alice.userId)).toBeNull();
        expect(await store.countPrekeys(alice.deviceId)).toEqual({
          oneTimePrekeys: 0,
          signedPrekeyId: null,
          kemOneTimePrekeys: 0,
          kemLastResortPrekeyId: null,
        });
        expect(await store.takeBundle(alice.userId)).toBeNull();
        expect(await store.countMailbox(alice.deviceId)).toBe(0);
        expect(await store.listGroups(alice.userId)).toEqual([]);
        // Bob stays, now the group's admin; his copy of what alice sent is his.
        const group = await store.getGroup(groupId);
        expect(group?.members.map((m) => m.userId)).toEqual([bob.userId]);
        expect(group?.members[0]?.admin).toBe(true);
        expect(await store.countMailbox(bob.deviceId)).toBe(1);
        expect(await store.counts()).toMatchObject({ users: 1, devices: 1, sessions: 1, oneTimePrekeys: 0, groups: 1 });
        // The name can be registered again, by a new account.
        const again = newAccount('alice');
        expect(await store.createAccount(again)).toBe('created');
        expect((await store.findUserByUsername('alice'))?.userId).toBe(again.userId);
      });
    });

    describe('operations', () => {
      it('counts what it holds', async () => {
        await store.putPrekeys(alice.deviceId, { oneTimePrekeys: [{ keyId: 1, publicKey: bytes(32) }] }, limits(100));
        await store.createGroup(id(), [{ userId: alice.userId, admin: true }], T0);
        await store.applyWrites({ ...noWrites, sends: [direct(alice, id(), [bob.deviceId])] }, T0 + 1);
        expect(await store.counts()).toEqual({
          users: 2,
          devices: 2,
          sessions: 2,
          oneTimePrekeys: 1,
          groups: 1,
          mailboxEntries: 1,
        });
      });

      it('lists accounts by username, a page after a name, with their device counts', async () => {
        const listed = await store.listAccounts('', 10);
        expect(listed.map((a) => a.username)).toEqual(['alice', 'bob']);
        expect(listed[0]).toEqual({
          userId: alice.userId,
          username: 'alice',
          disabled: false,
          devices: 1,
          createdAt: T0,
        });
        expect((await store.listAccounts('alice', 10)).map((a) => a.username)).toEqual(['bob']);
        expect(await store.listAccounts('', 1)).toHaveLength(1);
      });

      it('deactivates and reactivates an account', async () => {
        expect(await store.setUserDisabled(alice.userId, true)).toBe(true);
        expect((await store.getUser(alice.userId))?.disabled).toBe(true);
        expect((await store.findUserByUsername('alice'))?.disabled).toBe(true);
        expect(await store.setUserDisabled(alice.userId, false)).toBe(true);
        expect((await store.getUser(alice.userId))?.disabled).toBe(false);
        expect(await store.setUserDisabled(id(), true)).toBe(false);
      });

      it("revokes every session of one user and no one else's", async () => {
        const s2 = { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } };
        await store.startSession({ userId: alice.userId, deviceId: id(), newDevice: true, session: s2, now: T0 });
        expect((await store.revokeUserSessions(alice.userId)).sort()).toEqual(
          [alice.session.familyId, s2.familyId].sort(),
        );
        expect((await store.getSession(alice.session.familyId))?.revoked).toBe(true);
        expect((await store.getSession(s2.familyId))?.revoked).toBe(true);
        expect((await store.getSession(bob.session.familyId))?.revoked).toBe(false);
        expect(await store.revokeUserSessions(alice.userId)).toEqual([]);
      });

      it('deletes one device with its prekeys, sessions and mailbox, and leaves the other devices', async () => {
        const second = id();
        const s2 = { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } };
        await store.startSession({ userId: bob.userId, deviceId: second, newDevice: true, session: s2, now: T0 });
        await store.putPrekeys(
          second,
          {
            oneTimePrekeys: [{ keyId: 1, publicKey: bytes(32) }],
            kemLastResortPrekey: { keyId: 1, lastResort: true, publicKey: bytes(1184), signature: bytes(64) },
            kemOneTimePrekeys: [{ keyId: 2, lastResort: false, publicKey: bytes(1184), signature: bytes(64) }],
          },
          limits(100),
        );
        expect(await store.countPrekeys(second)).toMatchObject({ kemOneTimePrekeys: 1, kemLastResortPrekeyId: 1 });
        await store.applyWrites({ ...noWrites, sends: [direct(alice, id(), [bob.deviceId, second])] }, T0 + 1);
        expect(await store.deleteDevice(second)).toEqual([s2.familyId]);
        expect(await store.getDeviceOwner(second)).toBeNull();
        expect(await store.getSession(s2.familyId)).toBeNull();
        expect(await store.countMailbox(second)).toBe(0);
        expect(await store.countPrekeys(second)).toMatchObject({ oneTimePrekeys: 0 });
        expect(await store.countPrekeys(second)).toMatchObject({ kemOneTimePrekeys: 0, kemLastResortPrekeyId: null });
        expect(await store.countMailbox(bob.deviceId)).toBe(1);
        expect(await store.deleteDevice(second)).toBeNull();
      });

      it("keeps the recipients' copies of what a deleted user sent (they name no sender)", async () => {
        const msg = id();
        await store.applyWrites({ ...noWrites, sends: [direct(alice, msg, [bob.deviceId])] }, T0 + 1);
        expect(await store.deleteUser(alice.userId)).toBe(true);
        expect(await store.countMailbox(bob.deviceId)).toBe(1); // bob's copy is bob's
        expect((await store.counts()).mailboxEntries).toBe(1);
      });
    });

    describe('devices as their owner manages them', () => {
      it("lists a user's devices oldest first with their sealed names and last activity", async () => {
        const second = id();
        const s2 = { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } };
        await store.startSession({ userId: alice.userId, deviceId: second, newDevice: true, session: s2, now: T0 + 5 });
        const name = bytes(105);
        expect(await store.setDeviceName(alice.userId, second, name)).toBe(true);
        await store.touchDevice(second, T0 + 50);
        await store.touchDevice(second, T0 + 20); // never goes back
        const list = await store.listDevices(alice.userId);
        expect(list.map((d) => d.deviceId)).toEqual([alice.deviceId, second]);
        expect(list[0]).toMatchObject({ createdAt: T0, lastActiveAt: null, name: null });
        expect(list[1]).toMatchObject({ createdAt: T0 + 5, lastActiveAt: T0 + 50 });
        expect(Buffer.from(list[1]?.name ?? []).equals(Buffer.from(name))).toBe(true);
        expect(await store.listDevices(id())).toEqual([]);
      });

      it("names only the user's own device", async () => {
        expect(await store.setDeviceName(bob.userId, alice.deviceId, bytes(10))).toBe(false);
        expect((await store.listDevices(alice.userId))[0]?.name).toBeNull();
      });

      it('removes only an own device, with its prekeys, sessions and mailbox, and remembers it as removed', async () => {
        const second = id();
        const s2 = { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } };
        await store.startSession({ userId: bob.userId, deviceId: second, newDevice: true, session: s2, now: T0 });
        await store.putPrekeys(second, { oneTimePrekeys: [{ keyId: 1, publicKey: bytes(32) }] }, limits(100));
        await store.applyWrites({ ...noWrites, sends: [direct(alice, id(), [bob.deviceId, second])] }, T0 + 1);
        expect(await store.removeOwnDevice(alice.userId, second, T0 + 2)).toBeNull();
        expect(await store.getDeviceOwner(second)).toBe(bob.userId);
        expect(await store.deviceRemovedAt(second)).toBeNull();

        expect(await store.removeOwnDevice(bob.userId, second, T0 + 2)).toEqual([s2.familyId]);
        expect(await store.getDeviceOwner(second)).toBeNull();
        expect(await store.getSession(s2.familyId)).toBeNull();
        expect(await store.countMailbox(second)).toBe(0);
        expect(await store.countPrekeys(second)).toMatchObject({ oneTimePrekeys: 0 });
        expect(await store.countMailbox(bob.deviceId)).toBe(1);
        expect(await store.deviceRemovedAt(second)).toBe(T0 + 2);
        expect((await store.listDevices(bob.userId)).map((d) => d.deviceId)).toEqual([bob.deviceId]);
        expect(await store.removeOwnDevice(bob.userId, second, T0 + 3)).toBeNull();
        // The record goes with the account.
        expect(await store.deleteUser(bob.userId)).toBe(true);
        expect(await store.deviceRemovedAt(second)).toBeNull();
      });
    });

    describe('sessions', () => {
      it('starts sessions on new and existing devices', async () => {
        const deviceId = id();
        const s1 = { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } };
        await store.startSession({ userId: alice.userId, deviceId, newDevice: true, session: s1, now: T0 });
        expect(await store.getDeviceOwner(deviceId)).toBe(alice.userId);
        const s2 = { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } };
        await store.startSession({ userId: alice.userId, deviceId, newDevice: false, session: s2, now: T0 });
        expect(await store.getSession(s2.familyId)).toEqual({
          familyId: s2.familyId,
          userId: alice.userId,
          deviceId,
          revoked: false,
        });
      });

      it('rotates a refresh token once; reusing the spent one revokes the whole family', async () => {
        const next = { tokenHash: bytes(32), expiresAt: T0 + 2 * DAY };
        const rotated = await store.rotateRefreshToken(alice.session.refresh.tokenHash, next, T0 + 1, LONG_AGO);
        expect(rotated).toEqual({
          status: 'rotated',
          session: { familyId: alice.session.familyId, userId: alice.userId, deviceId: alice.deviceId, revoked: false },
        });
        const reused = await store.rotateRefreshToken(
          alice.session.refresh.tokenHash,
          { tokenHash: bytes(32), expiresAt: T0 + 2 * DAY },
          T0 + 2,
          LONG_AGO,
        );
        expect(reused).toEqual({ status: 'reused', familyId: alice.session.familyId });
        expect((await store.getSession(alice.session.familyId))?.revoked).toBe(true);
        // the successor died with its family
        expect(
          await store.rotateRefreshToken(
            next.tokenHash,
            { tokenHash: bytes(32), expiresAt: T0 + 3 * DAY },
            T0 + 3,
            LONG_AGO,
          ),
        ).toEqual({
          status: 'invalid',
        });
      });

      it('refuses unknown and expired refresh tokens', async () => {
        expect(
          await store.rotateRefreshToken(bytes(32), { tokenHash: bytes(32), expiresAt: T0 + DAY }, T0, LONG_AGO),
        ).toEqual({
          status: 'invalid',
        });
        expect(
          await store.rotateRefreshToken(
            bob.session.refresh.tokenHash,
            { tokenHash: bytes(32), expiresAt: T0 + 9 * DAY },
            T0 + DAY,
            LONG_AGO,
          ),
        ).toEqual({ status: 'invalid' });
      });

      it('ends a family at its absolute lifetime, however often it was refreshed', async () => {
        const HOUR = 3600 * 1000;
        // Refreshed one hour before its family's end: the successor's expiry is cut to that end.
        const next = { tokenHash: bytes(32), expiresAt: T0 + 2 * DAY };
        const rotated = await store.rotateRefreshToken(alice.session.refresh.tokenHash, next, T0 + 1, T0 + 1 - HOUR);
        expect(rotated.status).toBe('rotated');
        expect(
          await store.rotateRefreshToken(
            next.tokenHash,
            { tokenHash: bytes(32), expiresAt: T0 + 3 * DAY },
            T0 + 2 * HOUR,
            LONG_AGO,
          ),
        ).toEqual({ status: 'invalid' });
        // A family that started at the cutoff is over, even with an unexpired token; nothing is revoked or spent.
        expect(
          await store.rotateRefreshToken(
            bob.session.refresh.tokenHash,
            { tokenHash: bytes(32), expiresAt: T0 + DAY },
            T0 + 1,
            T0,
          ),
        ).toEqual({ status: 'invalid' });
        expect((await store.getSession(bob.session.familyId))?.revoked).toBe(false);
      });

      it('revokes a family', async () => {
        await store.revokeFamily(bob.session.familyId);
        expect((await store.getSession(bob.session.familyId))?.revoked).toBe(true);
      });
    });

    describe('prekeys', () => {
      const otk = (keyId: number) => ({ keyId, publicKey: bytes(32) });

      it('counts one-time prekeys and reports the signed prekey id', async () => {
        await store.putPrekeys(alice.deviceId, { oneTimePrekeys: [otk(1), otk(2), otk(3)] }, limits(100));
        await store.putPrekeys(
          alice.deviceId,
          { signedPrekey: { keyId: 7, publicKey: bytes(32), signature: bytes(64) } },
          limits(100),
        );
        expect(await store.countPrekeys(alice.deviceId)).toEqual({
          oneTimePrekeys: 3,
          signedPrekeyId: 7,
          kemOneTimePrekeys: 0,
          kemLastResortPrekeyId: null,
        });
        await store.putPrekeys(alice.deviceId, { oneTimePrekeys: [otk(3)] }, limits(100)); // same keyId replaces
        expect((await store.countPrekeys(alice.deviceId)).oneTimePrekeys).toBe(3);
      });

      it('stores nothing of an upload that would exceed the maximum', async () => {
        await store.putPrekeys(alice.deviceId, { oneTimePrekeys: [otk(1), otk(2)] }, limits(3));
        const outcome = await store.putPrekeys(
          alice.deviceId,
          { signedPrekey: { keyId: 9, publicKey: bytes(32), signature: bytes(64) }, oneTimePrekeys: [otk(3), otk(4)] },
          limits(3),
        );
        expect(outcome).toBe('too_many');
        expect(await store.countPrekeys(alice.deviceId)).toEqual({
          oneTimePrekeys: 2,
          signedPrekeyId: 1,
          kemOneTimePrekeys: 0,
          kemLastResortPrekeyId: null,
        });
      });

      it('hands each one-time prekey out once, lowest keyId first, then null', async () => {
        await store.putPrekeys(bob.deviceId, { oneTimePrekeys: [otk(5), otk(2)] }, limits(100));
        const first = await store.takeBundle(bob.userId);
        const second = await store.takeBundle(bob.userId);
        const third = await store.takeBundle(bob.userId);
        expect(first?.devices[0]?.oneTimePrekey?.keyId).toBe(2);
        expect(second?.devices[0]?.oneTimePrekey?.keyId).toBe(5);
        expect(third?.devices[0]?.oneTimePrekey).toBeNull();
        expect(first).toMatchObject({ userId: bob.userId, username: 'bob' });
        expect(first?.devices[0]?.signedPrekey.keyId).toBe(1);
      });

      it('takes one-time prekeys only for the devices asked for, and none for an empty set', async () => {
        await store.putPrekeys(bob.deviceId, { oneTimePrekeys: [otk(1), otk(2)] }, limits(100));
        const none = await store.takeBundle(bob.userId, new Set());
        expect(none?.devices.map((d) => [d.deviceId, d.oneTimePrekey])).toEqual([[bob.deviceId, null]]);
        const other = await store.takeBundle(bob.userId, new Set([alice.deviceId]));
        expect(other?.devices[0]?.oneTimePrekey).toBeNull();
        expect(await store.countPrekeys(bob.deviceId)).toMatchObject({ oneTimePrekeys: 2 });
        const asked = await store.takeBundle(bob.userId, new Set([bob.deviceId]));
        expect(asked?.devices[0]?.oneTimePrekey?.keyId).toBe(1);
        expect(await store.countPrekeys(bob.deviceId)).toMatchObject({ oneTimePrekeys: 1 });
      });

      it('hands a single one-time prekey to exactly one of 20 concurrent takers', async () => {
        await store.putPrekeys(bob.deviceId, { oneTimePrekeys: [otk(1)] }, limits(100));
        const bundles = await Promise.all(Array.from({ length: 20 }, () => store.takeBundle(bob.userId)));
        expect(bundles.filter((b) => b?.devices[0]?.oneTimePrekey !== null)).toHaveLength(1);
      });

      describe('KEM prekeys (PQXDH)', () => {
        const kem = (keyId: number, lastResort = false) => ({
          keyId,
          lastResort,
          publicKey: bytes(1184),
          signature: bytes(64),
        });

        it('hands each one-time KEM prekey out once, lowest keyId first, then the last-resort one every time', async () => {
          const last = kem(100, true);
          await store.putPrekeys(
            bob.deviceId,
            { kemOneTimePrekeys: [kem(7), kem(3)], kemLastResortPrekey: last },
            limits(100),
          );
          const taken = [];
          for (let i = 0; i < 4; i++) taken.push((await store.takeBundle(bob.userId))?.devices[0]?.kemPrekey);
          expect(taken.map((k) => [k?.keyId, k?.lastResort])).toEqual([
            [3, false],
            [7, false],
            [100, true],
            [100, true],
          ]);
          expect(Buffer.from(taken[3]?.publicKey ?? [])).toEqual(Buffer.from(last.publicKey));
          expect(Buffer.from(taken[3]?.signature ?? [])).toEqual(Buffer.from(last.signature));
          expect(await store.countPrekeys(bob.deviceId)).toMatchObject({
            kemOneTimePrekeys: 0,
            kemLastResortPrekeyId: 100,
          });
        });

        it('replaces the last-resort KEM prekey, and hands out none for a device that never uploaded one', async () => {
          expect((await store.takeBundle(bob.userId))?.devices[0]?.kemPrekey).toBeNull();
          await store.putPrekeys(bob.deviceId, { kemLastResortPrekey: kem(1, true) }, limits(100));
          await store.putPrekeys(bob.deviceId, { kemLastResortPrekey: kem(2, true) }, limits(100));
          expect(await store.countPrekeys(bob.deviceId)).toMatchObject({ kemLastResortPrekeyId: 2 });
          expect((await store.takeBundle(bob.userId))?.devices[0]?.kemPrekey?.keyId).toBe(2);
        });

        it('takes one-time KEM prekeys only for the devices asked for; the others get the last-resort one', async () => {
          await store.putPrekeys(
            bob.deviceId,
            { kemOneTimePrekeys: [kem(1)], kemLastResortPrekey: kem(9, true) },
            limits(100),
          );
          const none = await store.takeBundle(bob.userId, new Set());
          expect(none?.devices[0]?.kemPrekey?.keyId).toBe(9);
          expect(await store.countPrekeys(bob.deviceId)).toMatchObject({ kemOneTimePrekeys: 1 });
          const asked = await store.takeBundle(bob.userId, new Set([bob.deviceId]));
          expect(asked?.devices[0]?.kemPrekey?.keyId).toBe(1);
        });

        it('stores nothing of an upload over the one-time KEM cap', async () => {
          await store.putPrekeys(bob.deviceId, { kemOneTimePrekeys: [kem(1), kem(2)] }, limits(3));
          const outcome = await store.putPrekeys(
            bob.deviceId,
            { kemOneTimePrekeys: [kem(3), kem(4)], kemLastResortPrekey: kem(5, true) },
            { oneTime: 100, kemOneTime: 3 },
          );
          expect(outcome).toBe('too_many');
          expect(await store.countPrekeys(bob.deviceId)).toMatchObject({
            kemOneTimePrekeys: 2,
            kemLastResortPrekeyId: null,
          });
        });

        it('hands a single one-time KEM prekey to exactly one of 20 concurrent takers', async () => {
          await store.putPrekeys(bob.deviceId, { kemOneTimePrekeys: [kem(1)] }, limits(100));
          const bundles = await Promise.all(Array.from({ length: 20 }, () => store.takeBundle(bob.userId)));
          expect(bundles.filter((b) => b?.devices[0]?.kemPrekey?.keyId === 1)).toHaveLength(1);
        });
      });

      it('lists only devices that have a signed prekey, and nothing for an unknown user', async () => {
        const bare = id();
        await store.startSession({
          userId: bob.userId,
          deviceId: bare,
          newDevice: true,
          session: { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } },
          now: T0,
        });
        const bundle = await store.takeBundle(bob.userId);
        expect(bundle?.devices.map((d) => d.deviceId)).toEqual([bob.deviceId]);
        expect(await store.takeBundle(id())).toBeNull();
      });
    });

    describe('groups', () => {
      it('creates, reads and lists groups with members in order', async () => {
        const groupId = id();
        const created = await store.createGroup(
          groupId,
          [
            { userId: alice.userId, admin: true },
            { userId: bob.userId, admin: false },
          ],
          T0,
        );
        expect(created.version).toBe(1);
        expect(await store.getGroup(groupId)).toEqual(created);
        expect((await store.listGroups(bob.userId)).map((g) => g.groupId)).toEqual([groupId]);
        expect(await store.getGroup(id())).toBeNull();
      });

      it('replaces members only at the expected version, and deletes an emptied group', async () => {
        const groupId = id();
        await store.createGroup(groupId, [{ userId: alice.userId, admin: true }], T0);
        const members = [
          { userId: alice.userId, admin: true },
          { userId: bob.userId, admin: false },
        ];
        expect(await store.replaceGroupMembers(groupId, 1, members, T0)).toBe(true);
        expect(await store.replaceGroupMembers(groupId, 1, [], T0)).toBe(false);
        expect(await store.getGroup(groupId)).toEqual({ groupId, version: 2, members });
        expect(await store.replaceGroupMembers(groupId, 2, [], T0)).toBe(true);
        expect(await store.getGroup(groupId)).toBeNull();
      });

      it('counts the groups each user is a member of', async () => {
        await store.createGroup(id(), [{ userId: alice.userId, admin: true }], T0);
        await store.createGroup(
          id(),
          [
            { userId: alice.userId, admin: true },
            { userId: bob.userId, admin: false },
          ],
          T0,
        );
        const unknown = id();
        expect(await store.countGroups([alice.userId, bob.userId, unknown])).toEqual(
          new Map([
            [alice.userId, 2],
            [bob.userId, 1],
            [unknown, 0],
          ]),
        );
      });

      it('resolves group recipients: every member device but the sender', async () => {
        const groupId = id();
        await store.createGroup(groupId, [{ userId: alice.userId, admin: true }], T0);
        expect(await store.groupRecipients(groupId, bob.userId, bob.deviceId)).toEqual({ status: 'forbidden' });
        expect(await store.groupRecipients(id(), alice.userId, alice.deviceId)).toEqual({ status: 'not_found' });
        await store.replaceGroupMembers(
          groupId,
          1,
          [
            { userId: alice.userId, admin: true },
            { userId: bob.userId, admin: false },
          ],
          T0,
        );
        expect(await store.groupRecipients(groupId, alice.userId, alice.deviceId)).toEqual({
          status: 'ok',
          deviceIds: [bob.deviceId],
        });
      });
    });

    describe('mailbox', () => {
      it("names the devices that still hold a stored send's entry, and none after they acknowledged it", async () => {
        const carol = newAccount('carol');
        await store.createAccount(carol);
        const [first] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'r1', [bob.deviceId, carol.deviceId])] },
          T0,
        );
        if (first?.status !== 'stored') throw new Error('not stored');
        const [again] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'r1', [alice.deviceId])] },
          T0 + 9,
        );
        expect(again).toEqual({ status: 'duplicate', ts: T0 });
        expect((await store.pendingRecipients(alice.deviceId, 'r1', T0)).sort()).toEqual(
          [bob.deviceId, carol.deviceId].sort(),
        );
        const bobSeq = first.entries.find((e) => e.deviceId === bob.deviceId)?.seq ?? -1;
        await store.applyWrites({ ...noWrites, acks: [{ deviceId: bob.deviceId, seqs: [bobSeq] }] }, T0 + 10);
        expect(await store.pendingRecipients(alice.deviceId, 'r1', T0)).toEqual([carol.deviceId]);
        expect(await store.pendingRecipients(alice.deviceId, 'never-sent', T0)).toEqual([]);
      });

      it('stores one entry per recipient device in one commit, in seq order', async () => {
        const [outcome] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'm1', [bob.deviceId, alice.deviceId])] },
          T0,
        );
        expect(outcome?.status).toBe('stored');
        if (outcome?.status !== 'stored') return;
        expect(outcome.ts).toBe(T0);
        expect(outcome.entries.map((e) => e.deviceId)).toEqual([bob.deviceId, alice.deviceId]);
        await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'm2', [bob.deviceId]), direct(alice, 'm3', [bob.deviceId])] },
          T0 + 1,
        );
        const entries = await store.fetchMailbox(bob.deviceId, 0, 100, 1 << 20);
        expect(entries.map((e) => e.id)).toEqual(['m1', 'm2', 'm3']);
        expect(entries.map((e) => e.ts)).toEqual([T0, T0 + 1, T0 + 1]);
        const seqs = entries.map((e) => e.seq);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(3);
      });

      it('stores nothing new for a resent id and answers the first ts', async () => {
        await store.applyWrites({ ...noWrites, sends: [direct(alice, 'same', [bob.deviceId])] }, T0);
        const [again] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'same', [bob.deviceId])] },
          T0 + 500,
        );
        expect(again).toEqual({ status: 'duplicate', ts: T0 });
        const [inBatch, dup] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'twice', [bob.deviceId]), direct(alice, 'twice', [bob.deviceId])] },
          T0 + 600,
        );
        expect(inBatch?.status).toBe('stored');
        expect(dup).toEqual({ status: 'duplicate', ts: T0 + 600 });
        expect(await store.countMailbox(bob.deviceId)).toBe(2);
        // the key is per sending device: another device may use the same id
        const [other] = await store.applyWrites(
          { ...noWrites, sends: [direct(bob, 'same', [alice.deviceId])] },
          T0 + 700,
        );
        expect(other?.status).toBe('stored');
      });

      it('stores nothing of a send naming an unknown device, and does not remember its id', async () => {
        const [outcome] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'x', [bob.deviceId, id()])] },
          T0,
        );
        expect(outcome).toEqual({ status: 'unknown_recipient' });
        expect(await store.countMailbox(bob.deviceId)).toBe(0);
        const [retry] = await store.applyWrites({ ...noWrites, sends: [direct(alice, 'x', [bob.deviceId])] }, T0 + 1);
        expect(retry?.status).toBe('stored');
      });

      it('fans a group send out to member devices except the sender, marked with the group', async () => {
        const groupId = id();
        const aliceSecond = id();
        await store.startSession({
          userId: alice.userId,
          deviceId: aliceSecond,
          newDevice: true,
          session: { familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } },
          now: T0,
        });
        await store.putPrekeys(aliceSecond, { signedPrekey: alice.signedPrekey }, limits(100));
        await store.createGroup(
          groupId,
          [
            { userId: alice.userId, admin: true },
            { userId: bob.userId, admin: false },
          ],
          T0,
        );
        const send: SendRequest = {
          senderUserId: alice.userId,
          senderDeviceId: alice.deviceId,
          id: 'g1',
          target: { kind: 'group', groupId, body: bytes(4) },
        };
        const [outcome] = await store.applyWrites({ ...noWrites, sends: [send] }, T0);
        expect(outcome?.status === 'stored' && outcome.entries.map((e) => e.deviceId).sort()).toEqual(
          [aliceSecond, bob.deviceId].sort(),
        );
        expect((await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20))[0]).toMatchObject({ id: 'g1', group: groupId });
        const [outsider] = await store.applyWrites(
          { ...noWrites, sends: [{ ...send, id: 'g2', senderUserId: id(), senderDeviceId: id() }] },
          T0,
        );
        expect(outsider).toEqual({ status: 'forbidden' });
        const [missing] = await store.applyWrites(
          { ...noWrites, sends: [{ ...send, id: 'g3', target: { kind: 'group', groupId: id(), body: bytes(4) } }] },
          T0,
        );
        expect(missing).toEqual({ status: 'not_found' });
      });

      it('deletes exactly the acknowledged entries of that device', async () => {
        await store.applyWrites(
          { ...noWrites, sends: ['a', 'b', 'c'].map((m) => direct(alice, m, [bob.deviceId, alice.deviceId])) },
          T0,
        );
        const bobEntries = await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20);
        const aliceEntries = await store.fetchMailbox(alice.deviceId, 0, 10, 1 << 20);
        const acked = [bobEntries[0]?.seq ?? -1, bobEntries[1]?.seq ?? -1];
        await store.applyWrites(
          {
            ...noWrites,
            acks: [
              { deviceId: bob.deviceId, seqs: acked },
              // another device's seq is never touched
              { deviceId: bob.deviceId, seqs: [aliceEntries[0]?.seq ?? -1] },
            ],
          },
          T0,
        );
        expect((await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20)).map((e) => e.id)).toEqual(['c']);
        expect(await store.countMailbox(alice.deviceId)).toBe(3);
      });

      it("deletes exactly the acknowledged entries when one batch acks hundreds across devices, and no other device's", async () => {
        // 300 sends to both: more acks than one statement takes (256 pairs), and a remainder that is not a power
        // of two, in one batch with acks of two devices and a forged ack naming the other device's seqs.
        const ids = Array.from({ length: 300 }, (_, i) => `m${i}`);
        await store.applyWrites(
          { ...noWrites, sends: ids.map((m) => direct(alice, m, [bob.deviceId, alice.deviceId])) },
          T0,
        );
        const bobSeqs = (await store.fetchMailbox(bob.deviceId, 0, 500, 1 << 24)).map((e) => e.seq);
        const aliceSeqs = (await store.fetchMailbox(alice.deviceId, 0, 500, 1 << 24)).map((e) => e.seq);
        expect([bobSeqs.length, aliceSeqs.length]).toEqual([300, 300]);
        await store.applyWrites(
          {
            ...noWrites,
            acks: [
              { deviceId: bob.deviceId, seqs: bobSeqs.slice(0, 259) },
              { deviceId: alice.deviceId, seqs: [...aliceSeqs.slice(0, 5), ...bobSeqs.slice(259)] },
            ],
          },
          T0,
        );
        expect((await store.fetchMailbox(bob.deviceId, 0, 500, 1 << 24)).map((e) => e.id)).toEqual(ids.slice(259));
        expect((await store.fetchMailbox(alice.deviceId, 0, 500, 1 << 24)).map((e) => e.id)).toEqual(ids.slice(5));
      });

      it('reads a mailbox after a seq, up to a count and a byte budget (always at least one entry)', async () => {
        await store.applyWrites(
          { ...noWrites, sends: ['1', '2', '3', '4'].map((m) => direct(alice, m, [bob.deviceId], bytes(100))) },
          T0,
        );
        const all = await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20);
        expect((await store.fetchMailbox(bob.deviceId, all[1]?.seq ?? 0, 10, 1 << 20)).map((e) => e.id)).toEqual([
          '3',
          '4',
        ]);
        expect(await store.fetchMailbox(bob.deviceId, 0, 3, 1 << 20)).toHaveLength(3);
        expect(await store.fetchMailbox(bob.deviceId, 0, 10, 250)).toHaveLength(2);
        expect(await store.fetchMailbox(bob.deviceId, 0, 10, 10)).toHaveLength(1);
      });

      it('sweeps expired entries, idempotency records and refresh tokens by the times it is given', async () => {
        await store.applyWrites({ ...noWrites, sends: [direct(alice, 'old', [bob.deviceId])] }, T0);
        await store.applyWrites({ ...noWrites, sends: [direct(alice, 'new', [bob.deviceId])] }, T0 + 10 * DAY);
        const result = await store.sweepExpired({ mailboxBefore: T0 + DAY, sentBefore: T0 + DAY, now: T0 + 2 * DAY });
        expect(result).toEqual({ mailbox: 1, sent: 1, refreshTokens: 2 });
        expect((await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20)).map((e) => e.id)).toEqual(['new']);
        // the expired idempotency record is gone: the same id is a new send again
        const [resend] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'old', [bob.deviceId])] },
          T0 + 11 * DAY,
        );
        expect(resend?.status).toBe('stored');
        const [kept] = await store.applyWrites(
          { ...noWrites, sends: [direct(alice, 'new', [bob.deviceId])] },
          T0 + 11 * DAY,
        );
        expect(kept).toEqual({ status: 'duplicate', ts: T0 + 10 * DAY });
        // families left without refresh tokens are gone
        expect(await store.getSession(alice.session.familyId)).toBeNull();
      });
    });

    describe('quotas', () => {
      const newSession = () => ({ familyId: id(), refresh: { tokenHash: bytes(32), expiresAt: T0 + DAY } });
      const addDevice = (userId: string, deviceId = id(), maxDevices?: number) =>
        store.startSession({
          userId,
          deviceId,
          newDevice: true,
          session: newSession(),
          now: T0,
          ...(maxDevices !== undefined ? { maxDevices } : {}),
        });

      it('refuses a device beyond maxDevices and stores nothing of it; existing devices still start sessions', async () => {
        expect(await addDevice(alice.userId, id(), 3)).toBe('started');
        expect(await addDevice(alice.userId, id(), 3)).toBe('started');
        const refused = id();
        expect(await addDevice(alice.userId, refused, 3)).toBe('device_limit');
        expect(await store.countDevices(alice.userId)).toBe(3);
        expect(await store.getDeviceOwner(refused)).toBeNull();
        const again = await store.startSession({
          userId: alice.userId,
          deviceId: alice.deviceId,
          newDevice: false,
          session: newSession(),
          now: T0,
          maxDevices: 3,
        });
        expect(again).toBe('started');
      });

      it('fans a group send out only to member devices that have keys', async () => {
        const keyless = id();
        await addDevice(bob.userId, keyless);
        const groupId = id();
        await store.createGroup(
          groupId,
          [
            { userId: alice.userId, admin: true },
            { userId: bob.userId, admin: false },
          ],
          T0,
        );
        const [outcome] = await store.applyWrites(
          {
            ...noWrites,
            sends: [
              {
                senderUserId: alice.userId,
                senderDeviceId: alice.deviceId,
                id: 'g',
                target: { kind: 'group', groupId, body: bytes(4) },
              },
            ],
          },
          T0,
        );
        expect(outcome?.status === 'stored' && outcome.entries.map((e) => e.deviceId)).toEqual([bob.deviceId]);
        expect(await store.countMailbox(keyless)).toBe(0);
        expect(await store.groupRecipients(groupId, alice.userId, alice.deviceId)).toEqual({
          status: 'ok',
          deviceIds: [bob.deviceId],
        });
        await store.putPrekeys(keyless, { signedPrekey: bob.signedPrekey }, limits(100));
        const keyed = await store.groupRecipients(groupId, alice.userId, alice.deviceId);
        expect(keyed.status === 'ok' && [...keyed.deviceIds].sort()).toEqual([bob.deviceId, keyless].sort());
      });

      it('refuses a send for a device at its entry cap, stores it for the others, and counts within a batch', async () => {
        const caps = { maxEntries: 2, maxBytes: 1 << 20 };
        const carol = newAccount('carol');
        await store.createAccount(carol);
        const outcomes = await store.applyWrites(
          {
            ...noWrites,
            caps,
            sends: ['1', '2', '3'].map((m) => direct(alice, m, [bob.deviceId, ...(m === '3' ? [carol.deviceId] : [])])),
          },
          T0,
        );
        expect(outcomes.map((o) => o.status)).toEqual(['stored', 'stored', 'stored']);
        expect(outcomes[2]).toMatchObject({ refused: [bob.deviceId] });
        expect(outcomes[2]?.status === 'stored' && outcomes[2].entries.map((e) => e.deviceId)).toEqual([
          carol.deviceId,
        ]);
        expect(await store.countMailbox(bob.deviceId)).toBe(2);
        expect(await store.countMailbox(carol.deviceId)).toBe(1);
      });

      it('refuses a send for a device at its byte cap; a group body counts for each recipient device', async () => {
        const caps = { maxEntries: 100, maxBytes: 250 };
        await store.applyWrites({ ...noWrites, caps, sends: [direct(alice, 'a', [bob.deviceId], bytes(200))] }, T0);
        const [over] = await store.applyWrites(
          { ...noWrites, caps, sends: [direct(alice, 'b', [bob.deviceId], bytes(51))] },
          T0,
        );
        expect(over).toEqual({ status: 'mailbox_full' });
        const [fits] = await store.applyWrites(
          { ...noWrites, caps, sends: [direct(alice, 'c', [bob.deviceId], bytes(50))] },
          T0,
        );
        expect(fits?.status).toBe('stored');
        expect(await store.countMailbox(bob.deviceId)).toBe(2);
      });

      it('stores a send left with no envelope (all to users who block its sender) with no entries, under caps too', async () => {
        // What a blocked sender is answered must be a stored send's answer: 'mailbox_full' here told it the block.
        const caps = { maxEntries: 1, maxBytes: 1 << 20 };
        const [empty] = await store.applyWrites({ ...noWrites, caps, sends: [direct(alice, 'none', [])] }, T0);
        expect(empty).toEqual({ status: 'stored', ts: T0, entries: [] });
        const [again] = await store.applyWrites({ ...noWrites, caps, sends: [direct(alice, 'none', [])] }, T0 + 1);
        expect(again).toEqual({ status: 'duplicate', ts: T0 });
        expect(await store.countMailbox(bob.deviceId)).toBe(0);
      });

      it('keeps no idempotency record of a send refused for every recipient: once acked, the same id is stored', async () => {
        const caps = { maxEntries: 1, maxBytes: 1 << 20 };
        const [first] = await store.applyWrites({ ...noWrites, caps, sends: [direct(alice, 'a', [bob.deviceId])] }, T0);
        const [full] = await store.applyWrites({ ...noWrites, caps, sends: [direct(alice, 'b', [bob.deviceId])] }, T0);
        expect(full).toEqual({ status: 'mailbox_full' });
        const seq = first?.status === 'stored' ? (first.entries[0]?.seq ?? -1) : -1;
        await store.applyWrites({ ...noWrites, acks: [{ deviceId: bob.deviceId, seqs: [seq] }] }, T0);
        const [retry] = await store.applyWrites({ ...noWrites, caps, sends: [direct(alice, 'b', [bob.deviceId])] }, T0);
        expect(retry?.status).toBe('stored');
      });

      it('delivers one group body intact to every recipient until the last of them acknowledges it', async () => {
        const carol = newAccount('carol');
        await store.createAccount(carol);
        const groupId = id();
        await store.createGroup(
          groupId,
          [alice, bob, carol].map((a, i) => ({ userId: a.userId, admin: i === 0 })),
          T0,
        );
        const body = bytes(300);
        const [outcome] = await store.applyWrites(
          {
            ...noWrites,
            sends: [
              {
                senderUserId: alice.userId,
                senderDeviceId: alice.deviceId,
                id: 'g',
                target: { kind: 'group', groupId, body },
              },
            ],
          },
          T0,
        );
        if (outcome?.status !== 'stored') throw new Error('not stored');
        const [bobEntry] = await store.fetchMailbox(bob.deviceId, 0, 10, 1 << 20);
        expect(Buffer.from(bobEntry?.body ?? [])).toEqual(body);
        await store.applyWrites({ ...noWrites, acks: [{ deviceId: bob.deviceId, seqs: [bobEntry?.seq ?? -1] }] }, T0);
        const [carolEntry] = await store.fetchMailbox(carol.deviceId, 0, 10, 1 << 20);
        expect(Buffer.from(carolEntry?.body ?? [])).toEqual(body);
        expect(await store.countMailbox(bob.deviceId)).toBe(0);
      });

      it('spends an invite once, and never an expired one', async () => {
        const hash = bytes(32);
        await store.putInvite(hash, T0 + DAY);
        expect(await store.takeInvite(hash, T0)).toBe(T0 + DAY);
        expect(await store.takeInvite(hash, T0)).toBeNull();
        const old = bytes(32);
        await store.putInvite(old, T0 + DAY);
        expect(await store.takeInvite(old, T0 + DAY)).toBeNull();
        expect(await store.takeInvite(bytes(32), T0)).toBeNull();
      });
    });
  });
}
