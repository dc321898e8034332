// Delivery when relay nodes commit concurrently: an entry with an older seq that is committed (or reaches this node)
// after a newer one was sent still arrives, and a resync sends whatever the store holds that a connection missed.
// Runs on a real SQLite store; the device link is a recording stand-in for a socket (it acks every batch). Nothing
// sleeps: a test waits for the connection's first mailbox read to finish (it is live then), and proves that
// something did not come by waiting for a marker entry sent after it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalBus } from '../src/cluster/bus.js';
import type { DeliveredMessage } from '../src/protocol.js';
import { Delivery } from '../src/service/delivery.js';
import type { DeviceLink } from '../src/service/delivery.js';
import { WriteBatcher } from '../src/service/write-batcher.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { MailboxEntry } from '../src/store/store.js';
import { waitFor } from './helpers.js';
import { T0, newAccount } from './store.contract.js';

/** A real store whose mailbox reads can leave out given seqs, as if their commits were not visible yet. */
class LaggingStore extends SqliteStore {
  hidden = new Set<number>();
  /** Mailbox reads started, and finished. */
  started = 0;
  reads = 0;
  /** While set, every read waits for it before it starts. */
  gate: Promise<void> | null = null;
  override async fetchMailbox(deviceId: string, afterSeq: number, limit: number, maxBytes: number) {
    this.started++;
    if (this.gate) await this.gate;
    const entries = await super.fetchMailbox(deviceId, afterSeq, limit, maxBytes);
    this.reads++;
    return entries.filter((e) => !this.hidden.has(e.seq));
  }
}

let dir: string;
let store: LaggingStore;
let batcher: WriteBatcher;
let delivery: Delivery;
const alice = newAccount('alice');
const bob = newAccount('bob');
const log = pino({ level: 'silent' });

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weconnect-delivery-'));
  store = new LaggingStore({ file: join(dir, 'db') });
  await store.createAccount(alice);
  await store.createAccount(bob);
  batcher = new WriteBatcher({ store, now: () => T0, log, onCommitted: () => undefined });
  delivery = new Delivery({ store, writes: batcher, bus: new LocalBus(), log, ackTimeoutMs: 1000 });
});
afterEach(async () => {
  await batcher.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Stores sends to bob without offering them (as another node's commit would be). */
async function storeForBob(...ids: string[]): Promise<MailboxEntry[]> {
  const outcomes = await store.applyWrites(
    {
      sends: ids.map((id) => ({
        senderUserId: alice.userId,
        senderDeviceId: alice.deviceId,
        id,
        target: { kind: 'direct' as const, envelopes: [{ to: bob.deviceId, body: Buffer.from(id) }] },
      })),
      acks: [],
      lastSeen: [],
    },
    T0,
  );
  return outcomes.flatMap((o) => (o.status === 'stored' ? o.entries : []));
}

/** A link that records and acknowledges every batch; `gate` holds the first mailbox batch until released. */
function recordingLink(): DeviceLink & { received: DeliveredMessage[]; release(): void; held: Promise<void> } {
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  let first = true;
  const link = {
    deviceId: bob.deviceId,
    received: [] as DeliveredMessage[],
    held,
    release,
    async send(batch: DeliveredMessage[]) {
      link.received.push(...batch);
      if (first) {
        first = false;
        await held;
      }
      return true;
    },
  };
  return link;
}

const ids = (messages: DeliveredMessage[]) => messages.map((m) => m.id);

/** Attaches the link and waits until the empty mailbox was read: the connection is live then. */
async function attachLive(link: DeviceLink): Promise<void> {
  const before = store.reads;
  delivery.attach(link);
  await waitFor(() => store.reads > before, 2000, 'the first mailbox read');
}

/** Stores a marker entry for bob and offers it live; resolves once the link got it. */
async function marker(link: { received: DeliveredMessage[] }): Promise<void> {
  const [entry] = await storeForBob('marker');
  delivery.committed([entry as MailboxEntry]);
  await waitFor(() => ids(link.received).includes('marker'), 2000, 'the marker');
}

describe('delivery with concurrent committers', () => {
  it('pushes a live entry whose seq is older than one already sent', async () => {
    const link = recordingLink();
    link.release();
    await attachLive(link);
    const [older, newer] = await storeForBob('older', 'newer');
    delivery.committed([newer as MailboxEntry]);
    delivery.committed([older as MailboxEntry]); // another node's commit, arriving late
    await waitFor(() => link.received.length === 2, 2000, 'both entries');
    expect(ids(link.received)).toEqual(['newer', 'older']);
  });

  it('sends an older entry committed while the mailbox was being sent, once, after the mailbox', async () => {
    const [late, first, second] = await storeForBob('late', 'first', 'second');
    store.hidden.add(late?.seq ?? -1); // its commit is not visible when the mailbox is read
    const link = recordingLink();
    delivery.attach(link);
    await waitFor(() => link.received.length === 2, 2000, 'the visible mailbox');
    store.hidden.clear();
    delivery.committed([late as MailboxEntry]); // held: the connection is not live yet
    link.release();
    await waitFor(() => link.received.length === 3, 2000, 'the late entry');
    await marker(link);
    expect(ids(link.received)).toEqual(['first', 'second', 'late', 'marker']);
    expect([first?.seq, second?.seq].every((s) => (s ?? 0) > (late?.seq ?? Infinity))).toBe(true);
    await batcher.idle();
    expect(await store.countMailbox(bob.deviceId)).toBe(0);
  });

  it('reads the mailbox at most once more however many nudges arrive while a read is running', async () => {
    const link = recordingLink();
    link.release();
    await attachLive(link);
    let open = (): void => undefined;
    store.gate = new Promise<void>((resolve) => (open = resolve));
    const started = store.started;
    delivery.resync([bob.deviceId]);
    await waitFor(() => store.started === started + 1, 2000, 'the first resync read');
    for (let i = 0; i < 100; i++) delivery.resync([bob.deviceId]); // while it runs
    store.gate = null;
    open();
    await waitFor(() => store.started >= started + 2, 2000, 'the one queued read');
    // A nudge after the queued read started needs a read of its own, which finds an entry stored just before it.
    await storeForBob('after');
    delivery.resync([bob.deviceId]);
    await waitFor(() => ids(link.received).includes('after'), 2000, 'the entry the last read finds');
    await marker(link);
    // Two empty reads, then the last resync's: one fetch that finds 'after' and one that finds nothing more.
    expect(store.started - started).toBe(4);
  });

  it('does not send again what the mailbox already delivered when its commit is also offered', async () => {
    const link = recordingLink();
    delivery.attach(link);
    const [entry] = await storeForBob('both-ways');
    delivery.committed([entry as MailboxEntry]); // held, and also read from the store
    link.release();
    await waitFor(() => link.received.length >= 1, 2000, 'the entry');
    await marker(link);
    expect(ids(link.received)).toEqual(['both-ways', 'marker']);
  });

  it('resyncs a live connection from the store when a push was lost', async () => {
    const link = recordingLink();
    link.release();
    await attachLive(link);
    await storeForBob('lost-1', 'lost-2'); // committed elsewhere; its push never came
    expect(link.received).toEqual([]);
    delivery.resync([bob.deviceId]);
    await waitFor(() => link.received.length === 2, 2000, 'the resynced entries');
    expect(ids(link.received)).toEqual(['lost-1', 'lost-2']);
    await batcher.idle();
    await storeForBob('after-resync'); // committed elsewhere too; the next resync finds only it
    delivery.resync([bob.deviceId]); // the lost entries were acknowledged and deleted: not sent again
    await waitFor(() => ids(link.received).includes('after-resync'), 2000, 'the entry stored after the resync');
    expect(ids(link.received)).toEqual(['lost-1', 'lost-2', 'after-resync']);
  });

  it('does not push again what a resync delivered when the live offer of the same commit comes later', async () => {
    const link = recordingLink();
    link.release();
    await attachLive(link);
    const [entry] = await storeForBob('slow-bus'); // committed by another node; its bus message is late
    delivery.resync([bob.deviceId]); // e.g. that node gave up waiting for the bus and asked for a resync
    await waitFor(() => link.received.length === 1, 2000, 'the resynced entry');
    delivery.committed([entry as MailboxEntry]); // the bus message arrives after all
    await marker(link);
    expect(ids(link.received)).toEqual(['slow-bus', 'marker']);
  });
});

describe('acks and the ack hold', () => {
  it('asks for the acks of mailbox batches to commit now, and lets those of live pushes wait for a send', async () => {
    const acked: { seqs: number[]; now: boolean }[] = [];
    const recording = new Delivery({
      store,
      writes: {
        ack: (_deviceId, seqs, now) => acked.push({ seqs, now: now === true }),
        idle: () => Promise.resolve(),
      },
      bus: new LocalBus(),
      log,
      ackTimeoutMs: 1000,
    });
    const stored = await storeForBob('stored 1', 'stored 2');
    const link = recordingLink();
    link.release();
    const before = store.reads;
    recording.attach(link);
    await waitFor(() => store.reads > before + 1, 2000, 'the mailbox read to its end'); // the batch, then an empty read
    const [live] = await storeForBob('live');
    recording.committed([live as MailboxEntry]);
    await waitFor(() => acked.length === 2, 2000, 'the live ack');
    expect(acked).toEqual([
      { seqs: stored.map((e) => e.seq), now: true },
      { seqs: [live?.seq], now: false },
    ]);
  });
});
