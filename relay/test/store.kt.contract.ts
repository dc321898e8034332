// The key transparency part of the Store contract (runStoreContract calls it inside each backend's describe):
// appends are a compare-and-set on the size and on (account, seq), nodes are read back by key, an account's
// entries are found by index range, and deleting the account leaves its log entries in place.
import { describe, expect, it } from 'vitest';
import type { KtLeafRecord, NewAccount, Store } from '../src/store/store.js';

const hash = (n: number): Buffer => Buffer.alloc(32, n);
const leaf = (index: number, userId: string, seq: number): KtLeafRecord => ({
  index,
  userId,
  seq,
  entry: Buffer.from(`entry ${index}`),
});

export function describeKtContract(get: () => { store: Store; alice: NewAccount; bob: NewAccount }): void {
  describe('key transparency log', () => {
    it('appends leaves in order, only at the current size and once per account seq', async () => {
      const { store, alice, bob } = get();
      expect(await store.ktSize()).toBe(0);
      expect(await store.ktAppend(leaf(0, alice.userId, 0), [{ level: 0, index: 0, hash: hash(1) }])).toBe('appended');
      expect(await store.ktAppend(leaf(0, bob.userId, 0), [])).toBe('conflict');
      expect(await store.ktAppend(leaf(2, bob.userId, 0), [])).toBe('conflict');
      expect(await store.ktAppend(leaf(1, alice.userId, 0), [])).toBe('conflict');
      expect(await store.ktSize()).toBe(1);
      const nodes = [
        { level: 0, index: 1, hash: hash(2) },
        { level: 1, index: 0, hash: hash(3) },
      ];
      expect(await store.ktAppend(leaf(1, bob.userId, 0), nodes)).toBe('appended');
      expect(await store.ktSize()).toBe(2);
      const got = await store.ktNodes([
        { level: 1, index: 0 },
        { level: 0, index: 0 },
        { level: 2, index: 0 },
      ]);
      expect(got.map((n) => [n.level, n.index, Buffer.from(n.hash).toString('hex')])).toEqual([
        [1, 0, hash(3).toString('hex')],
        [0, 0, hash(1).toString('hex')],
      ]);
      expect(await store.ktLeaf(1)).toMatchObject({ index: 1, userId: bob.userId, seq: 0 });
      expect(Buffer.from((await store.ktLeaf(1))!.entry).toString()).toBe('entry 1');
      expect(await store.ktLeaf(2)).toBeNull();
    });

    it("finds an account's latest entry below a size and its entries in an index range", async () => {
      const { store, alice, bob } = get();
      await store.ktAppend(leaf(0, alice.userId, 0), []);
      await store.ktAppend(leaf(1, bob.userId, 0), []);
      await store.ktAppend(leaf(2, alice.userId, 1), []);
      await store.ktAppend(leaf(3, alice.userId, 2), []);
      expect((await store.ktLatestOf(alice.userId, 4))?.index).toBe(3);
      expect((await store.ktLatestOf(alice.userId, 3))?.index).toBe(2);
      expect(await store.ktLatestOf(bob.userId, 1)).toBeNull();
      expect((await store.ktEntriesOf(alice.userId, 1, 4, 10)).map((l) => l.seq)).toEqual([1, 2]);
      expect((await store.ktEntriesOf(alice.userId, 0, 4, 2)).map((l) => l.seq)).toEqual([0, 1]);
      expect((await store.ktEntriesOf(alice.userId, 0, 3, 10)).map((l) => l.seq)).toEqual([0, 1]);
    });

    it('erases what the log says of an account on request, keeping its place in the tree', async () => {
      const { store, alice, bob } = get();
      await store.ktAppend(leaf(0, alice.userId, 0), []);
      await store.ktAppend(leaf(1, bob.userId, 0), []);
      await store.ktAppend(leaf(2, alice.userId, 1), []);
      await store.ktForget(alice.userId);
      expect(await store.ktLatestOf(alice.userId, 3)).toBeNull();
      expect(await store.ktLeaf(2)).toMatchObject({ index: 2, userId: '~2' });
      expect((await store.ktLeaf(2))!.entry.length).toBe(0);
      expect((await store.ktLatestOf(bob.userId, 3))?.index).toBe(1);
      expect(await store.ktSize()).toBe(3);
    });

    it('keeps the log of a deleted account, and finishing an append stores its nodes', async () => {
      const { store, alice } = get();
      await store.ktAppend(leaf(0, alice.userId, 0), []);
      expect(await store.deleteUser(alice.userId)).toBe(true);
      expect((await store.ktLatestOf(alice.userId, 1))?.seq).toBe(0);
      await store.ktFinish(1, [{ level: 0, index: 0, hash: hash(9) }]);
      expect(await store.ktSize()).toBe(1);
      expect((await store.ktNodes([{ level: 0, index: 0 }])).length).toBe(1);
    });

    it("keeps each witness's newest cosignatures, replacing one of the same size, and finds them by key id", async () => {
      const { store } = get();
      const cosig = (keyId: string, size: number, timestamp = size) => ({
        keyId,
        size,
        root: hash(size),
        timestamp,
        line: `\u2014 w-${keyId} line-${size}-${timestamp}\n`,
      });
      expect(await store.ktCosignatures(['0000000a'])).toEqual([]);
      for (const size of [1, 2, 3, 4]) await store.ktPutCosignature(cosig('0000000a', size), 3);
      await store.ktPutCosignature(cosig('0000000b', 2), 3);
      await store.ktPutCosignature(cosig('0000000a', 3, 99), 3);
      const a = await store.ktCosignatures(['0000000a']);
      expect(a.map((c) => [c.size, c.timestamp, c.line])).toEqual([
        [4, 4, '\u2014 w-0000000a line-4-4\n'],
        [3, 99, '\u2014 w-0000000a line-3-99\n'],
        [2, 2, '\u2014 w-0000000a line-2-2\n'],
      ]);
      expect(Buffer.from(a[0]!.root).equals(hash(4))).toBe(true);
      // Another witness's rows are its own: not pruned by the first one's, found only when asked for.
      const both = await store.ktCosignatures(['0000000a', '0000000b']);
      expect(both.map((c) => [c.keyId, c.size])).toEqual([
        ['0000000a', 4],
        ['0000000a', 3],
        ['0000000a', 2],
        ['0000000b', 2],
      ]);
      expect(await store.ktCosignatures([])).toEqual([]);
    });
  });
}
