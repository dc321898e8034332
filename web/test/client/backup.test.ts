// The key backup carries the verification state: marking a contact verified (or accepting their changed key) re-seals
// the backup on the relay, and a new device of the account starts with the same verified contacts.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCrypto } from '../../src/client/crypto-loader';
import { openEngineDB } from '../../src/client/db';
import type { KdfInput } from '../../src/client/kdf';
import { backupKeySchema } from '../../src/client/schemas';
import { LocalStore } from '../../src/client/store';
import type { ChatEngineApi } from '../../src/client/types';
import { Vault, deriveAtRestKey } from '../../src/client/vault';
import { asClient, boot, hasText, http, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { dangerousTestOnlyReplaceIdentity, startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
const engines: ChatEngineApi[] = [];

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(relay.url, prefix);
  engines.push(u.engine);
  return u;
}

async function newDevice(u: TestUser, suffix: string): Promise<ChatEngineApi> {
  const engine = await boot(relay.url, `${u.db}-${suffix}`).signIn(u.name, u.password);
  engines.push(engine);
  await until('online', () => engine.getSnapshot().connection === 'online');
  await asClient(engine).dangerousTestOnlySyncBackup();
  return engine;
}

beforeAll(async () => {
  relay = await startTestRelay();
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

describe('verification state in the key backup', () => {
  it('restores verified contacts on a new device, and forgets one whose changed key was accepted', async () => {
    const ann = await user('kb_ann');
    const bo = await user('kb_bo');
    const cy = await user('kb_cy');
    for (const peer of [bo, cy]) {
      await openWith(ann, peer);
      await ann.engine.send(peer.userId, `hello ${peer.name}`);
      await until('delivered', () => hasText(peer.engine, ann.userId, `hello ${peer.name}`));
      await ann.engine.markVerified(peer.userId, (await ann.engine.safetyNumber(peer.userId)).identityKey);
    }
    await asClient(ann.engine).dangerousTestOnlySyncBackup();

    // A browser that never saw the account: the same contacts are verified before it ever talks to them.
    const ann2 = await newDevice(ann, 'second');
    expect(ann2.getSnapshot().trust[bo.userId]?.verified).toBe(true);
    expect(ann2.getSnapshot().trust[cy.userId]?.verified).toBe(true);
    // Talking to a restored contact names them from the relay and keeps the mark; the safety number is the same.
    await openWith({ ...ann, engine: ann2 }, bo);
    await ann2.send(bo.userId, 'from the second device');
    await until('bo got it', () => hasText(bo.engine, ann.userId, 'from the second device'));
    expect(ann2.getSnapshot().trust[bo.userId]).toEqual({ verified: true, keyChanged: false, blocked: false });
    const sn = await ann2.safetyNumber(bo.userId);
    expect(sn.username).toBe(bo.name.toLowerCase());
    expect(sn.digits).toBe((await bo.engine.safetyNumber(ann.userId)).digits);

    // Cy reinstalls; ann accepts the new key on her first device: the backup no longer vouches for cy.
    await dangerousTestOnlyReplaceIdentity(relay, cy.userId);
    await ann.engine.send(cy.userId, 'after the change');
    await until('blocked', () => ann.engine.getSnapshot().trust[cy.userId]?.blocked);
    await ann.engine.acceptIdentityChange(cy.userId);
    await asClient(ann.engine).dangerousTestOnlySyncBackup();
    const ann3 = await newDevice(ann, 'third');
    expect(ann3.getSnapshot().trust[bo.userId]?.verified).toBe(true);
    expect(ann3.getSnapshot().trust[cy.userId]?.verified ?? false).toBe(false);
  });

  it('a new device restored with a verified contact whose key has since changed blocks sending to them', async () => {
    const dee = await user('kb_dee');
    const eli = await user('kb_eli');
    await openWith(dee, eli);
    await dee.engine.send(eli.userId, 'hi');
    await until('eli got it', () => hasText(eli.engine, dee.userId, 'hi'));
    await dee.engine.markVerified(eli.userId, (await dee.engine.safetyNumber(eli.userId)).identityKey);
    await asClient(dee.engine).dangerousTestOnlySyncBackup();
    await dangerousTestOnlyReplaceIdentity(relay, eli.userId);

    const dee2 = await newDevice(dee, 'second');
    await openWith({ ...dee, engine: dee2 }, eli);
    await dee2.send(eli.userId, 'are you still you?');
    await until('blocked', () => dee2.getSnapshot().trust[eli.userId]?.blocked);
    await expect(dee2.send(eli.userId, 'again')).rejects.toMatchObject({ code: 'identity_changed' });
  });
});

describe('accounts whose backup is still in format 1 (under the wrap key)', () => {
  it('a new device restores it and moves it to format 2; the old device follows at its next unlock', async () => {
    const c = await loadCrypto();
    const kim = await user('kb_kim');
    const lee = await user('kb_lee');
    await asClient(kim.engine).dangerousTestOnlySyncBackup();
    const kdf = (await http(relay.url, 'GET', `/api/accounts/${kim.name}/kdf`)).json as KdfInput;
    const wrapKey = c.derivePasswordKeys(kim.password, kdf).wrapKey;
    const token = asClient(kim.engine).dangerousTestOnlyTokens().access!;
    const current = c.fromBase64Url(
      ((await http(relay.url, 'GET', '/api/backup', token)).json as { backup: string }).backup,
    );
    const identity = c.openAccountBackup(c.unwrapBackupKey(wrapKey, kim.userId, current), kim.userId, current).identity;

    // What the previous version left: a format-1 backup (lee verified on some other device) and a profile that
    // keeps the wrap key and no backup key.
    const legacy = c.sealLegacyBackup(wrapKey, {
      identity,
      // The key lee had when verified there (any 32 bytes: this device never talks to lee here).
      contacts: [{ userId: lee.userId, identityKey: c.toBase64Url(c.randomBytes(32)), verified: true }],
    });
    expect((await http(relay.url, 'PUT', '/api/backup', token, { backup: c.toBase64Url(legacy) })).status).toBe(204);
    asClient(kim.engine).close();
    const vault = new Vault(await deriveAtRestKey(wrapKey));
    let db = await openEngineDB(kim.db);
    await db.delete('secrets', 'backup-key');
    await new LocalStore(db, vault).write('secrets', 'wrap-key', { key: wrapKey });
    db.close();

    const kim2 = await newDevice(kim, 'second');
    expect(kim2.getSnapshot().trust[lee.userId]?.verified).toBe(true);
    const migrated = c.fromBase64Url(
      ((await http(relay.url, 'GET', '/api/backup', token)).json as { backup: string }).backup,
    );
    expect(c.backupFormat(migrated)).toBe(2);
    const key = c.unwrapBackupKey(wrapKey, kim.userId, migrated);
    const opened = c.openAccountBackup(key, kim.userId, migrated);
    expect(opened.revision).toBe(1);
    expect(opened.contacts.map((e) => e.userId)).toEqual([lee.userId]);

    const again = await boot(relay.url, kim.db).unlock(kim.password, false);
    engines.push(again);
    await until('online', () => again.getSnapshot().connection === 'online');
    await asClient(again).dangerousTestOnlySyncBackup();
    // The device-list check starts on connect and runs beside the sync: wait for it (it joins the one in flight).
    await asClient(again).devices.check();
    // No problem with the backup: the one notice is the second device's arrival (issue #14, never silent).
    expect(again.getSnapshot().notices.map((n) => n.text)).toEqual([
      'A new device was added to your account: Web browser',
    ]);
    asClient(again).close();
    db = await openEngineDB(kim.db);
    expect(await db.get('secrets', 'wrap-key')).toBeUndefined();
    const record = await new LocalStore(db, vault).read('secrets', 'backup-key', backupKeySchema);
    db.close();
    expect(record?.key).toEqual(key);
    expect(record?.revision).toBe(1);
  });
});
