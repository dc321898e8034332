// Key transparency documents of the MongoDB store (issue #16). No transactions here: an append inserts its leaf
// (unique on index and on user + seq: of two racing appends one wins), then its nodes, then moves the size. A leaf
// whose nodes are missing (a crash between the steps) is completed by the next append through `finish`.
import mongoose from 'mongoose';
import type { Connection, Model } from 'mongoose';
import type { KtCosignatureRecord, KtLeafRecord, KtNodeRecord } from '../store.js';
import { isDuplicateKey, onlyDuplicateKeys, requiredBytes } from './util.js';

const { Schema } = mongoose;

interface KtLeafDoc {
  _id: number;
  userId: string;
  seq: number;
  entry: Buffer;
}

/** `_id` is `${level}:${index}`. */
interface KtNodeDoc {
  _id: string;
  hash: Buffer;
}

interface KtHeadDoc {
  _id: string;
  size: number;
}

/** `_id` is `${keyId}:${size}`. */
interface KtCosignatureDoc {
  _id: string;
  keyId: string;
  size: number;
  root: Buffer;
  timestamp: number;
  line: string;
}

const common = { versionKey: false, autoIndex: false, autoCreate: false, strict: true } as const;

const leafSchema = new Schema<KtLeafDoc>(
  {
    _id: { type: Number, required: true },
    userId: { type: String, required: true },
    seq: { type: Number, required: true },
    entry: { type: Buffer, required: true },
  },
  common,
);
leafSchema.index({ userId: 1, seq: 1 }, { unique: true });
leafSchema.index({ userId: 1, _id: 1 });
const nodeSchema = new Schema<KtNodeDoc>(
  { _id: { type: String, required: true }, hash: { type: Buffer, required: true } },
  common,
);
const headSchema = new Schema<KtHeadDoc>({ _id: String, size: Number }, common);
const cosignatureSchema = new Schema<KtCosignatureDoc>(
  {
    _id: { type: String, required: true },
    keyId: { type: String, required: true },
    size: { type: Number, required: true },
    root: { type: Buffer, required: true },
    timestamp: { type: Number, required: true },
    line: { type: String, required: true },
  },
  common,
);
cosignatureSchema.index({ keyId: 1, size: -1 });

const HEAD = 'head';
const nodeId = (level: number, index: number): string => `${level}:${index}`;
const toLeaf = (d: KtLeafDoc): KtLeafRecord => ({
  index: d._id,
  userId: d.userId,
  seq: d.seq,
  entry: requiredBytes(d.entry),
});

export class MongoKt {
  private readonly leaves: Model<KtLeafDoc>;
  private readonly nodeDocs: Model<KtNodeDoc>;
  private readonly head: Model<KtHeadDoc>;
  private readonly cosignatureDocs: Model<KtCosignatureDoc>;
  private indexes: Promise<void> | null = null;

  constructor(connection: Connection) {
    this.leaves = connection.model<KtLeafDoc>('KtLeaf', leafSchema, 'kt_leaves');
    this.nodeDocs = connection.model<KtNodeDoc>('KtNode', nodeSchema, 'kt_nodes');
    this.head = connection.model<KtHeadDoc>('KtHead', headSchema, 'kt_head');
    this.cosignatureDocs = connection.model<KtCosignatureDoc>('KtCosignature', cosignatureSchema, 'kt_cosignatures');
  }

  /** Creates the indexes once, on first use (the unique one is what makes appends a compare-and-set). */
  private ready(): Promise<void> {
    this.indexes ??= (async () => {
      await this.leaves.createIndexes();
      await this.cosignatureDocs.createIndexes();
    })();
    return this.indexes;
  }

  async size(): Promise<number> {
    return (await this.head.findById(HEAD).lean())?.size ?? 0;
  }

  async append(leaf: KtLeafRecord, nodes: KtNodeRecord[]): Promise<'appended' | 'conflict'> {
    await this.ready();
    if ((await this.size()) !== leaf.index) return 'conflict';
    try {
      await this.leaves.create({ _id: leaf.index, userId: leaf.userId, seq: leaf.seq, entry: Buffer.from(leaf.entry) });
    } catch (err) {
      if (isDuplicateKey(err)) return 'conflict';
      throw err;
    }
    await this.finish(leaf.index + 1, nodes);
    return 'appended';
  }

  async finish(size: number, nodes: KtNodeRecord[]): Promise<void> {
    if (nodes.length > 0) {
      const upserts = nodes.map((n) => ({
        updateOne: {
          filter: { _id: nodeId(n.level, n.index) },
          update: { $setOnInsert: { hash: Buffer.from(n.hash) } },
          upsert: true,
        },
      }));
      // Another node finishing the same leaf (it found it half-appended) may insert some of these nodes between an
      // upsert's look-up and its insert: a duplicate key. A node never changes once stored ($setOnInsert), so the next
      // pass only inserts what is still missing. Each refused upsert names a node that now exists (FerretDB may stop a
      // pass at its first refusal), so one pass per node and one more always ends.
      for (let pass = 0; ; pass++) {
        try {
          await this.nodeDocs.bulkWrite(upserts, { ordered: false });
          break;
        } catch (err) {
          if (pass >= upserts.length || !onlyDuplicateKeys(err)) throw err;
        }
      }
    }
    try {
      await this.head.updateOne({ _id: HEAD }, { $max: { size } }, { upsert: true });
    } catch (err) {
      // Two first appends at once (two nodes, an empty log) both upsert the missing head: one inserts it, the other
      // gets a duplicate key and now finds the document to update.
      if (!isDuplicateKey(err)) throw err;
      await this.head.updateOne({ _id: HEAD }, { $max: { size } });
    }
  }

  async nodes(keys: { level: number; index: number }[]): Promise<KtNodeRecord[]> {
    if (keys.length === 0) return [];
    const docs = await this.nodeDocs.find({ _id: { $in: keys.map((k) => nodeId(k.level, k.index)) } }).lean();
    const byId = new Map(docs.map((d) => [d._id, requiredBytes(d.hash)]));
    return keys.flatMap((k) => {
      const hash = byId.get(nodeId(k.level, k.index));
      return hash ? [{ level: k.level, index: k.index, hash }] : [];
    });
  }

  async forget(userId: string): Promise<void> {
    const docs = await this.leaves.find({ userId }, { _id: 1 }).lean();
    for (const d of docs) {
      await this.leaves.updateOne({ _id: d._id }, { $set: { userId: `~${d._id}`, entry: Buffer.alloc(0) } });
    }
  }

  async leaf(index: number): Promise<KtLeafRecord | null> {
    const doc = await this.leaves.findById(index).lean();
    return doc ? toLeaf(doc) : null;
  }

  async latestOf(userId: string, size: number): Promise<KtLeafRecord | null> {
    const doc = await this.leaves
      .findOne({ userId, _id: { $lt: size } })
      .sort({ _id: -1 })
      .lean();
    return doc ? toLeaf(doc) : null;
  }

  async entriesOf(userId: string, from: number, to: number, limit: number): Promise<KtLeafRecord[]> {
    const docs = await this.leaves
      .find({ userId, _id: { $gte: from, $lt: to } })
      .sort({ _id: 1 })
      .limit(limit)
      .lean();
    return docs.map(toLeaf);
  }

  /** Upserts by witness and size, then deletes that witness's documents beyond its `keep` largest sizes. */
  async putCosignature(c: KtCosignatureRecord, keep: number): Promise<void> {
    await this.ready();
    const { keyId, size, timestamp, line } = c;
    await this.cosignatureDocs.updateOne(
      { _id: `${keyId}:${size}` },
      { $set: { keyId, size, root: Buffer.from(c.root), timestamp, line } },
      { upsert: true },
    );
    const stale = await this.cosignatureDocs.find({ keyId }, { _id: 1 }).sort({ size: -1 }).skip(keep).lean();
    if (stale.length > 0) await this.cosignatureDocs.deleteMany({ _id: { $in: stale.map((d) => d._id) } });
  }

  async cosignatures(keyIds: string[]): Promise<KtCosignatureRecord[]> {
    if (keyIds.length === 0) return [];
    const docs = await this.cosignatureDocs
      .find({ keyId: { $in: keyIds } })
      .sort({ size: -1, keyId: 1 })
      .lean();
    return docs.map((d) => ({
      keyId: d.keyId,
      size: d.size,
      root: requiredBytes(d.root),
      timestamp: d.timestamp,
      line: d.line,
    }));
  }
}
