// The SQLite store's per-device mailbox usage (what the caps count): read once per device and then kept by the
// writer's own inserts and deletes, so that a send costs no scan of its recipients' mailboxes. A group of offline
// devices used to cost each send (members × queued entries) index reads: a hostile account could stall the relay
// by writing to a big group of people who were not online. The caps must hold exactly as before, on both writers.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { InlineWriter } from '../src/store/sqlite/writer.js';
import type { MailboxCaps, MailboxEntry, NewAccount, SendRequest, WriteBatch } from '../src/store/store.js';
import { T0, newAccount } from './store.contract.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const open: SqliteStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function makeStore(writer: 'inline' | 'worker'): SqliteStore {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-usage-'));
  dirs.push(dir);
  const store = new SqliteStore({ file: join(dir, 'weconnect.db'), writer });
  open.push(store);
  return store;
}

const direct = (sender: NewAccount, id: string, to: string[], size = 100): SendRequest => ({
  senderUserId: sender.userId,
  senderDeviceId: sender.deviceId,
  id,
  target: { kind: 'direct', envelopes: to.map((device) => ({ to: device, body: randomBytes(size) })) },
});
const group = (sender: NewAccount, id: string, groupId: string, size = 100): SendRequest => ({
  senderUserId: sender.userId,
  senderDeviceId: sender.deviceId,
  id,
  target: { kind: 'group', groupId, body: randomBytes(size) },
});
const batch = (caps: MailboxCaps, sends: SendRequest[], acks: WriteBatch['acks'] = []): WriteBatch => ({
  sends,
  acks,
  lastSeen: [],
  caps,
});

function usageReads(store: SqliteStore): number {
  if (!(store.writer instanceof InlineWriter)) throw new Error('not an inline-writer store');
  return store.writer.mailbox.usageReads;
}

describe('mailbox usage on SQLite', () => {
  it('reads each recipient device’s usage once, not once per send, however full their mailboxes get', async () => {
    const store = makeStore('inline');
    const members = Array.from({ length: 12 }, (_, i) => newAccount(`member${i}`));
    for (const m of members) await store.createAccount(m);
    const sender = members[0] as NewAccount;
    await store.createGroup(
      'g1',
      members.map((m, i) => ({ userId: m.userId, admin: i === 0 })),
      T0,
    );
    const caps = { maxEntries: 10_000, maxBytes: 1 << 30 };
    const before = usageReads(store);
    for (let i = 0; i < 40; i++) {
      const [outcome] = await store.applyWrites(batch(caps, [group(sender, `m${i}`, 'g1')]), T0 + i);
      expect(outcome?.status).toBe('stored');
    }
    // Eleven recipient devices (the sender's only device gets no copy), each read once, not 40 times.
    expect(usageReads(store) - before).toBe(11);
    expect(await store.countMailbox((members[5] as NewAccount).deviceId)).toBe(40);
  });

  for (const writer of ['inline', 'worker'] as const) {
    describe(`with the ${writer} writer`, () => {
      it('refuses past the entries cap across batches, and an ack (of that device only) makes room again', async () => {
        const store = makeStore(writer);
        const alice = newAccount('alice');
        const bob = newAccount('bob');
        const carol = newAccount('carol');
        for (const a of [alice, bob, carol]) await store.createAccount(a);
        const caps = { maxEntries: 3, maxBytes: 1 << 20 };
        const stored: number[] = [];
        for (let i = 0; i < 3; i++) {
          const [o] = await store.applyWrites(batch(caps, [direct(alice, `a${i}`, [bob.deviceId])]), T0 + i);
          expect(o?.status).toBe('stored');
          if (o?.status === 'stored') stored.push((o.entries[0] as MailboxEntry).seq);
        }
        const [carolSent] = await store.applyWrites(batch(caps, [direct(alice, 'c0', [carol.deviceId])]), T0);
        if (carolSent?.status !== 'stored') throw new Error('not stored');
        const [full] = await store.applyWrites(batch(caps, [direct(alice, 'a3', [bob.deviceId])]), T0 + 3);
        expect(full).toEqual({ status: 'mailbox_full' });
        // A forged ack (bob's seqs under carol's device, carol's seq under bob's) deletes nothing and frees nothing.
        await store.applyWrites(
          batch(
            caps,
            [],
            [
              { deviceId: carol.deviceId, seqs: stored },
              { deviceId: bob.deviceId, seqs: carolSent.entries.map((e) => e.seq) },
            ],
          ),
          T0 + 4,
        );
        const [stillFull] = await store.applyWrites(batch(caps, [direct(alice, 'a4', [bob.deviceId])]), T0 + 4);
        expect(stillFull).toEqual({ status: 'mailbox_full' });
        // Bob acks one entry: one more fits, and then no more.
        await store.applyWrites(batch(caps, [], [{ deviceId: bob.deviceId, seqs: [stored[0] as number] }]), T0 + 5);
        const [fits] = await store.applyWrites(batch(caps, [direct(alice, 'a5', [bob.deviceId])]), T0 + 5);
        expect(fits?.status).toBe('stored');
        const [fullAgain] = await store.applyWrites(batch(caps, [direct(alice, 'a6', [bob.deviceId])]), T0 + 6);
        expect(fullAgain).toEqual({ status: 'mailbox_full' });
        expect(await store.countMailbox(bob.deviceId)).toBe(3);
      });

      it('counts bytes across batches and sends without caps, and frees them with the acked entries', async () => {
        const store = makeStore(writer);
        const alice = newAccount('alice');
        const bob = newAccount('bob');
        for (const a of [alice, bob]) await store.createAccount(a);
        const caps = { maxEntries: 100, maxBytes: 1000 };
        const [first] = await store.applyWrites(batch(caps, [direct(alice, 'a0', [bob.deviceId], 400)]), T0);
        if (first?.status !== 'stored') throw new Error('not stored');
        // A batch without caps (as a test or tool may write) still counts against the next capped send.
        await store.applyWrites({ sends: [direct(alice, 'a1', [bob.deviceId], 400)], acks: [], lastSeen: [] }, T0);
        const [over] = await store.applyWrites(batch(caps, [direct(alice, 'a2', [bob.deviceId], 201)]), T0);
        expect(over).toEqual({ status: 'mailbox_full' });
        await store.applyWrites(
          batch(caps, [], [{ deviceId: bob.deviceId, seqs: first.entries.map((e) => e.seq) }]),
          T0,
        );
        const [fits] = await store.applyWrites(batch(caps, [direct(alice, 'a3', [bob.deviceId], 600)]), T0);
        expect(fits?.status).toBe('stored');
        const [overAgain] = await store.applyWrites(batch(caps, [direct(alice, 'a4', [bob.deviceId], 1)]), T0);
        expect(overAgain).toEqual({ status: 'mailbox_full' });
      });

      it('counts nothing of a batch that was rolled back', async () => {
        const store = makeStore(writer);
        const alice = newAccount('alice');
        const bob = newAccount('bob');
        for (const a of [alice, bob]) await store.createAccount(a);
        // A real SQLite failure: a trigger that aborts the insert of one message id, so the whole batch rolls back.
        store.db.exec(
          "CREATE TRIGGER poison BEFORE INSERT ON mailbox WHEN NEW.message_id = 'poison' BEGIN SELECT RAISE(ABORT, 'injected'); END",
        );
        const caps = { maxEntries: 2, maxBytes: 1 << 20 };
        const failed = store.applyWrites(
          batch(caps, [direct(alice, 'a', [bob.deviceId]), direct(alice, 'poison', [bob.deviceId])]),
          T0,
        );
        await expect(failed).rejects.toThrow();
        expect(await store.countMailbox(bob.deviceId)).toBe(0);
        for (const id of ['b', 'c']) {
          const [o] = await store.applyWrites(batch(caps, [direct(alice, id, [bob.deviceId])]), T0);
          expect(o?.status).toBe('stored');
        }
        const [full] = await store.applyWrites(batch(caps, [direct(alice, 'd', [bob.deviceId])]), T0);
        expect(full).toEqual({ status: 'mailbox_full' });
      });

      it('makes room once the sweep deleted expired entries', async () => {
        const store = makeStore(writer);
        const alice = newAccount('alice');
        const bob = newAccount('bob');
        for (const a of [alice, bob]) await store.createAccount(a);
        const caps = { maxEntries: 2, maxBytes: 1 << 20 };
        await store.applyWrites(batch(caps, [direct(alice, 'old', [bob.deviceId])]), T0);
        await store.applyWrites(batch(caps, [direct(alice, 'new', [bob.deviceId])]), T0 + 10);
        const [full] = await store.applyWrites(batch(caps, [direct(alice, 'x', [bob.deviceId])]), T0 + 20);
        expect(full).toEqual({ status: 'mailbox_full' });
        const swept = await store.sweepExpired({ mailboxBefore: T0 + 5, sentBefore: 0, now: T0 + 20 });
        expect(swept.mailbox).toBe(1);
        const [fits] = await store.applyWrites(batch(caps, [direct(alice, 'y', [bob.deviceId])]), T0 + 30);
        expect(fits?.status).toBe('stored');
        const [fullAgain] = await store.applyWrites(batch(caps, [direct(alice, 'z', [bob.deviceId])]), T0 + 40);
        expect(fullAgain).toEqual({ status: 'mailbox_full' });
      });
    });
  }
});
