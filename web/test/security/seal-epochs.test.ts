// What the relay holds of sealed envelopes (format 2, crypto/README.md): envelopes from one sending device to one
// device within a seal epoch share their ephemeral key, so the operator can group stored entries by sender (it knows
// the sender from the socket anyway); envelopes of two different senders never share one, even when both accounts
// run in one process (here they do: the two engines share one crypto module). Read from the relay's SQLite file
// while the recipient is offline: the bytes the operator stores. Closing a client wipes the epochs' keys.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCrypto } from '../../src/client/crypto-loader';
import { asClient, hasText, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let ann: TestUser;
let cat: TestUser;
let ben: TestUser;

/** Ben's stored mailbox bodies by message id, read from the relay's SQLite file. */
function stored(deviceId: string): Map<string, Buffer> {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare('SELECT message_id AS messageId, body FROM mailbox WHERE device_id = ? AND body IS NOT NULL')
      .all(deviceId) as { messageId: string; body: Buffer }[];
    return new Map(rows.map((r) => [r.messageId, r.body]));
  } finally {
    db.close();
  }
}

/** The ephemeral key of a format-2 body (after its version byte). */
function ephemeralKey(body: Buffer): string {
  expect(body[0]).toBe(2);
  return body.subarray(1, 33).toString('hex');
}

beforeAll(async () => {
  relay = await startTestRelay();
  [ann, cat, ben] = await Promise.all([
    signUpUser(relay.url, 'se_ann'),
    signUpUser(relay.url, 'se_cat'),
    signUpUser(relay.url, 'se_ben'),
  ]);
  await openWith(ann, ben);
  await openWith(cat, ben);
}, 60_000);

afterAll(async () => {
  for (const u of [ann, cat, ben]) if (u) asClient(u.engine).close();
  await relay?.close();
});

describe('sealed envelopes at rest on the relay', () => {
  it('share an ephemeral key per sending device within an epoch, never between two senders in one process', async () => {
    const benDevice = ben.engine.getSnapshot().me.deviceId;
    asClient(ben.engine).dangerousTestOnlySetOnline(false);
    const before = stored(benDevice);
    const sent: { from: TestUser; id: string; text: string }[] = [];
    for (let i = 0; i < 3; i++) {
      for (const from of [ann, cat]) {
        const text = `${from.name} says ${i}`;
        sent.push({ from, id: await from.engine.send(ben.userId, text), text });
      }
    }
    const rows = await until('every message waits in ben’s mailbox', () => {
      const now = stored(benDevice);
      return sent.every((s) => now.has(s.id) && !before.has(s.id)) ? now : undefined;
    });
    const keysOf = (u: TestUser) => new Set(sent.filter((s) => s.from === u).map((s) => ephemeralKey(rows.get(s.id)!)));
    const annKeys = keysOf(ann);
    const catKeys = keysOf(cat);
    expect(annKeys.size).toBe(1);
    expect(catKeys.size).toBe(1);
    expect([...annKeys].some((k) => catKeys.has(k))).toBe(false);

    asClient(ben.engine).dangerousTestOnlySetOnline(true);
    for (const s of sent) {
      await until(`ben reads “${s.text}”`, () => hasText(ben.engine, s.from.userId, s.text));
    }
  });

  it('are forgotten when a client closes (sign-out, account deletion): no epoch key stays in the page', async () => {
    const c = await loadCrypto();
    const held = c.dangerousTestOnlySealCacheSizes();
    expect(held.sealing).toBeGreaterThan(0);
    expect(held.opened).toBeGreaterThan(0);
    asClient(cat.engine).close();
    expect(c.dangerousTestOnlySealCacheSizes()).toEqual({ sealing: 0, opened: 0 });
  });
});
