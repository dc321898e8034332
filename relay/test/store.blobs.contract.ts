// The blob part of the Store contract (issue #15; runStoreContract calls it inside each backend's describe): quota,
// appends at `received`, a failed write keeping nothing, ranged reads across writes, links to stored messages and
// their grace once acknowledged, expiry, and deletion with the owner.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BlobStore, NewAccount, Store } from '../src/store/store.js';
import { T0 } from './store.contract.js';

const id = (): string => randomBytes(16).toString('base64url');
const digest = (b: Uint8Array): string => createHash('sha256').update(b).digest('base64url');

async function* chunksOf(bytes: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function* breaksOff(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes.subarray(0, 700);
  throw new Error('the connection broke');
}

async function readAll(blobs: BlobStore, blobId: string, start: number, end: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of blobs.read(blobId, start, end)) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

export function describeBlobContract(get: () => { store: Store; alice: NewAccount; bob: NewAccount }): void {
  describe('blobs', () => {
    const newBlob = (owner: NewAccount, size: number, sha = digest(randomBytes(4))) => ({
      blobId: id(),
      owner: owner.userId,
      size,
      sha256: sha,
      now: T0,
      expiresAt: T0 + 1000,
    });

    it('reserves sizes against the owner quota alone', async () => {
      const { store, alice, bob } = get();
      expect(await store.blobs.create(newBlob(alice, 600), 1000)).toBe('created');
      expect(await store.blobs.create(newBlob(alice, 401), 1000)).toBe('quota_exceeded');
      expect(await store.blobs.create(newBlob(alice, 400), 1000)).toBe('created');
      expect(await store.blobs.usage(alice.userId)).toBe(1000);
      expect(await store.blobs.create(newBlob(bob, 1000), 1000)).toBe('created');
    });

    it('appends writes at received, keeps nothing of a failed one, and reads any range across them', async () => {
      const { store, alice } = get();
      const bytes = randomBytes(5000);
      const blob = newBlob(alice, bytes.length, digest(bytes));
      await store.blobs.create(blob, 1 << 30);
      expect(await store.blobs.write(blob.blobId, 0, chunksOf(bytes.subarray(0, 2000)))).toBe(2000);
      await expect(store.blobs.write(blob.blobId, 2000, breaksOff(bytes.subarray(2000)))).rejects.toThrow(/broke/);
      expect((await store.blobs.get(blob.blobId))?.received).toBe(2000);
      expect(await store.blobs.write(blob.blobId, 2000, chunksOf(bytes.subarray(2000, 3500)))).toBe(3500);
      expect(await store.blobs.write(blob.blobId, 3500, chunksOf(bytes.subarray(3500)))).toBe(5000);
      expect((await readAll(store.blobs, blob.blobId, 0, 4999)).equals(bytes)).toBe(true);
      expect((await readAll(store.blobs, blob.blobId, 1990, 2010)).equals(bytes.subarray(1990, 2011))).toBe(true);
      expect((await readAll(store.blobs, blob.blobId, 4000, 4999)).equals(bytes.subarray(4000))).toBe(true);
      await store.blobs.complete(blob.blobId, T0 + 5, T0 + 9000);
      expect(await store.blobs.get(blob.blobId)).toEqual({
        blobId: blob.blobId,
        owner: alice.userId,
        size: 5000,
        received: 5000,
        sha256: blob.sha256,
        createdAt: T0,
        completedAt: T0 + 5,
        expiresAt: T0 + 9000,
      });
    });

    it("links only the owner's complete blobs to a message, and graces them once no entry of it is left", async () => {
      const { store, alice, bob } = get();
      const mine = newBlob(alice, 10);
      const pending = newBlob(alice, 10);
      const bobs = newBlob(bob, 10);
      for (const b of [mine, pending, bobs]) await store.blobs.create(b, 1 << 30);
      for (const b of [mine, bobs]) {
        await store.blobs.write(b.blobId, 0, chunksOf(randomBytes(10)));
        await store.blobs.complete(b.blobId, T0, T0 + 30_000);
      }
      const msg = id();
      const [sent] = await store.applyWrites(
        {
          sends: [
            {
              senderUserId: alice.userId,
              senderDeviceId: alice.deviceId,
              id: msg,
              target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: randomBytes(8) }] },
            },
          ],
          acks: [],
          lastSeen: [],
        },
        T0 + 1,
      );
      if (sent?.status !== 'stored') throw new Error('not stored');
      const linked = await store.blobs.link(
        alice.userId,
        alice.deviceId,
        [mine.blobId, pending.blobId, bobs.blobId, id()],
        msg,
        sent.ts,
      );
      expect(linked).toEqual([mine.blobId]);
      expect(await store.blobs.settleLinks(T0 + 100)).toBe(0);
      expect((await store.blobs.get(mine.blobId))?.expiresAt).toBe(T0 + 30_000);

      await store.applyWrites(
        { sends: [], acks: [{ deviceId: bob.deviceId, seqs: sent.entries.map((e) => e.seq) }], lastSeen: [] },
        T0 + 2,
      );
      expect(await store.blobs.settleLinks(T0 + 100)).toBe(1);
      expect((await store.blobs.get(mine.blobId))?.expiresAt).toBe(T0 + 100);
      expect((await store.blobs.get(bobs.blobId))?.expiresAt).toBe(T0 + 30_000);
      expect(await store.blobs.settleLinks(T0 + 200)).toBe(0);
    });

    it('sweeps expired blobs with their bytes, and deletes every blob of a deleted user', async () => {
      const { store, alice, bob } = get();
      const old = newBlob(alice, 10);
      const kept = { ...newBlob(alice, 10), expiresAt: T0 + 5000 };
      const bobs = { ...newBlob(bob, 10), expiresAt: T0 + 5000 };
      for (const b of [old, kept, bobs]) {
        await store.blobs.create(b, 1 << 30);
        await store.blobs.write(b.blobId, 0, chunksOf(randomBytes(10)));
      }
      expect(await store.blobs.sweep(T0 + 1000)).toBe(1);
      expect(await store.blobs.get(old.blobId)).toBeNull();
      expect(await store.blobs.get(kept.blobId)).not.toBeNull();
      expect(await store.deleteUser(alice.userId)).toBe(true);
      expect(await store.blobs.get(kept.blobId)).toBeNull();
      expect(await store.blobs.usage(alice.userId)).toBe(0);
      expect((await readAll(store.blobs, bobs.blobId, 0, 9)).length).toBe(10);
    });
  });
}
