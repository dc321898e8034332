// LocalStore: sealed history in IndexedDB (fake-indexeddb), read in pages.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openEngineDB, wipeEngineDB } from '../../src/client/db';
import { LocalStore, WriteBatch } from '../../src/client/store';
import type { ChatMessage } from '../../src/client/types';
import { Vault, deriveAtRestKey } from '../../src/client/vault';

async function makeStore(name: string) {
  const db = await openEngineDB(name);
  return new LocalStore(db, new Vault(await deriveAtRestKey(new Uint8Array(32).fill(7))));
}

/** An id in the relay's format (16 bytes as base64url), made from a label. */
function fakeId(label: string): string {
  return Buffer.from(label.padStart(16, '0').slice(-16)).toString('base64url');
}

function msg(i: number, conv = fakeId('bob')): ChatMessage {
  return {
    id: fakeId(`m${i}`),
    conv,
    mine: i % 2 === 0,
    text: `message ${i}`,
    ts: 1000 + i,
    status: 'sent',
  };
}

describe('LocalStore history', () => {
  it('pages a conversation newest-first, each page oldest-first, until the beginning', async () => {
    const store = await makeStore('store-paging');
    const batch = new WriteBatch();
    for (let i = 0; i < 23; i++) await store.stageMessage(batch, msg(i), 1000 + i);
    await store.stageMessage(batch, msg(99, fakeId('carol')), 5000);
    await store.commit(batch);

    const first = await store.page(fakeId('bob'), null, 10);
    expect(first.more).toBe(true);
    expect(first.rows.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, k) => msg(13 + k).id));
    const second = await store.page(fakeId('bob'), first.rows[0]!.sort, 10);
    expect(second.rows.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, k) => msg(3 + k).id));
    const last = await store.page(fakeId('bob'), second.rows[0]!.sort, 10);
    expect(last.more).toBe(false);
    expect(last.rows.map((r) => r.id)).toEqual([msg(0).id, msg(1).id, msg(2).id]);
    expect(await store.openMessage(last.rows[0]!)).toEqual({ ...msg(0), failure: undefined });
  });

  it('keeps message text out of the stored rows', async () => {
    const store = await makeStore('store-sealed');
    const batch = new WriteBatch();
    await store.stageMessage(batch, { ...msg(1), text: 'the launch code is 0000' }, 1);
    await store.commit(batch);
    const row = await store.db.get('messages', msg(1).id);
    expect(JSON.stringify(row)).not.toContain('launch');
    expect(new TextDecoder().decode(row!.sealed.ct)).not.toContain('launch');
  });

  it('remembers handled inbound ids and forgets them after the idempotency window', async () => {
    const store = await makeStore('store-seen');
    const batch = new WriteBatch();
    store.stageSeen(batch, 'old', 0);
    store.stageSeen(batch, 'new', Date.now());
    await store.commit(batch);
    expect(await store.seen('old')).toBe(true);
    await store.pruneSeen(Date.now(), Infinity);
    expect(await store.seen('old')).toBe(false);
    expect(await store.seen('new')).toBe(true);
  });

  it('keeps ids handled since the oldest signed prekey still held, even past the window', async () => {
    const store = await makeStore('store-seen-spk');
    const day = 86_400_000;
    const now = 100 * day;
    const batch = new WriteBatch();
    store.stageSeen(batch, 'before-spk', 40 * day);
    store.stageSeen(batch, 'after-spk', 50 * day);
    await store.commit(batch);
    // 31 days is the relay's window; a signed prekey made on day 45 still accepts prekey messages.
    await store.pruneSeen(now, 45 * day);
    expect(await store.seen('before-spk')).toBe(false);
    expect(await store.seen('after-spk')).toBe(true);
  });

  it('keeps array-keyed records apart from any string key, and lists them by their leading parts', async () => {
    const store = await makeStore('store-array-keys');
    const batch = new WriteBatch();
    await store.stage(batch, 'sessions', ['u1', 'd1'], { n: 1 });
    await store.stage(batch, 'sessions', ['u1/d1', 'x'], { n: 2 });
    await store.stage(batch, 'sessions', 'u1/d1', { n: 3 });
    await store.commit(batch);
    expect(await store.keysUnder('sessions', ['u1'])).toEqual([['u1', 'd1']]);
    expect(await store.keysUnder('sessions', ['u1/d1'])).toEqual([['u1/d1', 'x']]);
    const any = z.object({ n: z.number() });
    expect(await store.read('sessions', ['u1', 'd1'], any)).toEqual({ n: 1 });
    expect(await store.read('sessions', 'u1/d1', any)).toEqual({ n: 3 });
  });
});

describe('LocalStore changes to stored messages', () => {
  it('runs them one at a time, each read after the one before committed, and refuses an update outside them', async () => {
    const store = await makeStore('store-changes');
    const first = new WriteBatch();
    await store.stageMessage(first, msg(1), 1);
    await store.commit(first);
    await expect(store.stageMessageUpdate(new WriteBatch(), msg(1), 1)).rejects.toThrow(/changeMessages/);

    // Two changes started together, each reading the row, appending to its text and committing: neither is lost.
    const append = (suffix: string) =>
      store.changeMessages(async () => {
        const found = (await store.message(msg(1).id))!;
        const batch = new WriteBatch();
        await store.stageMessageUpdate(batch, { ...found.message, text: found.message.text + suffix }, found.sort);
        await store.commit(batch);
      });
    await Promise.all([append(' a'), append(' b'), append(' c')]);
    expect((await store.message(msg(1).id))?.message.text).toBe('message 1 a b c');
    expect(store.dangerousTestOnlyChangesWaiting).toBe(0);

    // A change that fails lets the next one run.
    const failing = store.changeMessages(() => Promise.reject(new Error('boom')));
    await expect(failing).rejects.toThrow('boom');
    await append(' d');
    expect((await store.message(msg(1).id))?.message.text).toBe('message 1 a b c d');
  });
});

describe('LocalStore retire', () => {
  it('refuses a write a background task staged before the wipe, so no key comes back after it', async () => {
    const store = await makeStore('store-retire');
    await store.write('secrets', 'before', { a: 1 });
    expect(await store.db.count('secrets')).toBe(1); // baseline
    // A task (e.g. a device-list refresh) staged its write while the removal was under way…
    const late = new WriteBatch();
    await store.stage(late, 'secrets', 'known-devices', { ids: ['x'] });
    store.retire('this device was removed');
    await wipeEngineDB(store.db);
    // …and commits after the wipe: refused, and the store stays empty.
    await expect(store.commit(late)).rejects.toMatchObject({ code: 'not_signed_in' });
    await expect(store.write('secrets', 'after', { a: 2 })).rejects.toMatchObject({ code: 'not_signed_in' });
    await expect(store.pruneSeen(Date.now(), Date.now())).rejects.toMatchObject({ code: 'not_signed_in' });
    expect(await store.db.count('secrets')).toBe(0);
  });
});
