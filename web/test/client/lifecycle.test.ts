// The engine's account lifecycle against a real relay: sign-out (wipe or keep), presence sharing, one-time prekey
// refill, weekly signed-prekey rotation on an injected clock, and the one-writer-tab lock.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { webLocks, type LockProvider } from '../../src/client/boot';
import { openEngineDB } from '../../src/client/db';
import {
  asClient,
  bareAccount,
  boot,
  hasText,
  history,
  http,
  openWith,
  signUpUser,
  until,
  type TestUser,
} from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

const DAY = 86_400_000;

let relay: TestRelay;
const engines: TestUser[] = [];

async function user(prefix: string, extra: Parameters<typeof signUpUser>[2] = {}): Promise<TestUser> {
  const u = await signUpUser(relay.url, prefix, extra);
  engines.push(u);
  return u;
}

async function storeCounts(dbName: string): Promise<Record<string, number>> {
  const db = await openEngineDB(dbName);
  const out: Record<string, number> = {};
  for (const s of db.objectStoreNames) out[s] = await db.count(s);
  db.close();
  return out;
}

beforeAll(async () => {
  // The refill test drains one-time prekeys by fetching one account's bundle ~90 times: more than a relay's
  // per-pair bundle limit allows (where it has one; a relay without it ignores the variable).
  relay = await startTestRelay({ BUNDLE_RATE_BURST: '1000' });
}, 60_000);

afterAll(async () => {
  for (const u of engines) asClient(u.engine).close();
  await relay?.close();
});

describe('sign-out', () => {
  it('wipes local keys and history and revokes the relay session', async () => {
    const alice = await user('so_alice');
    const bob = await user('so_bob');
    await openWith(alice, bob);
    await alice.engine.send(bob.userId, 'before sign-out');
    await until('bob got it', () => hasText(bob.engine, alice.userId, 'before sign-out'));
    const before = await storeCounts(alice.db);
    expect(before.messages).toBe(1);
    expect(before.secrets).toBeGreaterThan(100);

    const { access, refreshToken } = asClient(alice.engine).dangerousTestOnlyTokens();
    await alice.engine.signOut(false);

    const after = await storeCounts(alice.db);
    expect(Object.keys(after).length).toBeGreaterThanOrEqual(9); // every store of the schema, 'seen' included
    for (const [s, n] of Object.entries(after)) expect(n, `store ${s}`).toBe(0);
    expect(await boot(relay.url, alice.db).localAccount()).toEqual({ kind: 'none' });
    // The refresh family is revoked: neither its refresh token nor its access token works any more.
    expect((await http(relay.url, 'POST', '/api/sessions/refresh', undefined, { refreshToken })).status).toBe(401);
    expect((await http(relay.url, 'GET', '/api/devices/self/prekeys', access ?? '')).status).toBe(401);
  });

  it('keeps keys and history when asked, revokes the relay session, and unlocking works again', async () => {
    const carol = await user('so_carol');
    const dave = await user('so_dave');
    await openWith(carol, dave);
    await carol.engine.send(dave.userId, 'kept across sign-out');
    await until('dave got it', () => hasText(dave.engine, carol.userId, 'kept across sign-out'));
    const { refreshToken } = asClient(carol.engine).dangerousTestOnlyTokens();
    await carol.engine.signOut(true);

    expect((await storeCounts(carol.db)).messages).toBe(1);
    expect((await http(relay.url, 'POST', '/api/sessions/refresh', undefined, { refreshToken })).status).toBe(401);
    const b = boot(relay.url, carol.db);
    expect(await b.localAccount()).toMatchObject({ kind: 'locked', userId: carol.userId });
    expect(await b.tryAutoUnlock()).toBeNull();
    carol.engine = await b.unlock(carol.password, false);
    expect(await hasText(carol.engine, dave.userId, 'kept across sign-out')).toBe(true);
    await until('carol online', () => carol.engine.getSnapshot().connection === 'online');
    await dave.engine.send(carol.userId, 'welcome back');
    await until('carol receives after unlock', () => hasText(carol.engine, dave.userId, 'welcome back'));
  });
});

describe('presence sharing', () => {
  it('with sharing off, a watcher no longer sees the user online; back on, it does again', async () => {
    const watcher = await user('pr_watch');
    const shy = await user('pr_shy');
    await openWith(watcher, shy);
    // The relay shares shy's presence only with the people shy has written to.
    await openWith(shy, watcher);
    await shy.engine.send(watcher.userId, 'hello');
    await until('watcher sees shy online', () => watcher.engine.getSnapshot().presence[shy.userId]?.online === true);

    await shy.engine.setSharePresence(false);
    expect(shy.engine.getSnapshot().sharePresence).toBe(false);
    await until('watcher sees shy offline', () => watcher.engine.getSnapshot().presence[shy.userId]?.online === false);
    expect(watcher.engine.getSnapshot().presence[shy.userId]?.lastSeen).toBeNull();

    await shy.engine.setSharePresence(true);
    await until('watcher sees shy online again', () => watcher.engine.getSnapshot().presence[shy.userId]?.online);
  });

  it('switched on and off at once, the relay ends up not sharing, as the switch shows, though the first request was slower', async () => {
    const shy = await user('pr_twice');
    const client = asClient(shy.engine);
    const relayValue = async () => {
      const answer = await http(relay.url, 'GET', '/api/settings', client.dangerousTestOnlyTokens().access ?? '');
      return (answer.json as { sharePresence?: unknown }).sharePresence;
    };
    // Queued behind the start-up read of the relay's value: once it is done, so is that read.
    await shy.engine.setSharePresence(false);
    expect(await relayValue()).toBe(false);
    // Switched on, then off: the first request is held on its way to the relay until the second one was answered, or
    // until the second waits its turn.
    const realFetch = globalThis.fetch;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    let secondAnswered = false;
    const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      const isPut = init?.method === 'PUT' && String(input).endsWith('/api/settings');
      if (isPut && !held) {
        held = true;
        await gate;
        return realFetch(input, init);
      }
      const res = await realFetch(input, init);
      if (isPut) secondAnswered = true;
      return res;
    });
    try {
      const on = shy.engine.setSharePresence(true);
      await until('the first request is held', () => held);
      const off = shy.engine.setSharePresence(false);
      await until(
        'the second waits its turn, or was answered first',
        () => secondAnswered || client.dangerousTestOnlyPresenceSettingWaiting() === 1,
      );
      release();
      await Promise.all([on, off]);
    } finally {
      release();
      spy.mockRestore();
    }
    expect(shy.engine.getSnapshot().sharePresence).toBe(false);
    expect(await relayValue()).toBe(false);
  });
});

describe('prekey maintenance', () => {
  it('refills one-time prekeys to 100 once the relay holds fewer than 20', async () => {
    const owner = await user('pk_owner');
    const other = await bareAccount(relay.url);
    const client = asClient(owner.engine);
    expect((await client.dangerousTestOnlyPrekeyStatus()).oneTimePrekeys).toBe(100);
    const take = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await http(relay.url, 'GET', `/api/users/${owner.userId}/bundle`, other.token);
        expect(r.status).toBe(200);
      }
    };
    await take(80);
    await client.dangerousTestOnlyMaintain();
    expect((await client.dangerousTestOnlyPrekeyStatus()).oneTimePrekeys).toBe(20); // 20 is not below 20
    await take(1);
    await client.dangerousTestOnlyMaintain();
    expect((await client.dangerousTestOnlyPrekeyStatus()).oneTimePrekeys).toBe(100);

    // A session started from one of the new keys works: the private halves were stored before the upload.
    const peer = await user('pk_peer');
    await take(19); // the old keys go first; the next bundle hands out a refilled one
    await openWith(peer, owner);
    await peer.engine.send(owner.userId, 'on a refilled prekey');
    await until('owner decrypts it', () => hasText(owner.engine, peer.userId, 'on a refilled prekey'));
  });

  it('rotates the signed prekey weekly on its clock and still decrypts prekey messages made before', async () => {
    let now = Date.now();
    const owner = await user('spk_owner', { now: () => now });
    const sender = await user('spk_sender');
    const client = asClient(owner.engine);
    const first = (await client.dangerousTestOnlyPrekeyStatus()).signedPrekeyId;
    expect(first).toBe(1);

    // Six days later: nothing to do.
    now += 6 * DAY;
    await client.dangerousTestOnlyMaintain();
    expect((await client.dangerousTestOnlyPrekeyStatus()).signedPrekeyId).toBe(first);

    // A prekey message made from the current bundle waits in the relay while the owner is offline…
    client.dangerousTestOnlySetOnline(false);
    await openWith(sender, owner);
    await sender.engine.send(owner.userId, 'made with the old signed prekey');
    await until('sent', async () => (await history(sender.engine, owner.userId))[0]?.status === 'sent');

    // …then a week has passed: the check rotates and uploads a new signed prekey.
    now += 2 * DAY;
    await client.dangerousTestOnlyMaintain();
    expect((await client.dangerousTestOnlyPrekeyStatus()).signedPrekeyId).toBe(2);
    const bare = await bareAccount(relay.url);
    const bundle = await http(relay.url, 'GET', `/api/users/${owner.userId}/bundle`, bare.token);
    expect((bundle.json as { devices: { signedPrekey: { keyId: number } }[] }).devices[0]?.signedPrekey.keyId).toBe(2);

    // The old key is kept for the grace period: the waiting message still decrypts.
    client.dangerousTestOnlySetOnline(true);
    await until('owner decrypts the old-key message', () =>
      hasText(owner.engine, sender.userId, 'made with the old signed prekey'),
    );
    const newcomer = await user('spk_new');
    await openWith(newcomer, owner);
    await newcomer.engine.send(owner.userId, 'made with the new signed prekey');
    await until('owner decrypts the new-key message', () =>
      hasText(owner.engine, newcomer.userId, 'made with the new signed prekey'),
    );
  });
});

/** Web Locks' `ifAvailable` semantics in memory (Node has no navigator.locks). */
function memoryLocks(): LockProvider {
  const held = new Set<string>();
  return {
    tryAcquire(name) {
      if (held.has(name)) return Promise.resolve(null);
      held.add(name);
      return Promise.resolve(() => held.delete(name));
    },
    heldElsewhere(name) {
      return Promise.resolve(held.has(name));
    },
  };
}

describe('one writer tab', () => {
  it('refuses a second engine on the same database while the first holds the lock', async () => {
    const locks = memoryLocks();
    const owner = await user('tab_owner', { locks });
    const second = boot(relay.url, owner.db, { locks });
    expect(await second.openElsewhere()).toBe(true);
    await expect(second.unlock(owner.password, false)).rejects.toMatchObject({
      code: 'locked',
      message: expect.stringMatching(/open in another tab/),
    });
    expect(await second.tryAutoUnlock()).toBeNull();

    asClient(owner.engine).close(); // closing the first tab releases the lock
    expect(await second.openElsewhere()).toBe(false);
    owner.engine = await second.unlock(owner.password, false);
    await until('second tab online', () => owner.engine.getSnapshot().connection === 'online');
  });

  it('in Node, without navigator.locks, the browser lock provider admits every caller', async () => {
    expect((globalThis.navigator as Navigator | undefined)?.locks).toBeUndefined();
    const release = await webLocks.tryAcquire('weconnect:node');
    expect(release).toBeTypeOf('function');
    expect(await webLocks.tryAcquire('weconnect:node')).toBeTypeOf('function');
    expect(await webLocks.heldElsewhere?.('weconnect:node')).toBe(false);
  });
});
