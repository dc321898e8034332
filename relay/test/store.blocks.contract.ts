// The block part of the Store contract (runStoreContract calls it inside each backend's describe).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { NewAccount, Store } from '../src/store/store.js';
import { T0, newAccount } from './store.contract.js';

const id = (): string => randomBytes(16).toString('base64url');

export function describeBlockContract(get: () => { store: Store; alice: NewAccount; bob: NewAccount }): void {
  describe('blocks', () => {
    it('stores a block once, lists it with the username, and ends it', async () => {
      const { store, alice, bob } = get();
      expect(await store.listBlocks(alice.userId)).toEqual([]);
      expect(await store.putBlock(alice.userId, bob.userId, T0, 10)).toBe('stored');
      expect(await store.putBlock(alice.userId, bob.userId, T0 + 1, 10)).toBe('stored');
      expect(await store.listBlocks(alice.userId)).toEqual([{ userId: bob.userId, username: 'bob' }]);
      expect(await store.listBlocks(bob.userId)).toEqual([]);
      await store.deleteBlock(alice.userId, bob.userId);
      await store.deleteBlock(alice.userId, bob.userId);
      expect(await store.listBlocks(alice.userId)).toEqual([]);
    });

    it('refuses a block past the limit and stores nothing of it', async () => {
      const { store, alice, bob } = get();
      const carol = newAccount('carol');
      await store.createAccount(carol);
      expect(await store.putBlock(alice.userId, bob.userId, T0, 1)).toBe('stored');
      expect(await store.putBlock(alice.userId, carol.userId, T0, 1)).toBe('limit');
      expect(await store.putBlock(alice.userId, bob.userId, T0, 1)).toBe('stored');
      expect(await store.listBlocks(alice.userId)).toEqual([{ userId: bob.userId, username: 'bob' }]);
    });

    it('tells which users and which devices block a sender, one way', async () => {
      const { store, alice, bob } = get();
      const carol = newAccount('carol');
      await store.createAccount(carol);
      await store.putBlock(alice.userId, bob.userId, T0, 10);
      expect(await store.usersBlocking(bob.userId, [alice.userId, carol.userId, id()])).toEqual([alice.userId]);
      expect(await store.usersBlocking(alice.userId, [bob.userId])).toEqual([]);
      expect(await store.devicesBlocking(bob.userId, [alice.deviceId, carol.deviceId, id()])).toEqual([alice.deviceId]);
      expect(await store.devicesBlocking(alice.userId, [bob.deviceId])).toEqual([]);
      expect(await store.devicesBlocking(carol.userId, [alice.deviceId])).toEqual([]);
    });

    it('lists every blocked user once, for the block index', async () => {
      const { store, alice, bob } = get();
      const carol = newAccount('carol');
      await store.createAccount(carol);
      expect(await store.blockedUsers()).toEqual([]);
      await store.putBlock(alice.userId, bob.userId, T0, 10);
      await store.putBlock(carol.userId, bob.userId, T0, 10);
      await store.putBlock(bob.userId, carol.userId, T0, 10);
      expect((await store.blockedUsers()).sort()).toEqual([bob.userId, carol.userId].sort());
      await store.deleteBlock(alice.userId, bob.userId);
      expect((await store.blockedUsers()).sort()).toEqual([bob.userId, carol.userId].sort());
      await store.deleteBlock(carol.userId, bob.userId);
      expect(await store.blockedUsers()).toEqual([carol.userId]);
    });

    it('forgets the blocks of and by a deleted user', async () => {
      const { store, alice, bob } = get();
      await store.putBlock(alice.userId, bob.userId, T0, 10);
      await store.putBlock(bob.userId, alice.userId, T0, 10);
      await store.deleteUser(bob.userId);
      expect(await store.listBlocks(alice.userId)).toEqual([]);
      expect(await store.usersBlocking(alice.userId, [bob.userId])).toEqual([]);
    });
  });
}
