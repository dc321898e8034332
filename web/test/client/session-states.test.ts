// SessionStates: session records under [userId, deviceId] array keys, a few states per device, and the one-time move
// of records stored under the old `${userId}/${deviceId}` string keys.
import 'fake-indexeddb/auto';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCrypto, type Crypto } from '../../src/client/crypto-loader';
import { openEngineDB } from '../../src/client/db';
import { MAX_STATES_PER_DEVICE, SessionStates } from '../../src/client/session-states';
import { LocalStore, WriteBatch } from '../../src/client/store';
import { Vault, deriveAtRestKey } from '../../src/client/vault';

let c: Crypto;
let n = 0;

beforeAll(async () => {
  c = await loadCrypto();
});

async function makeStore(): Promise<LocalStore> {
  const db = await openEngineDB(`session-states-${n++}`);
  return new LocalStore(db, new Vault(await deriveAtRestKey(c.randomBytes(32))));
}

/** A session of ours with (peerUserId, peerDeviceId), started from a fresh bundle of that peer. */
function sessionWith(peerUserId: string, peerDeviceId: string) {
  const me = c.createAccountKeys({ oneTimePrekeyCount: 0 });
  const peer = c.createAccountKeys({ oneTimePrekeyCount: 1 });
  return c.initiateSession({
    identity: me.identity,
    localUserId: c.createMessageId(),
    localDeviceId: c.createMessageId(),
    peerUserId,
    peerDeviceId,
    bundle: c.verifyPrekeyBundle({
      identityKey: peer.upload.identityKey,
      signedPrekey: peer.upload.signedPrekey,
      oneTimePrekey: peer.upload.oneTimePrekeys[0],
    }),
  });
}

describe('session states', () => {
  it('keeps the newest few states of a device and lists devices by exact user id', async () => {
    const store = await makeStore();
    const states = new SessionStates(c, store);
    const bob = c.createMessageId();
    const phone = c.createMessageId();
    const all = Array.from({ length: MAX_STATES_PER_DEVICE + 2 }, () => sessionWith(bob, phone));
    const batch = new WriteBatch();
    await states.stage(batch, bob, phone, all);
    await store.commit(batch);
    const kept = await states.device(bob, phone);
    expect(kept.map((s) => c.toBase64Url(s.baseKey))).toEqual(
      all.slice(0, MAX_STATES_PER_DEVICE).map((s) => c.toBase64Url(s.baseKey)),
    );
    expect([...(await states.user(bob)).keys()]).toEqual([phone]);
    expect((await states.user(c.createMessageId())).size).toBe(0);
  });

  it('refuses a record whose states name another peer than the key it is filed under', async () => {
    const store = await makeStore();
    const states = new SessionStates(c, store);
    const bob = c.createMessageId();
    const mallory = c.createMessageId();
    const phone = c.createMessageId();
    const batch = new WriteBatch();
    await store.stage(batch, 'sessions', [bob, phone], {
      v: 2,
      states: [c.serializeSession(sessionWith(mallory, phone))],
    });
    await store.commit(batch);
    await expect(states.device(bob, phone)).rejects.toMatchObject({ code: 'corrupt_store' });
  });

  it('moves records of the old string keys to array keys once, and drops any whose key spoofs another id', async () => {
    const store = await makeStore();
    const states = new SessionStates(c, store);
    const bob = c.createMessageId();
    const phone = c.createMessageId();
    const mallory = c.createMessageId();
    const real = sessionWith(bob, phone);
    const batch = new WriteBatch();
    await store.stage(batch, 'sessions', `${bob}/${phone}`, c.serializeSession(real));
    // The attack of issue #12: a record filed under "<bob>/-/<device>" that a prefix scan for bob would load.
    await store.stage(batch, 'sessions', `${bob}/-/${mallory}`, c.serializeSession(sessionWith(`${bob}/-`, mallory)));
    // A record whose content names another peer than its key.
    await store.stage(batch, 'sessions', `${mallory}/${phone}`, c.serializeSession(sessionWith(bob, phone)));
    await store.commit(batch);

    await states.migrateLegacy();
    expect(await store.keys('sessions', '')).toEqual([]);
    expect(await store.keysUnder('sessions', [bob])).toEqual([[bob, phone]]);
    expect(await store.keysUnder('sessions', [mallory])).toEqual([]);
    const moved = await states.device(bob, phone);
    expect(moved.map((s) => c.toBase64Url(s.baseKey))).toEqual([c.toBase64Url(real.baseKey)]);
    await states.migrateLegacy(); // nothing left to move: a no-op
    expect(await store.keysUnder('sessions', [bob])).toEqual([[bob, phone]]);
  });
});
