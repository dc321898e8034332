// The hot path of the MongoDB store: a write batch (sends, acks, last-seen), mailbox reads and mailbox expiry.
// Each stored send is ONE message document — its idempotency key (unique index) and every recipient's entry — so
// one insert is its durable commit; no step needs a multi-document transaction.
import type { AnyBulkWriteOperation } from 'mongoose';
import type {
  GroupRecipientsOutcome,
  MailboxCaps,
  MailboxEntry,
  SendOutcome,
  SendRequest,
  SweepCutoffs,
  WriteBatch,
} from '../store.js';
import { SEQ_STRIDE } from './models.js';
import type { MessageDoc, Models, UserDoc } from './models.js';
import { KeptUsage, MAX_DOCUMENT_BYTES, documentBytes, sizeOf, withinCaps } from './caps.js';
import type { Planned } from './caps.js';
import { bytesOf, chunks, inBoundedRequests, isDuplicateKey } from './util.js';

/** Device ids become field names (`entries.<deviceId>`): only the relay's own id alphabet may. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;

function entryPath(deviceId: string): string {
  if (!SAFE_ID.test(deviceId)) throw new Error('a device id that cannot name a field');
  return `entries.${deviceId}`;
}

const keyOf = (send: SendRequest): string => `${send.senderDeviceId}:${send.id}`;

const DAY_MS = 24 * 3600 * 1000;
const COUNTER = 'messages';
/** Renumbering rounds before a batch gives up (only FerretDB's lost increments ever need a second). */
const MAX_NUMBERING_ATTEMPTS = 20;

/** Acknowledged seqs of one device per ack statement. */
const ACK_SEQS_PER_STATEMENT = 100;

const messageIdOf = (key: string): string => key.slice(key.indexOf(':') + 1);

function entriesOf(p: Planned, doc: MessageDoc, now: number): MailboxEntry[] {
  return p.deliveries.map(({ to, body }) => {
    const entry: MailboxEntry = { deviceId: to, seq: doc.entries[to]?.seq ?? 0, id: messageIdOf(p.key), ts: now, body };
    if (p.group !== null) entry.group = p.group;
    return entry;
  });
}

export interface MongoMailboxOptions {
  /** How long a message document is kept at most (the TTL index's horizon): the longer of mailbox TTL and idempotency. */
  retentionDays: number;
}

export class MongoMailbox {
  /** Each recipient device's mailbox usage, for the caps (see KeptUsage). */
  readonly usage = new KeptUsage();

  constructor(
    private readonly m: Models,
    private readonly o: MongoMailboxOptions,
  ) {}

  /** Creates the counter document (never upserted: concurrent upserts race) at or above every document number. */
  async init(): Promise<void> {
    try {
      await this.m.counters.create({ _id: COUNTER, n: 0 });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const top = await this.m.messages.findOne({}, { _id: 1 }).sort({ _id: -1 }).lean();
    if (top) await this.m.counters.updateOne({ _id: COUNTER }, { $max: { n: top._id } });
  }

  async apply(batch: WriteBatch, now: number): Promise<SendOutcome[]> {
    const outcomes = await this.applySends(batch.sends, now, batch.caps);
    await Promise.all([this.applyAcks(batch.acks), this.applyLastSeen(batch.lastSeen)]);
    return outcomes;
  }

  async groupRecipients(
    groupId: string,
    senderUserId: string,
    senderDeviceId: string,
  ): Promise<GroupRecipientsOutcome> {
    const group = await this.m.groups.findById(groupId, { memberIds: 1 }).lean();
    if (!group) return { status: 'not_found' };
    if (!group.memberIds.includes(senderUserId)) return { status: 'forbidden' };
    const deviceIds = await this.memberDevices(group.memberIds);
    return { status: 'ok', deviceIds: deviceIds.filter((d) => d !== senderDeviceId) };
  }

  /** Every device of these users that has keys (a signed prekey): by member position, then device age and id. */
  private async memberDevices(memberIds: string[]): Promise<string[]> {
    const devices = await this.m.devices
      .find({ userId: { $in: memberIds }, signedPrekey: { $ne: null } }, { userId: 1, createdAt: 1 })
      .sort({ createdAt: 1, _id: 1 })
      .lean();
    const position = new Map(memberIds.map((id, i) => [id, i]));
    return devices
      .sort((a, b) => (position.get(a.userId) ?? 0) - (position.get(b.userId) ?? 0)) // stable: keeps device order
      .map((d) => d._id);
  }

  async fetch(deviceId: string, afterSeq: number, limit: number, maxBytes: number): Promise<MailboxEntry[]> {
    const path = entryPath(deviceId);
    // Documents after the one holding afterSeq have only larger seqs; that one may hold this device's older entry.
    const docs = await this.m.messages
      .find({ to: deviceId, _id: { $gte: Math.floor(afterSeq / SEQ_STRIDE) } })
      .select({ key: 1, ts: 1, group: 1, body: 1, [path]: 1 })
      .sort({ _id: 1 })
      .limit(limit + 1)
      .lean<MessageDoc[]>();
    const entries: MailboxEntry[] = [];
    let bytes = 0;
    for (const doc of docs) {
      const stored = doc.entries?.[deviceId];
      if (!stored || stored.seq <= afterSeq) continue;
      const body = bytesOf(stored.body ?? doc.body);
      if (!body) continue;
      if (entries.length >= limit || (entries.length > 0 && bytes + body.length > maxBytes)) break;
      bytes += body.length;
      const entry: MailboxEntry = {
        deviceId,
        seq: stored.seq,
        id: messageIdOf(doc.key),
        ts: doc.ts,
        body,
      };
      if (doc.group) entry.group = doc.group;
      entries.push(entry);
    }
    return entries;
  }

  count(deviceId: string): Promise<number> {
    return this.m.messages.countDocuments({ to: deviceId });
  }

  /** Mailbox expiry and idempotency expiry; returns how many entries and idempotency records went. */
  async sweep(cutoffs: SweepCutoffs): Promise<{ mailbox: number; sent: number }> {
    let mailbox = 0;
    const expiredEntries = await this.m.messages
      .find({ ts: { $lt: cutoffs.mailboxBefore }, 'to.0': { $exists: true } }, { to: 1 })
      .lean();
    for (const doc of expiredEntries) {
      const res = await this.m.messages.updateOne(
        { _id: doc._id, ts: { $lt: cutoffs.mailboxBefore } },
        { $set: { to: [], entries: {} }, $unset: { body: '' } },
      );
      if (res.modifiedCount === 1) mailbox += doc.to.length;
    }
    const deleted = await this.m.messages.deleteMany({ ts: { $lt: cutoffs.sentBefore }, to: { $size: 0 } });
    let sent = deleted.deletedCount;
    // Entries that outlive their idempotency record (a mailbox TTL longer than the idempotency window): the key
    // is replaced by a unique tombstone, so the same id is a new send again.
    const outliving = await this.m.messages
      .find({ ts: { $lt: cutoffs.sentBefore }, key: { $not: /^~/ } }, { _id: 1 })
      .lean();
    for (const doc of outliving) {
      const res = await this.m.messages.updateOne(
        { _id: doc._id, key: { $not: /^~/ } },
        { $set: { key: `~${doc._id}` } },
      );
      sent += res.modifiedCount;
    }
    if (mailbox > 0) this.usage.forgetAll(); // entries went: every kept usage figure is read again
    return { mailbox, sent };
  }

  private async applySends(sends: SendRequest[], now: number, caps?: MailboxCaps): Promise<SendOutcome[]> {
    const outcomes: (SendOutcome | undefined)[] = new Array<SendOutcome | undefined>(sends.length);
    if (sends.length === 0) return [];

    const keys = [...new Set(sends.map(keyOf))];
    // One key (a batch of one send, the usual case below saturation) by equality: FerretDB 1.x reads every document
    // for an `$in` (relay/README.md, "FerretDB"); MongoDB uses the index either way.
    const byKey = keys.length === 1 ? { key: keys[0] } : { key: { $in: keys } };
    const known = new Map((await this.m.messages.find(byKey, { key: 1, ts: 1 }).lean()).map((d) => [d.key, d.ts]));
    const directTo = new Set<string>();
    const groupIds = new Set<string>();
    for (const s of sends) {
      if (s.target.kind === 'direct') for (const e of s.target.envelopes) directTo.add(e.to);
      else groupIds.add(s.target.groupId);
    }
    const existingDevices = new Set(
      (await this.m.devices.find({ _id: { $in: [...directTo] } }, { _id: 1 }).lean()).map((d) => d._id),
    );
    const groupRecipients = new Map<string, (sender: SendRequest) => GroupRecipientsOutcome>();
    for (const groupId of groupIds) groupRecipients.set(groupId, await this.groupResolver(groupId));

    const planned: Planned[] = [];
    const inBatch = new Set<string>();
    sends.forEach((send, index) => {
      const key = keyOf(send);
      const ts = known.get(key);
      if (ts !== undefined) {
        outcomes[index] = { status: 'duplicate', ts };
        return;
      }
      if (inBatch.has(key)) {
        outcomes[index] = { status: 'duplicate', ts: now };
        return;
      }
      if (send.target.kind === 'direct') {
        if (send.target.envelopes.some((e) => !existingDevices.has(e.to))) {
          outcomes[index] = { status: 'unknown_recipient' };
          return;
        }
        planned.push({ index, key, group: null, deliveries: send.target.envelopes });
      } else {
        const recipients = groupRecipients.get(send.target.groupId)?.(send) ?? { status: 'not_found' as const };
        if (recipients.status !== 'ok') {
          outcomes[index] = recipients;
          return;
        }
        const body = send.target.body;
        planned.push({
          index,
          key,
          group: send.target.groupId,
          deliveries: recipients.deviceIds.map((to) => ({ to, body })),
        });
      }
      inBatch.add(key);
    });

    const fitting = caps ? await withinCaps(this.m, this.usage, planned, outcomes, caps, now) : planned;
    if (!caps) this.usage.add(planned);
    const sized = fitting.filter((p) => {
      if (documentBytes(p) <= MAX_DOCUMENT_BYTES) return true;
      outcomes[p.index] = { status: 'too_large' };
      return false;
    });
    if (sized.length > 0) await this.insertPlanned(sized, sends, outcomes, now);
    return outcomes.map((o) => o ?? { status: 'unknown_recipient' });
  }

  /** Reads a group once per batch; the resolver answers for any sender. */
  private async groupResolver(groupId: string): Promise<(sender: SendRequest) => GroupRecipientsOutcome> {
    const group = await this.m.groups.findById(groupId, { memberIds: 1 }).lean();
    if (!group) return () => ({ status: 'not_found' });
    const deviceIds = await this.memberDevices(group.memberIds);
    return (sender) =>
      group.memberIds.includes(sender.senderUserId)
        ? { status: 'ok', deviceIds: deviceIds.filter((d) => d !== sender.senderDeviceId) }
        : { status: 'forbidden' };
  }

  /**
   * Inserts the planned sends, one document each, numbered from the counter. A document refused by the unique
   * index on `key` lost a race with another node's insert of the same send: a duplicate, answered with that send's
   * ts. One refused on `_id` got a number another writer also got — impossible on MongoDB, whose `$inc` is atomic,
   * but FerretDB 1.x loses concurrent increments — and is numbered again.
   */
  private async insertPlanned(
    planned: Planned[],
    sends: SendRequest[],
    outcomes: (SendOutcome | undefined)[],
    now: number,
  ): Promise<void> {
    let pending = planned;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt === MAX_NUMBERING_ATTEMPTS) throw new Error('could not number the message documents');
      if (attempt > 0) await this.renumberFloor();
      const first = await this.allocate(pending.length);
      const docs = pending.map((p, i) => this.document(p, sends[p.index], first + i, now));
      const failed = await this.insertAll(docs);
      const lost = pending.filter((_, i) => failed.has(i));
      const winners =
        lost.length > 0
          ? new Map(
              (await this.m.messages.find({ key: { $in: lost.map((p) => p.key) } }, { key: 1, ts: 1 }).lean()).map(
                (d) => [d.key, d.ts],
              ),
            )
          : new Map<string, number>();
      const again: Planned[] = [];
      pending.forEach((p, i) => {
        const doc = docs[i];
        if (!failed.has(i) && doc) {
          outcomes[p.index] = p.refused
            ? { status: 'stored', ts: now, entries: entriesOf(p, doc, now), refused: p.refused }
            : { status: 'stored', ts: now, entries: entriesOf(p, doc, now) };
          return;
        }
        const ts = winners.get(p.key);
        if (ts !== undefined) outcomes[p.index] = { status: 'duplicate', ts };
        else again.push(p);
      });
      pending = again;
    }
  }

  /** After a collision: a short random pause (concurrent writers fall out of step), and the counter above every number. */
  private async renumberFloor(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
    const top = await this.m.messages.findOne({}, { _id: 1 }).sort({ _id: -1 }).lean();
    if (top) await this.m.counters.updateOne({ _id: COUNTER }, { $max: { n: top._id } });
  }

  /** Reserves `count` document numbers; answers the first. */
  private async allocate(count: number): Promise<number> {
    const counter = await this.m.counters
      .findOneAndUpdate({ _id: COUNTER }, { $inc: { n: count } }, { returnDocument: 'after' })
      .lean();
    if (!counter) throw new Error('the message counter is missing');
    return counter.n - count + 1;
  }

  /** insertMany, unordered; answers the positions refused by a unique index (any other error throws). */
  private async insertAll(docs: MessageDoc[]): Promise<Set<number>> {
    try {
      await this.m.messages.insertMany(docs, { ordered: false, lean: true });
      return new Set();
    } catch (err) {
      const writeErrors = (err as { writeErrors?: { index: number; err?: unknown; code?: number }[] }).writeErrors;
      if (!writeErrors || writeErrors.some((w) => !isDuplicateKey(w.err ?? w))) throw err;
      return new Set(writeErrors.map((w) => w.index));
    }
  }

  private document(p: Planned, send: SendRequest | undefined, docNo: number, now: number): MessageDoc {
    if (p.deliveries.length >= SEQ_STRIDE) throw new Error('too many recipient devices for one message');
    const entries: MessageDoc['entries'] = {};
    p.deliveries.forEach((d, position) => {
      entryPath(d.to);
      const seq = docNo * SEQ_STRIDE + position;
      entries[d.to] = p.group ? { seq } : { seq, body: Buffer.from(d.body) };
    });
    const doc: MessageDoc = {
      _id: docNo,
      key: p.key,
      ts: now,
      size: sizeOf(p),
      to: p.deliveries.map((d) => d.to),
      entries,
      expireAt: new Date(now + this.o.retentionDays * DAY_MS),
    };
    if (p.group !== null && send?.target.kind === 'group') {
      doc.group = p.group;
      doc.body = Buffer.from(send.target.body);
    }
    return doc;
  }

  /**
   * One `updateMany` per device and at most ACK_SEQS_PER_STATEMENT acknowledged seqs (never one statement per
   * message: see BULK_STATEMENTS_PER_REQUEST), in requests of bounded size. The filter names the device (`to`),
   * which FerretDB pushes down to its database, and each entry by its document and its seq.
   */
  private async applyAcks(acks: WriteBatch['acks']): Promise<void> {
    const ops: AnyBulkWriteOperation<MessageDoc>[] = [];
    const groupDocs = new Map<string, Set<number>>();
    for (const { deviceId, seqs } of acks) {
      if (!SAFE_ID.test(deviceId)) continue; // no such device can have entries
      const path = entryPath(deviceId);
      const valid = [...new Set(seqs)].filter((seq) => Number.isSafeInteger(seq) && seq >= 0);
      for (const part of chunks(valid, ACK_SEQS_PER_STATEMENT)) {
        const filter = {
          to: deviceId,
          _id: { $in: [...new Set(part.map((seq) => Math.floor(seq / SEQ_STRIDE)))] },
          [`${path}.seq`]: { $in: part },
        };
        // A group message's one body goes with its last entry: which of these documents are group messages.
        for (const doc of await this.m.messages.find({ ...filter, group: { $ne: null } }, { group: 1 }).lean()) {
          if (!doc.group) continue;
          const docs = groupDocs.get(doc.group) ?? new Set<number>();
          groupDocs.set(doc.group, docs.add(doc._id));
        }
        ops.push({ updateMany: { filter, update: { $unset: { [path]: '' }, $pull: { to: deviceId } } } });
      }
    }
    if (ops.length === 0) return;
    await inBoundedRequests(ops, (chunk) => this.m.messages.bulkWrite(chunk, { ordered: false }));
    for (const { deviceId } of acks) this.usage.forget(deviceId); // entries went: read their usage again
    // By group (pushed down by FerretDB), not a scan of every message document.
    const bodies: AnyBulkWriteOperation<MessageDoc>[] = [...groupDocs].map(([group, docs]) => ({
      updateMany: {
        filter: { group, _id: { $in: [...docs] }, to: { $size: 0 }, body: { $ne: null } },
        update: { $unset: { body: '' } },
      },
    }));
    await inBoundedRequests(bodies, (chunk) => this.m.messages.bulkWrite(chunk, { ordered: false }));
  }

  private async applyLastSeen(lastSeen: WriteBatch['lastSeen']): Promise<void> {
    if (lastSeen.length === 0) return;
    // updateMany on the unique _id: the same write as updateOne, without FerretDB's held connection per statement.
    const ops: AnyBulkWriteOperation<UserDoc>[] = lastSeen.map(({ userId, ts }) => ({
      // Nothing is stored of a user who does not share presence.
      updateMany: { filter: { _id: userId, sharePresence: true }, update: { $set: { lastSeen: ts } } },
    }));
    await inBoundedRequests(ops, (chunk) => this.m.users.bulkWrite(chunk, { ordered: false }));
  }
}
