// Changing the password and deleting the account, in the engine against a real relay. A password change is
// interrupted at each step (as a closed tab would stop it) to show that the user can always get in with the old
// password (the relay never took the change) or the new one (it did), losing nothing.
import 'fake-indexeddb/auto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { loadCrypto } from '../../src/client/crypto-loader';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
const engines: TestUser[] = [];

async function user(prefix: string, extra: Parameters<typeof signUpUser>[2] = {}): Promise<TestUser> {
  const u = await signUpUser(relay.url, prefix, extra);
  engines.push(u);
  return u;
}

beforeAll(async () => {
  relay = await startTestRelay();
});
afterAll(async () => {
  for (const u of engines) asClient(u.engine).close();
  await relay?.close();
});

/** A conversation with one message each way, so there is history to lose. */
async function withHistory(a: TestUser, b: TestUser, text: string): Promise<void> {
  await openWith(a, b);
  await a.engine.send(b.userId, text);
  await until('delivered', () => hasText(b.engine, a.userId, text));
  await b.engine.send(a.userId, `re: ${text}`);
  await until('answered', () => hasText(a.engine, b.userId, `re: ${text}`));
}

/** The relay's answer to signing in with this password's auth key (derived with the relay's current salt). */
async function relaySignIn(name: string, password: string): Promise<number> {
  const fresh = `probe-${name}-${Math.random().toString(36).slice(2)}`;
  try {
    const engine = await boot(relay.url, fresh).signIn(name, password);
    asClient(engine).close();
    return 200;
  } catch (e) {
    return (e as { code?: string }).code === 'unauthorized' ? 401 : 500;
  }
}

async function closeAndUnlock(u: TestUser, password: string) {
  asClient(u.engine).close();
  return boot(relay.url, u.db).unlock(password, false);
}

/** What the relay stores for the account: its salt and key backup, read from the relay's SQLite file. */
function stored(userId: string): { salt: Uint8Array; backup: Uint8Array } {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT salt, backup FROM users WHERE user_id = ?').get(userId) as {
      salt: Buffer;
      backup: Buffer;
    };
    return { salt: new Uint8Array(row.salt), backup: new Uint8Array(row.backup) };
  } finally {
    db.close();
  }
}

/** Whether this password, with the salt the relay stores, opens the key box of the backup the relay stores. */
async function opensStoredBackup(userId: string, password: string): Promise<boolean> {
  const c = await loadCrypto();
  const { salt, backup } = stored(userId);
  const keys = c.derivePasswordKeys(password, { salt: c.toBase64Url(salt), ...c.KDF_PARAMS });
  try {
    c.openAccountBackup(c.unwrapBackupKey(keys.wrapKey, userId, backup), userId, backup);
    return true;
  } catch {
    return false;
  } finally {
    c.wipe(keys.wrapKey, keys.authKey);
  }
}

describe('change password', () => {
  it("re-wraps the relay's key box: after the change only the new password opens the stored backup", async () => {
    const max = await user('pw_max');
    const next = `${max.password} v2`;
    await until('first backup stored', async () => (await opensStoredBackup(max.userId, max.password)) || null);
    expect(await opensStoredBackup(max.userId, next)).toBe(false);
    await max.engine.changePassword(max.password, next);
    expect(await opensStoredBackup(max.userId, max.password)).toBe(false);
    expect(await opensStoredBackup(max.userId, next)).toBe(true);
  });

  it('the new password unlocks this device with its history and signs in a new device; the old one does neither', async () => {
    const ann = await user('pw_ann');
    const ben = await user('pw_ben');
    await withHistory(ann, ben, 'before the change');
    const next = `${ann.password} v2`;
    await ann.engine.changePassword(ann.password, next);

    await expect(closeAndUnlock(ann, ann.password)).rejects.toMatchObject({ code: 'wrong_password' });
    ann.engine = await boot(relay.url, ann.db).unlock(next, false);
    expect(await hasText(ann.engine, ben.userId, 're: before the change')).toBe(true);
    await until('online', () => ann.engine.getSnapshot().connection === 'online');
    await ben.engine.send(ann.userId, 'after the change');
    await until('still reachable', () => hasText(ann.engine, ben.userId, 'after the change'));

    expect(await relaySignIn(ann.name, ann.password)).toBe(401);
    expect(await relaySignIn(ann.name, next)).toBe(200);
  });

  it('refuses a wrong current password and changes nothing', async () => {
    const cat = await user('pw_cat');
    await expect(cat.engine.changePassword('not my password', 'whatever new')).rejects.toMatchObject({
      code: 'wrong_password',
    });
    expect(await relaySignIn(cat.name, cat.password)).toBe(200);
    cat.engine = await closeAndUnlock(cat, cat.password);
  });

  it('stopped before the relay call: the old password still unlocks and signs in, the new one does neither', async () => {
    const dan = await user('pw_dan', { engine: { dangerousTestOnlyPasswordChangeStop: 'before_relay' } });
    const eve = await user('pw_eve');
    await withHistory(dan, eve, 'kept before relay');
    const next = `${dan.password} v2`;
    await expect(dan.engine.changePassword(dan.password, next)).rejects.toThrow(/stopped before relay/);

    await expect(closeAndUnlock(dan, next)).rejects.toMatchObject({ code: 'wrong_password' });
    dan.engine = await boot(relay.url, dan.db).unlock(dan.password, false);
    expect(await hasText(dan.engine, eve.userId, 're: kept before relay')).toBe(true);
    expect(await relaySignIn(dan.name, dan.password)).toBe(200);
    expect(await relaySignIn(dan.name, next)).toBe(401);
  });

  it('stopped after the relay call, before the local update: the new password unlocks with everything, the old one is told it changed', async () => {
    const fay = await user('pw_fay', { engine: { dangerousTestOnlyPasswordChangeStop: 'after_relay' } });
    const gus = await user('pw_gus');
    await withHistory(fay, gus, 'kept after relay');
    const next = `${fay.password} v2`;
    await expect(fay.engine.changePassword(fay.password, next)).rejects.toThrow(/stopped after relay/);

    // The relay took it: only the new password signs in there.
    expect(await relaySignIn(fay.name, fay.password)).toBe(401);
    expect(await relaySignIn(fay.name, next)).toBe(200);
    // This device still holds the old salt: the old password opens the data, but the relay refuses it.
    await expect(closeAndUnlock(fay, fay.password)).rejects.toMatchObject({ code: 'password_changed' });
    // The new password opens it through the backup key, and finishes the local step.
    fay.engine = await boot(relay.url, fay.db).unlock(next, false);
    expect(await hasText(fay.engine, gus.userId, 're: kept after relay')).toBe(true);
    await until('online', () => fay.engine.getSnapshot().connection === 'online');
    await gus.engine.send(fay.userId, 'after recovery');
    await until('received', () => hasText(fay.engine, gus.userId, 'after recovery'));
    // From now on the new password is the local one too (no relay round needed to tell it apart).
    fay.engine = await closeAndUnlock(fay, next);
    await expect(closeAndUnlock(fay, fay.password)).rejects.toMatchObject({ code: 'wrong_password' });
    fay.engine = await boot(relay.url, fay.db).unlock(next, false);
  });

  it('another device stays signed in, and unlocks with the new password at its next unlock', async () => {
    const hal = await user('pw_hal');
    const ida = await user('pw_ida');
    const second: TestUser = {
      ...hal,
      db: `${hal.db}-second`,
      engine: await boot(relay.url, `${hal.db}-second`).signIn(hal.name, hal.password),
    };
    engines.push(second);
    await until('second online', () => second.engine.getSnapshot().connection === 'online');
    await withHistory(second, ida, 'on the second device');
    const next = `${hal.password} v2`;
    await hal.engine.changePassword(hal.password, next);

    // Still signed in: it keeps sending and receiving.
    await second.engine.send(ida.userId, 'still signed in');
    await until('sent after the change', () => hasText(ida.engine, hal.userId, 'still signed in'));
    // Its own password form says what happened instead of "wrong password".
    await expect(second.engine.changePassword(next, `${next} v3`)).rejects.toMatchObject({ code: 'password_changed' });
    // At its next unlock: the old password is told it changed, the new one opens everything.
    await expect(closeAndUnlock(second, hal.password)).rejects.toMatchObject({ code: 'password_changed' });
    second.engine = await boot(relay.url, second.db).unlock(next, false);
    expect(await hasText(second.engine, ida.userId, 're: on the second device')).toBe(true);
  });
});

describe('delete account', () => {
  it('a username registered again after deletion: an old contact who finds it gets the key-change warning', async () => {
    const old = await user('del_old');
    const pal = await user('del_pal');
    await withHistory(pal, old, 'first life');
    expect(pal.engine.getSnapshot().trust[old.userId]?.keyChanged ?? false).toBe(false);
    await old.engine.deleteAccount(old.password);
    // Someone registers the name again: a new user id and a new identity key.
    const reborn = await boot(relay.url, `${old.db}-reborn`).signUp(old.name, 'another password entirely');
    engines.push({ ...old, db: `${old.db}-reborn`, engine: reborn, userId: reborn.getSnapshot().me.userId });
    const newId = reborn.getSnapshot().me.userId;
    expect(newId).not.toBe(old.userId);
    const found = (await pal.engine.searchPeople(old.name)).find((p) => p.userId === newId);
    expect(found).toBeDefined();
    await pal.engine.openConversation(found!);
    await until('warned', () => pal.engine.getSnapshot().trust[newId]?.keyChanged);
    // A name never seen before raises no warning (the baseline of the rule).
    const stranger = await user('del_new');
    const other = (await pal.engine.searchPeople(stranger.name)).find((p) => p.userId === stranger.userId);
    await pal.engine.openConversation(other!);
    await until('trust known', () => pal.engine.getSnapshot().trust[stranger.userId]);
    expect(pal.engine.getSnapshot().trust[stranger.userId]?.keyChanged).toBe(false);
  });

  it('a wrong password deletes nothing', async () => {
    const jon = await user('del_jon');
    await expect(jon.engine.deleteAccount('wrong password')).rejects.toMatchObject({ code: 'wrong_password' });
    expect(await relaySignIn(jon.name, jon.password)).toBe(200);
  });

  it('erases the account on the relay and wipes this browser', async () => {
    const kim = await user('del_kim');
    const lou = await user('del_lou');
    await withHistory(kim, lou, 'soon gone');
    await kim.engine.deleteAccount(kim.password);
    expect(await boot(relay.url, kim.db).localAccount()).toEqual({ kind: 'none' });
    expect(await relaySignIn(kim.name, kim.password)).toBe(401);
    // Lou's next send finds the account gone: the message fails, and the conversation is marked deleted.
    await lou.engine.send(kim.userId, 'are you there?');
    await until('marked deleted', () => lou.engine.getSnapshot().trust[kim.userId]?.deleted);
    const failed = (await history(lou.engine, kim.userId)).find((m) => m.text === 'are you there?');
    await until('the send failed', async () =>
      (await history(lou.engine, kim.userId)).find((m) => m.text === 'are you there?' && m.failure),
    );
    expect(failed).toBeDefined();
    await expect(lou.engine.send(kim.userId, 'hello?')).rejects.toMatchObject({ code: 'account_deleted' });
    const viewer = await bareAccount(relay.url);
    const bundle = await http(relay.url, 'GET', `/api/users/${kim.userId}/bundle?devices=`, viewer.token);
    expect(bundle.status).toBe(404);
  });
});
