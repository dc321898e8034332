// The store contract on a MongoDB-wire server (FerretDB spawned here, or MONGODB_URI_TEST), plus what only the
// MongoDB backend has to prove: idempotency across two store instances (two relay nodes), expiry documents, the
// durable write concern, and failing fast without a server.
import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import { afterAll, describe, expect, it } from 'vitest';
import { BYTES_PER_RECIPIENT, MAX_DOCUMENT_BYTES, USAGE_FRESH_MS } from '../src/store/mongo/caps.js';
import { SEQ_STRIDE } from '../src/store/mongo/models.js';
import { MongoStore } from '../src/store/mongo/mongo-store.js';
import { BULK_STATEMENTS_PER_REQUEST } from '../src/store/mongo/util.js';
import type { SendRequest } from '../src/store/store.js';
import { freePort, startMongo } from './services.js';
import type { Service } from './services.js';
import { T0, newAccount, runStoreContract } from './store.contract.js';

/** The same cap for one-time X25519 and one-time KEM prekeys. */
const limits = (n: number) => ({ oneTime: n, kemOneTime: n });

const started = await startMongo();
const mongo: Service | null = 'service' in started ? started.service : null;
if (!mongo) console.warn(`[store.mongo] skipped: ${'skip' in started ? started.skip : ''}`);

const stores: MongoStore[] = [];
async function openStore(dbName = `contract_${randomBytes(6).toString('hex')}`): Promise<MongoStore> {
  if (!mongo) throw new Error('no server');
  // The contract writes at fixed times in 2023: a TTL monitor on the server's clock would expire them mid-test.
  const store = await MongoStore.open({ uri: mongo.url, dbName, retentionDays: 30, ttlIndexes: false });
  stores.push(store);
  return store;
}

afterAll(async () => {
  // Bounded: a server that stopped answering (the failure some tests here look for) must not hold the file. It is
  // then stopped first, so that closing the stores does not wait on it.
  let answering = true;
  for (const store of stores) {
    if (!answering) break;
    answering = await answersWithin(5000, () => store.dangerousTestOnlyDropDatabase()).then(
      () => true,
      () => false,
    );
  }
  if (!answering) await mongo?.stop();
  for (const store of stores) await store.close();
  await mongo?.stop();
});

describe('the MongoDB message document', () => {
  it('holds fewer recipients at its size ceiling than the seq stride numbers, far below 16 MiB', () => {
    expect(MAX_DOCUMENT_BYTES).toBeLessThan(16 * 1024 * 1024);
    expect(Math.floor(MAX_DOCUMENT_BYTES / BYTES_PER_RECIPIENT)).toBeLessThan(SEQ_STRIDE);
  });
});

describe.skipIf(!mongo)('MongoDB store', () => {
  runStoreContract('MongoDB', () => openStore());

  describe('the MongoDB backend', () => {
    it('writes the activity times of devices touched at once in one bulk write, each its latest (a reconnect storm)', async () => {
      const dbName = `touch_${randomBytes(6).toString('hex')}`;
      const store = await openStore(dbName);
      const accounts = Array.from({ length: 50 }, (_, i) => newAccount(`t${i}`));
      for (const account of accounts) await store.createAccount(account);
      const first = accounts[0] as (typeof accounts)[number];
      // Every device connects at once; the first also touches twice more (a later time, then an earlier one), and a
      // device that does not exist (removed meanwhile) is among them. Mongoose reports each call it sends.
      const calls: string[] = [];
      mongoose.set('debug', (collection: string, method: string) => void calls.push(`${collection}.${method}`));
      try {
        await Promise.all([
          ...accounts.map((a, i) => store.touchDevice(a.deviceId, T0 + 100 + i)),
          store.touchDevice(first.deviceId, T0 + 500),
          store.touchDevice(first.deviceId, T0 + 300),
          store.touchDevice('no-such-device', T0 + 100),
        ]);
      } finally {
        mongoose.set('debug', false);
      }
      // 51 devices in requests of at most BULK_STATEMENTS_PER_REQUEST statements, where each touch was a request.
      expect(calls).toEqual(Array(Math.ceil(51 / BULK_STATEMENTS_PER_REQUEST)).fill('devices.bulkWrite'));
      for (const [i, account] of accounts.entries()) {
        const [device] = await store.listDevices(account.userId);
        expect(device?.lastActiveAt, account.username).toBe(i === 0 ? T0 + 500 : T0 + 100 + i);
      }
      const pending = store.touchDevice(first.deviceId, T0 + 900);
      await store.close();
      stores.splice(stores.indexOf(store), 1); // closed: afterAll drops the database through the reopened one
      await pending; // written before the connection closed
      await expect(store.touchDevice(first.deviceId, T0 + 901)).rejects.toThrow('closed');
      const reopened = await openStore(dbName);
      expect((await reopened.listDevices(first.userId))[0]?.lastActiveAt).toBe(T0 + 900);
    });

    /** Two stores on one database (two relay nodes), with alice and bob signed up. */
    async function twoNodes(prefix: string) {
      const dbName = `${prefix}_${randomBytes(6).toString('hex')}`;
      const one = await openStore(dbName);
      const two = await openStore(dbName);
      const alice = newAccount('alice');
      const bob = newAccount('bob');
      await one.createAccount(alice);
      await one.createAccount(bob);
      return { one, two, alice, bob };
    }

    const send = (sender: ReturnType<typeof newAccount>, id: string, to: string): SendRequest => ({
      senderUserId: sender.userId,
      senderDeviceId: sender.deviceId,
      id,
      target: { kind: 'direct', envelopes: [{ to, body: Buffer.from(id) }] },
    });

    it('enforces idempotency in the database: two stores (two relay nodes) racing one id store it once', async () => {
      const { one, two, alice, bob } = await twoNodes('race');
      for (let round = 0; round < 5; round++) {
        const id = `race${round}`;
        const [a, b] = await Promise.all([
          one.applyWrites({ sends: [send(alice, id, bob.deviceId)], acks: [], lastSeen: [] }, T0 + round * 10),
          two.applyWrites({ sends: [send(alice, id, bob.deviceId)], acks: [], lastSeen: [] }, T0 + round * 10 + 1),
        ]);
        const statuses = [a?.[0]?.status, b?.[0]?.status].sort();
        expect(statuses).toEqual(['duplicate', 'stored']);
        const stored = [a?.[0], b?.[0]].find((o) => o?.status === 'stored');
        const dup = [a?.[0], b?.[0]].find((o) => o?.status === 'duplicate');
        expect(dup).toEqual({ status: 'duplicate', ts: stored?.status === 'stored' ? stored.ts : -1 });
      }
      expect(await one.countMailbox(bob.deviceId)).toBe(5);
      expect(await two.countMailbox(bob.deviceId)).toBe(5);
    });

    it('numbers concurrent sends of two stores uniquely: every send stored once, every seq distinct', async () => {
      const { one, two, alice, bob } = await twoNodes('number');
      // Each node's write batcher commits one batch at a time; the two nodes run side by side.
      const node = async (store: MongoStore, from: number) => {
        const outcomes = [];
        for (let i = from; i < 30; i += 2) {
          const batch = { sends: [send(alice, `n${i}`, bob.deviceId), send(bob, `n${i}`, alice.deviceId)] };
          outcomes.push(...(await store.applyWrites({ ...batch, acks: [], lastSeen: [] }, T0 + i)));
        }
        return outcomes;
      };
      const stored = (await Promise.all([node(one, 0), node(two, 1)])).flat();
      expect(stored.every((o) => o.status === 'stored')).toBe(true);
      const seqs = stored.flatMap((o) => (o.status === 'stored' ? o.entries.map((e) => e.seq) : []));
      expect(new Set(seqs).size).toBe(60);
      const mailbox = await two.fetchMailbox(bob.deviceId, 0, 100, 1 << 20);
      expect(mailbox.map((e) => e.id).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `n${i}`).sort());
    });

    describe('mailbox usage for the caps, kept per node', () => {
      const groupSend = (sender: ReturnType<typeof newAccount>, id: string, groupId: string): SendRequest => ({
        senderUserId: sender.userId,
        senderDeviceId: sender.deviceId,
        id,
        target: { kind: 'group', groupId, body: Buffer.from(id) },
      });
      const caps = (maxEntries: number) => ({ maxEntries, maxBytes: 1 << 20 });
      const statusOf = async (store: MongoStore, s: SendRequest, now: number, maxEntries: number) =>
        (await store.applyWrites({ sends: [s], acks: [], lastSeen: [], caps: caps(maxEntries) }, now))[0]?.status;

      it('reads each recipient device’s usage once while it is fresh, not once per send, however full', async () => {
        const store = await openStore();
        const members = Array.from({ length: 11 }, (_, i) => newAccount(`member${i}`));
        for (const a of members) await store.createAccount(a);
        const groupId = randomBytes(16).toString('base64url');
        await store.createGroup(
          groupId,
          members.map((a, i) => ({ userId: a.userId, admin: i === 0 })),
          T0,
        );
        const sender = members[0]!;
        const before = store.dangerousTestOnlyUsageReads();
        for (let i = 0; i < 40; i++)
          expect(await statusOf(store, groupSend(sender, `g${i}`, groupId), T0 + i, 100)).toBe('stored');
        expect(store.dangerousTestOnlyUsageReads() - before).toBe(10); // the ten other members' devices, once
        // Once the figures are USAGE_FRESH_MS old, they are read again (once).
        await statusOf(store, groupSend(sender, 'late', groupId), T0 + USAGE_FRESH_MS, 100);
        expect(store.dangerousTestOnlyUsageReads() - before).toBe(20);
      });

      it('counts this node’s own sends between reads, those without caps too, and refuses at the cap', async () => {
        const store = await openStore();
        const alice = newAccount('alice');
        const bob = newAccount('bob');
        await store.createAccount(alice);
        await store.createAccount(bob);
        expect(await statusOf(store, send(alice, 'c0', bob.deviceId), T0, 3)).toBe('stored'); // read: 0
        const [uncapped] = await store.applyWrites(
          { sends: [send(alice, 'c1', bob.deviceId)], acks: [], lastSeen: [] },
          T0 + 1,
        );
        expect(uncapped?.status).toBe('stored');
        expect(await statusOf(store, send(alice, 'c2', bob.deviceId), T0 + 2, 3)).toBe('stored');
        expect(await statusOf(store, send(alice, 'c3', bob.deviceId), T0 + 3, 3)).toBe('mailbox_full');
        expect(await store.countMailbox(bob.deviceId)).toBe(3);
      });

      it('sees another node’s sends at its next read, USAGE_FRESH_MS at most after the last', async () => {
        const { one, two, alice, bob } = await twoNodes('usage');
        expect(await statusOf(one, send(alice, 'u1', bob.deviceId), T0, 3)).toBe('stored'); // one read bob: 0
        expect(await statusOf(two, send(alice, 'u2', bob.deviceId), T0, 3)).toBe('stored'); // two read bob: 1
        expect(await statusOf(two, send(alice, 'u3', bob.deviceId), T0, 3)).toBe('stored');
        // Bob's mailbox is at its cap. Node one's figure (1) is fresh: it is trusted, and one more passes the cap…
        expect(await statusOf(one, send(alice, 'u4', bob.deviceId), T0 + 1, 3)).toBe('stored');
        expect(await one.countMailbox(bob.deviceId)).toBe(4);
        // …and once it is USAGE_FRESH_MS old, it is read again: full (its own count alone would say 2).
        expect(await statusOf(one, send(alice, 'u5', bob.deviceId), T0 + USAGE_FRESH_MS, 3)).toBe('mailbox_full');
        expect(await statusOf(two, send(alice, 'u6', bob.deviceId), T0 + 2, 3)).toBe('mailbox_full');
      });

      it('makes room once the sweep deleted expired entries', async () => {
        const store = await openStore();
        const alice = newAccount('alice');
        const bob = newAccount('bob');
        await store.createAccount(alice);
        await store.createAccount(bob);
        expect(await statusOf(store, send(alice, 's1', bob.deviceId), T0, 1)).toBe('stored');
        expect(await statusOf(store, send(alice, 's2', bob.deviceId), T0 + 1, 1)).toBe('mailbox_full');
        const swept = await store.sweepExpired({ mailboxBefore: T0 + 1, sentBefore: T0, now: T0 + 2 });
        expect(swept.mailbox).toBe(1);
        expect(await statusOf(store, send(alice, 's3', bob.deviceId), T0 + 3, 1)).toBe('stored');
      });
    });

    it('hands a one-time prekey to exactly one of many concurrent bundle fetches', async () => {
      const dbName = `bundle_${randomBytes(6).toString('hex')}`;
      const one = await openStore(dbName);
      const two = await openStore(dbName);
      const bob = newAccount('bob', {
        oneTimePrekeys: Array.from({ length: 5 }, (_, i) => ({ keyId: i + 1, publicKey: randomBytes(32) })),
      });
      await one.createAccount(bob);
      const bundles = await Promise.all(
        Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? one : two).takeBundle(bob.userId)),
      );
      const handed = bundles.map((b) => b?.devices[0]?.oneTimePrekey?.keyId).filter((k) => k !== undefined);
      expect(handed.sort()).toEqual([1, 2, 3, 4, 5]);
    });

    it('keeps a fully acknowledged message as a bodiless idempotency record', async () => {
      const store = await openStore();
      const alice = newAccount('alice');
      const bob = newAccount('bob');
      await store.createAccount(alice);
      await store.createAccount(bob);
      const group = randomBytes(16).toString('base64url');
      await store.createGroup(
        group,
        [
          { userId: alice.userId, admin: true },
          { userId: bob.userId, admin: false },
        ],
        T0,
      );
      const groupSend: SendRequest = {
        senderUserId: alice.userId,
        senderDeviceId: alice.deviceId,
        id: 'g',
        target: { kind: 'group', groupId: group, body: Buffer.from('group body') },
      };
      const [outcome] = await store.applyWrites({ sends: [groupSend], acks: [], lastSeen: [] }, T0);
      expect(outcome?.status).toBe('stored');
      const seqs = outcome?.status === 'stored' ? outcome.entries.map((e) => e.seq) : [];
      await store.applyWrites({ sends: [], acks: [{ deviceId: bob.deviceId, seqs }], lastSeen: [] }, T0);
      expect(await store.countMailbox(bob.deviceId)).toBe(0);
      const raw = await rawMessage(store, 'g');
      expect(raw).toMatchObject({ to: [], entries: {} });
      expect(raw?.body ?? null).toBeNull();
      expect(await store.applyWrites({ sends: [groupSend], acks: [], lastSeen: [] }, T0 + 5)).toEqual([
        { status: 'duplicate', ts: T0 },
      ]);
    });

    // FerretDB 1.x held a pooled database connection for every matched single-document update until its whole
    // request returned: a request of ~50 of them (its PostgreSQL pool) never answered, nor did anything after it.
    it('answers write batches that acknowledge 300 entries, re-upload 100 prekeys and stamp 60 last-seen times', async () => {
      const store = await openStore();
      const alice = newAccount('alice');
      const bob = newAccount('bob');
      await store.createAccount(alice);
      await store.createAccount(bob);
      const users = Array.from({ length: 60 }, (_, i) => newAccount(`seen${i}`));
      for (const user of users) await store.createAccount(user);
      const sends = Array.from({ length: 300 }, (_, i) => send(alice, `bulk${i}`, bob.deviceId));
      const stored = await store.applyWrites({ sends, acks: [], lastSeen: [] }, T0);
      const seqs = stored.flatMap((o) => (o.status === 'stored' ? o.entries.map((e) => e.seq) : []));
      expect(seqs).toHaveLength(300);
      const prekeys = Array.from({ length: 100 }, (_, i) => ({ keyId: i + 1, publicKey: randomBytes(32) }));
      const lastSeen = users.map((u, i) => ({ userId: u.userId, ts: T0 + i }));

      await answersWithin(20_000, async () => {
        await store.applyWrites({ sends: [], acks: [{ deviceId: bob.deviceId, seqs }], lastSeen }, T0 + 1);
        expect(await store.putPrekeys(bob.deviceId, { oneTimePrekeys: prekeys }, limits(1000))).toBe('stored');
        // The same key ids again: every statement matches a stored key.
        const again = prekeys.map((k) => ({ keyId: k.keyId, publicKey: randomBytes(32) }));
        expect(await store.putPrekeys(bob.deviceId, { oneTimePrekeys: again }, limits(1000))).toBe('stored');
      });

      expect(await store.countMailbox(bob.deviceId)).toBe(0);
      expect((await store.countPrekeys(bob.deviceId)).oneTimePrekeys).toBe(100);
      const presence = await store.getPresence(users.map((u) => u.userId));
      expect(new Set(presence.map((p) => p.lastSeen))).toEqual(new Set(lastSeen.map((l) => l.ts)));
      expect(
        await store.applyWrites({ sends: [send(bob, 'after', alice.deviceId)], acks: [], lastSeen: [] }, T0 + 2),
      ).toMatchObject([{ status: 'stored' }]);
    }, 60_000);

    it('stamps each message with the expiry a TTL index acts on, where the server has TTL indexes', async () => {
      const store = await MongoStore.open({
        uri: mongo?.url ?? '',
        dbName: `ttl_${randomBytes(6).toString('hex')}`,
        retentionDays: 30,
      });
      stores.push(store);
      const alice = newAccount('alice');
      await store.createAccount(alice);
      const now = Date.now();
      await store.applyWrites({ sends: [send(alice, 'ttl', alice.deviceId)], acks: [], lastSeen: [] }, now);
      const raw = await rawMessage(store, 'ttl');
      expect((raw?.expireAt as Date).getTime()).toBe(now + 30 * 24 * 3600 * 1000);
      const indexes = await collection(store, 'messages').listIndexes().toArray();
      const ttl = indexes.find((i) => i.expireAfterSeconds !== undefined);
      if (store.ttlIndexes) expect(ttl).toMatchObject({ key: { expireAt: 1 }, expireAfterSeconds: 0 });
      else expect(ttl).toBeUndefined(); // FerretDB 1.x: the relay's sweep is the only expiry
    });
  });
});

describe('MongoStore.open without a server', () => {
  it('fails within the server-selection timeout with a message naming the URI but not the password', async () => {
    const port = await freePort(); // nothing listens there
    const started = Date.now();
    const opening = MongoStore.open({
      uri: `mongodb://relay:s3cret@127.0.0.1:${port}/weconnect`,
      retentionDays: 30,
      serverSelectionTimeoutMs: 1500,
    });
    await expect(opening).rejects.toThrow(
      /cannot reach MongoDB at mongodb:\/\/relay:\*\*\*@127\.0\.0\.1:\d+\/weconnect/,
    );
    await opening.catch((err: Error) => expect(err.message).not.toContain('s3cret'));
    expect(Date.now() - started).toBeLessThan(6000);
  });
});

/** Runs `work`, failing (instead of hanging) when the server has not answered within `ms`. */
async function answersWithin(ms: number, work: () => Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the store did not answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([work(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Raw reads, to look at what the backend stored.
function collection(store: MongoStore, name: string): mongoose.mongo.Collection {
  return (store as unknown as { connection: mongoose.Connection }).connection.db!.collection(name);
}

function rawMessage(store: MongoStore, id: string) {
  return collection(store, 'messages').findOne({ key: { $regex: `:${id}$` } });
}
