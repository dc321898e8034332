// Deleting many mailbox entries at once must not hold the relay's event loop: with secure_delete every deleted byte
// is overwritten, and one full mailbox (64 MiB) took ~400 ms in a single statement. Accounts, devices and the TTL
// sweep empty mailboxes a slice at a time (mailbox-drain.ts); these tests count the event loop's turns meanwhile.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DRAIN_BYTES } from '../src/store/sqlite/mailbox-drain.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { NewAccount } from '../src/store/store.js';
import { T0, newAccount } from './store.contract.js';

const dirs: string[] = [];
const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function openStore(): SqliteStore {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-drain-'));
  dirs.push(dir);
  const store = new SqliteStore({ file: join(dir, 'weconnect.db') });
  stores.push(store);
  return store;
}

const BODY = 8 * 1024;
/** Enough 8 KiB entries for several slices of DRAIN_BYTES. */
const ENTRIES = Math.ceil((4.5 * DRAIN_BYTES) / BODY);
const SLICES = Math.ceil((ENTRIES * BODY) / DRAIN_BYTES);

/** Fills `to`'s mailbox with ENTRIES entries from `from`, stored at `ts`. */
async function fill(store: SqliteStore, from: NewAccount, to: NewAccount, ts: number, tag: string): Promise<void> {
  for (let i = 0; i < ENTRIES; i += 100) {
    const sends = Array.from({ length: Math.min(100, ENTRIES - i) }, (_, k) => ({
      senderUserId: from.userId,
      senderDeviceId: from.deviceId,
      id: `${tag}-${i + k}`,
      target: { kind: 'direct' as const, envelopes: [{ to: to.deviceId, body: randomBytes(BODY) }] },
    }));
    const outcomes = await store.applyWrites({ sends, acks: [], lastSeen: [] }, ts);
    expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
  }
}

/** Runs `work` and counts the event loop's turns until it settles (a setImmediate chain started just before). */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let done = false;
  const tick = (): void => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { value: await work(), turns };
  } finally {
    done = true;
  }
}

const mailboxOf = (store: SqliteStore, account: NewAccount): Promise<number> => store.countMailbox(account.deviceId);

describe('emptying a mailbox of many entries', () => {
  it('deletes an account a slice at a time, every entry of it and none of another account', async () => {
    const store = openStore();
    const alice = newAccount('alice');
    const bob = newAccount('bob');
    for (const account of [alice, bob]) await store.createAccount(account);
    await fill(store, alice, bob, T0, 'to-bob');
    await fill(store, bob, alice, T0, 'to-alice');

    const { value, turns } = await turnsDuring(() => store.deleteUser(bob.userId));

    expect(value).toBe(true);
    expect(turns).toBeGreaterThanOrEqual(SLICES - 1);
    expect(await mailboxOf(store, bob)).toBe(0);
    expect(await mailboxOf(store, alice)).toBe(ENTRIES);
  });

  it('removes a device a slice at a time; one of another account is neither emptied nor removed', async () => {
    const store = openStore();
    const alice = newAccount('alice');
    const mallory = newAccount('mallory');
    for (const account of [alice, mallory]) await store.createAccount(account);
    await fill(store, mallory, alice, T0, 'to-alice');
    await fill(store, alice, mallory, T0, 'to-mallory');

    // Mallory names alice's device as one of hers: nothing happens to it.
    expect(await store.removeOwnDevice(mallory.userId, alice.deviceId, T0 + 1)).toBeNull();
    expect(await mailboxOf(store, alice)).toBe(ENTRIES);

    const { value, turns } = await turnsDuring(() => store.removeOwnDevice(mallory.userId, mallory.deviceId, T0 + 1));
    expect(value).not.toBeNull();
    expect(turns).toBeGreaterThanOrEqual(SLICES - 1);
    expect(await mailboxOf(store, mallory)).toBe(0);
    expect(await mailboxOf(store, alice)).toBe(ENTRIES);
  });

  it('sweeps expired entries a slice at a time and keeps the ones that have not expired', async () => {
    const store = openStore();
    const alice = newAccount('alice');
    const bob = newAccount('bob');
    for (const account of [alice, bob]) await store.createAccount(account);
    await fill(store, alice, bob, T0, 'old');
    await fill(store, bob, alice, T0 + 10, 'new');

    const { value, turns } = await turnsDuring(() =>
      store.sweepExpired({ mailboxBefore: T0 + 5, sentBefore: 0, now: T0 + 20 }),
    );
    expect(value.mailbox).toBe(ENTRIES);
    expect(turns).toBeGreaterThanOrEqual(SLICES - 1);
    expect(await mailboxOf(store, bob)).toBe(0);
    expect(await mailboxOf(store, alice)).toBe(ENTRIES);
  });
});
