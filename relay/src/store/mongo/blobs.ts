// Blobs of the MongoDB store (issue #15): metadata in the `blobs` collection, bytes in GridFS (bucket `blobdata`).
// GridFS files cannot be appended to, so each data request becomes one GridFS file (a "part"). A part is written
// completely (GridFS commits its files document last) and only then committed: one compare-and-set on the blob moves
// `received` from the part's offset past it and appends the part to the blob's `parts` list. Reads follow that list
// alone, so a part that lost the compare-and-set (another node wrote the same offset first; it deletes its part) or
// was left by a crash is never read; such leftovers carry the blob id and go with the blob. An aborted request's
// part is aborted (its chunks deleted).
import { Readable } from 'node:stream';
import mongoose from 'mongoose';
import type { Connection } from 'mongoose';
import type { BlobRecord, BlobStore, NewBlob } from '../store.js';

interface BlobDoc {
  _id: string;
  owner: string;
  size: number;
  received: number;
  sha256: string;
  createdAt: number;
  completedAt: number | null;
  expiresAt: number;
  /** The committed GridFS files of the blob, in offset order. */
  parts: { id: mongoose.mongo.ObjectId; offset: number; length: number }[];
  /** The stored messages that name the blob (a send's `blobs`). */
  links: { senderDeviceId: string; messageId: string; ts: number }[];
}

interface PartMeta {
  blobId: string;
  offset: number;
}

const BUCKET = 'blobdata';

export class MongoBlobs implements BlobStore {
  constructor(
    private readonly connection: Connection,
    /** The store's pendingRecipients: who still holds an entry of a stored send. */
    private readonly pending: (senderDeviceId: string, id: string, ts: number) => Promise<string[]>,
  ) {}

  private get db(): mongoose.mongo.Db {
    const db = this.connection.db;
    if (!db) throw new Error('the MongoDB store is closed');
    return db;
  }

  private get docs(): mongoose.mongo.Collection<BlobDoc> {
    return this.db.collection<BlobDoc>('blobs');
  }

  private get bucket(): mongoose.mongo.GridFSBucket {
    return new mongoose.mongo.GridFSBucket(this.db, { bucketName: BUCKET, writeConcern: { w: 'majority' } });
  }

  private get files(): mongoose.mongo.Collection<{ _id: mongoose.mongo.ObjectId; length: number; metadata: PartMeta }> {
    return this.db.collection(`${BUCKET}.files`);
  }

  /** Indexes for the owner's quota, the sweep and the parts of a blob. */
  async init(): Promise<void> {
    await this.docs.createIndex({ owner: 1 });
    await this.docs.createIndex({ expiresAt: 1 });
    await this.files.createIndex({ 'metadata.blobId': 1, 'metadata.offset': 1 });
  }

  /**
   * Sums the owner's sizes, then inserts. Not atomic across relay nodes: two creates racing on two nodes can each
   * pass the check and together go over the quota by one blob.
   */
  async create(blob: NewBlob, quota: number): Promise<'created' | 'quota_exceeded'> {
    if ((await this.usage(blob.owner)) + blob.size > quota) return 'quota_exceeded';
    await this.docs.insertOne({
      _id: blob.blobId,
      owner: blob.owner,
      size: blob.size,
      received: 0,
      sha256: blob.sha256,
      createdAt: blob.now,
      completedAt: null,
      expiresAt: blob.expiresAt,
      parts: [],
      links: [],
    });
    return 'created';
  }

  async get(blobId: string): Promise<BlobRecord | null> {
    const d = await this.docs.findOne({ _id: blobId });
    return d
      ? {
          blobId: d._id,
          owner: d.owner,
          size: d.size,
          received: d.received,
          sha256: d.sha256,
          createdAt: d.createdAt,
          completedAt: d.completedAt,
          expiresAt: d.expiresAt,
        }
      : null;
  }

  async usage(owner: string): Promise<number> {
    const docs = await this.docs.find({ owner }, { projection: { size: 1 } }).toArray();
    return docs.reduce((sum, d) => sum + d.size, 0);
  }

  async write(blobId: string, offset: number, source: AsyncIterable<Uint8Array>): Promise<number> {
    const upload = this.bucket.openUploadStream(blobId, { metadata: { blobId, offset } satisfies PartMeta });
    let failure: unknown = null;
    upload.on('error', (err) => (failure ??= err)); // an abort errors the stream too: nobody else listens
    let end = offset;
    try {
      for await (const chunk of source) {
        if (failure !== null) throw failure;
        end += chunk.length;
        if (!upload.write(chunk)) await new Promise((resolve) => upload.once('drain', resolve));
      }
    } catch (err) {
      await upload.abort().catch(() => undefined);
      throw err;
    }
    await new Promise<void>((resolve, reject) => {
      upload.end(() => (failure === null ? resolve() : reject(failure as Error)));
      upload.once('error', reject);
    });
    if (end === offset) {
      await this.deleteParts({ _id: upload.id });
      return offset;
    }
    const moved = await this.docs.updateOne(
      { _id: blobId, received: offset },
      { $set: { received: end }, $push: { parts: { id: upload.id, offset, length: end - offset } } },
    );
    if (moved.modifiedCount === 0) {
      await this.deleteParts({ _id: upload.id });
      throw new Error('the blob went away during the write');
    }
    return end;
  }

  read(blobId: string, start: number, end: number): Readable {
    const docs = this.docs;
    const bucket = this.bucket;
    async function* bytes(): AsyncGenerator<Uint8Array> {
      const doc = await docs.findOne({ _id: blobId }, { projection: { parts: 1 } });
      if (!doc) throw new Error('no such blob');
      for (const part of doc.parts) {
        const from = part.offset;
        const to = from + part.length; // exclusive
        if (to <= start || from > end) continue;
        const stream = bucket.openDownloadStream(part.id, {
          start: Math.max(0, start - from),
          end: Math.min(part.length, end + 1 - from),
        });
        for await (const chunk of stream) yield chunk as Uint8Array;
      }
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  async complete(blobId: string, now: number, expiresAt: number): Promise<void> {
    // FerretDB 1.x has no $expr: the size is read first, and `received` must still equal it.
    const doc = await this.docs.findOne({ _id: blobId }, { projection: { size: 1 } });
    if (!doc) return;
    await this.docs.updateOne({ _id: blobId, received: doc.size }, { $set: { completedAt: now, expiresAt } });
  }

  async delete(blobIds: string[]): Promise<void> {
    if (blobIds.length === 0) return;
    await this.docs.deleteMany({ _id: { $in: blobIds } });
    await this.deleteParts({ 'metadata.blobId': { $in: blobIds } });
  }

  /** Every blob of the owner (account deletion). */
  async deleteOwned(owner: string): Promise<void> {
    const ids = (await this.docs.find({ owner }, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    await this.delete(ids);
  }

  async link(
    owner: string,
    senderDeviceId: string,
    blobIds: string[],
    messageId: string,
    ts: number,
  ): Promise<string[]> {
    const ids = [...new Set(blobIds)];
    const filter = { _id: { $in: ids }, owner, completedAt: { $ne: null } };
    const own = (await this.docs.find(filter, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    if (own.length === 0) return [];
    await this.docs.updateMany({ _id: { $in: own } }, { $addToSet: { links: { senderDeviceId, messageId, ts } } });
    return own;
  }

  async settleLinks(graceUntil: number): Promise<number> {
    let shortened = 0;
    const linked = this.docs.find({ 'links.0': { $exists: true } }, { projection: { links: 1, expiresAt: 1 } });
    for await (const doc of linked) {
      const done: BlobDoc['links'] = [];
      for (const l of doc.links) {
        if ((await this.pending(l.senderDeviceId, l.messageId, l.ts)).length === 0) done.push(l);
      }
      if (done.length === 0) continue;
      await this.docs.updateOne({ _id: doc._id }, { $pullAll: { links: done } });
      if (done.length === doc.links.length && doc.expiresAt > graceUntil) {
        const r = await this.docs.updateOne(
          { _id: doc._id, links: { $size: 0 }, expiresAt: { $gt: graceUntil } },
          { $set: { expiresAt: graceUntil } },
        );
        shortened += r.modifiedCount;
      }
    }
    return shortened;
  }

  async sweep(now: number): Promise<number> {
    const ids = (await this.docs.find({ expiresAt: { $lte: now } }, { projection: { _id: 1 } }).toArray()).map(
      (d) => d._id,
    );
    await this.delete(ids);
    return ids.length;
  }

  private async deleteParts(filter: mongoose.mongo.Filter<{ _id: mongoose.mongo.ObjectId; metadata: PartMeta }>) {
    const parts = await this.files.find(filter, { projection: { _id: 1 } }).toArray();
    const bucket = this.bucket;
    for (const part of parts) {
      await bucket.delete(part._id).catch(() => undefined); // already gone
    }
  }
}
