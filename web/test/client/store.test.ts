// LocalStore: sealed history in IndexedDB (fake-indexeddb), read in pages.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openEngineDB } from '../../src/client/db';
import { LocalStore, WriteBatch } from '../../src/client/store';
import type { ChatMessage } from '../../src/client/types';
import { Vault, deriveAtRestKey } from '../../src/client/vault';

async function makeStore(name: string) {
  const db = await openEngineDB(name);
  return new LocalStore(db, new Vault(await deriveAtRestKey(new Uint8Array(32).fill(7))));
}

function msg(i: number, conv = 'bob'): ChatMessage {
  return {
    id: `m${String(i).padStart(4, '0')}`,
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
    await store.stageMessage(batch, msg(99, 'carol'), 5000);
    await store.commit(batch);

    const first = await store.page('bob', null, 10);
    expect(first.more).toBe(true);
    expect(first.rows.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, k) => msg(13 + k).id));
    const second = await store.page('bob', first.rows[0]!.sort, 10);
    expect(second.rows.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, k) => msg(3 + k).id));
    const last = await store.page('bob', second.rows[0]!.sort, 10);
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
    await store.pruneSeen(Date.now());
    expect(await store.seen('old')).toBe(false);
    expect(await store.seen('new')).toBe(true);
  });
});
