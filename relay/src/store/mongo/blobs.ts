// Blobs of the MongoDB store (issue #15): metadata in the `blobs` collection, bytes in GridFS (bucket `blobdata`).
// GridFS files cannot be appended to, so each data request becomes one GridFS file (a "part"). A part is written
// completely (GridFS commits its files document last) and then committed by inserting its part document, whose `_id`
// is blob id + offset: the unique index lets exactly one writer commit an offset, even on FerretDB 1.x, whose
// conditional updates are not atomic under concurrency. Only then does `received` move past it. A writer that finds
// the offset committed deletes its own part and first rolls `received` forward past the committed one (which also
// repairs a crash between the insert and the move). Reads follow the part documents below `received`; leftovers of
// aborted or lost writes carry the blob id and go with the blob.
import { Readable } from 'node:stream';
import mongoose from 'mongoose';
import type { Connection } from 'mongoose';
import { BlobWriteConflict } from '../store.js';
import type { BlobRecord, BlobStore, NewBlob } from '../store.js';
import { isDuplicateKey } from './util.js';

interface BlobDoc {
  _id: string;
  owner: string;
  size: number;
  received: number;
  sha256: string;
  createdAt: number;
  completedAt: number | null;
  expiresAt: number;
  /** The stored messages that name the blob (a send's `blobs`). */
  links: { senderDeviceId: string; messageId: string; ts: number }[];
}

/** A committed part: `_id` is `<blobId>:<offset>`, unique. */
interface PartDoc {
  _id: string;
  blobId: string;
  offset: number;
  length: number;
  fileId: mongoose.mongo.ObjectId;
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

  private get parts(): mongoose.mongo.Collection<PartDoc> {
    return this.db.collection<PartDoc>('blobparts');
  }

  private get files(): mongoose.mongo.Collection<{ _id: mongoose.mongo.ObjectId; length: number; metadata: PartMeta }> {
    return this.db.collection(`${BUCKET}.files`);
  }

  /** Indexes for the owner's quota, the sweep and the parts of a blob. */
  async init(): Promise<void> {
    await this.docs.createIndex({ owner: 1 });
    await this.docs.createIndex({ expiresAt: 1 });
    await this.files.createIndex({ 'metadata.blobId': 1, 'metadata.offset': 1 });
    await this.parts.createIndex({ blobId: 1, offset: 1 });
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
    if (await this.rollForward(blobId, offset)) throw new BlobWriteConflict();
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
      await this.deleteFiles({ _id: upload.id });
      return offset;
    }
    try {
      await this.parts.insertOne({
        _id: `${blobId}:${offset}`,
        blobId,
        offset,
        length: end - offset,
        fileId: upload.id,
      });
    } catch (err) {
      await this.deleteFiles({ _id: upload.id });
      if (!isDuplicateKey(err)) throw err;
      await this.rollForward(blobId, offset);
      throw new BlobWriteConflict();
    }
    await this.docs.updateOne({ _id: blobId, received: offset }, { $set: { received: end } });
    if (!(await this.docs.findOne({ _id: blobId }, { projection: { _id: 1 } }))) {
      await this.delete([blobId]); // deleted while the bytes were arriving: nothing may stay behind
      throw new Error('the blob went away during the write');
    }
    return end;
  }

  /** When a part is committed at `offset`, moves `received` past it (idempotent); true when there was one. */
  private async rollForward(blobId: string, offset: number): Promise<boolean> {
    const part = await this.parts.findOne({ _id: `${blobId}:${offset}` });
    if (!part) return false;
    await this.docs.updateOne({ _id: blobId, received: offset }, { $set: { received: offset + part.length } });
    return true;
  }

  read(blobId: string, start: number, end: number): Readable {
    const docs = this.docs;
    const parts = this.parts;
    const bucket = this.bucket;
    async function* bytes(): AsyncGenerator<Uint8Array> {
      const doc = await docs.findOne({ _id: blobId }, { projection: { received: 1 } });
      if (!doc) throw new Error('no such blob');
      const committed = await parts
        .find({ blobId, offset: { $lt: doc.received } })
        .sort({ offset: 1 })
        .toArray();
      for (const part of committed) {
        const from = part.offset;
        const to = from + part.length; // exclusive
        if (to <= start || from > end) continue;
        const stream = bucket.openDownloadStream(part.fileId, {
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
    await this.parts.deleteMany({ blobId: { $in: blobIds } });
    await this.deleteFiles({ 'metadata.blobId': { $in: blobIds } });
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

  private async deleteFiles(filter: mongoose.mongo.Filter<{ _id: mongoose.mongo.ObjectId; metadata: PartMeta }>) {
    const parts = await this.files.find(filter, { projection: { _id: 1 } }).toArray();
    const bucket = this.bucket;
    for (const part of parts) {
      await bucket.delete(part._id).catch(() => undefined); // already gone
    }
  }
}
