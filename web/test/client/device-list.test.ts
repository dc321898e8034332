// Devices against a real relay (issue #14): each device names itself, sealed so the relay holds no name in clear; a
// new device of ours shows a notice on the others; a contact's new device puts a notice line in the conversation
// (not on first contact); removing a device makes that engine wipe every key and message it holds.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import { openDB } from 'idb';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNNAMED_DEVICE, defaultDeviceName } from '../../src/client/devices';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, boot, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
const engines: ChatEngineApi[] = [];

beforeAll(async () => {
  relay = await startTestRelay();
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(relay.url, prefix);
  engines.push(u.engine);
  return u;
}

async function secondDevice(u: TestUser, suffix = 'second'): Promise<{ engine: ChatEngineApi; db: string }> {
  const db = `${u.db}-${suffix}`;
  const engine = await boot(relay.url, db).signIn(u.name, u.password);
  engines.push(engine);
  await until('second device online', () => engine.getSnapshot().connection === 'online');
  return { engine, db };
}

/** What the relay's database holds for these devices: their stored (sealed) names. */
function storedNames(): Map<string, Buffer | null> {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT device_id AS deviceId, name FROM devices').all() as {
      deviceId: string;
      name: Buffer | null;
    }[];
    return new Map(rows.map((r) => [r.deviceId, r.name]));
  } finally {
    db.close();
  }
}

const named = async (engine: ChatEngineApi) =>
  (await engine.devices.list()).every((d) => d.name !== UNNAMED_DEVICE) ? engine.devices.list() : null;

describe('device names', () => {
  it('names each device by default and shows the names to every device of the account, never to the relay', async () => {
    const ann = await user('dn_ann');
    const second = await secondDevice(ann);
    const list = await until('both named', () => named(ann.engine));
    expect(list).toHaveLength(2);
    expect(list.filter((d) => d.current)).toHaveLength(1);
    const defaultName = list[0]!.name;
    expect(defaultName.length).toBeGreaterThan(0);
    // The other device opens the same names.
    const seen = await until('second sees both', () => named(second.engine));
    expect(seen.map((d) => d.name)).toEqual(list.map((d) => d.name));

    await second.engine.devices.renameThisDevice('Office laptop');
    const renamed = await until('renamed', async () =>
      (await ann.engine.devices.list()).find((d) => d.name === 'Office laptop'),
    );
    expect(renamed.current).toBe(false);
    // What the relay stores is ciphertext: neither name is in it.
    const stored = storedNames().get(renamed.deviceId);
    expect(stored).toBeInstanceOf(Buffer);
    expect(stored!.includes(Buffer.from('Office laptop'))).toBe(false);
    for (const name of storedNames().values()) expect(name?.includes(Buffer.from(defaultName)) ?? false).toBe(false);
  });
});

describe('a new device of ours', () => {
  it('shows the other devices a notice with its name', async () => {
    const ben = await user('dn_ben');
    await until('first device knows its list', async () => (await ben.engine.devices.list()).length === 1);
    const second = await secondDevice(ben);
    await second.engine.devices.renameThisDevice('Kitchen tablet');
    const notice = await until('notice', () =>
      ben.engine.getSnapshot().notices.find((n) => n.text.startsWith('A new device was added to your account')),
    );
    // Announced under the name it has when the others look: its default one, or the one just given.
    expect([
      `A new device was added to your account: ${defaultDeviceName()}`,
      'A new device was added to your account: Kitchen tablet',
    ]).toContain(notice.text);
    // The new device itself announces nothing: what existed when it arrived is not news to it.
    expect(second.engine.getSnapshot().notices.some((n) => n.text.startsWith('A new device'))).toBe(false);
  });
});

describe("a contact's new device", () => {
  it('puts "<name> added a new device" in the conversation, and nothing on first contact', async () => {
    const cat = await user('dn_cat');
    const dov = await user('dn_dov');
    await openWith(dov, cat);
    await dov.engine.send(cat.userId, 'hello');
    await until('cat got it', async () => (await history(cat.engine, dov.userId)).length > 0);
    const notices = async () => (await history(dov.engine, cat.userId)).filter((m) => m.kind === 'notice');
    expect(await notices()).toEqual([]); // first contact is no news

    await secondDevice(cat);
    await dov.engine.devices.checkContact(cat.userId);
    const lines = await until('notice line', async () => ((await notices()).length > 0 ? notices() : null));
    expect(lines.map((m) => m.text)).toEqual([`${cat.name} added a new device`]);
    expect(lines[0]).toMatchObject({ mine: false, kind: 'notice' });
    // Not a key change: the contact's trust state is untouched.
    expect(dov.engine.getSnapshot().trust[cat.userId]?.keyChanged ?? false).toBe(false);
  });
});

describe('removing a device', () => {
  it('makes the removed engine wipe its keys and history and say so; the list no longer shows it', async () => {
    const eve = await user('dn_eve');
    const second = await secondDevice(eve);
    const removedId = second.engine.getSnapshot().me.deviceId;
    // Baseline: the second device holds keys.
    const before = await openDB(second.db);
    expect(await before.count('secrets')).toBeGreaterThan(0);
    before.close();

    await eve.engine.devices.remove(removedId);
    await until('removed engine says so', () => second.engine.getSnapshot().deviceRemoved === true);
    const after = await openDB(second.db);
    try {
      for (const store of ['secrets', 'meta', 'sessions', 'contacts', 'messages', 'devicekeys']) {
        expect(await after.count(store), store).toBe(0);
      }
    } finally {
      after.close();
    }
    expect((await eve.engine.devices.list()).map((d) => d.deviceId)).toEqual([eve.engine.getSnapshot().me.deviceId]);
    // Removing this device itself is refused: that is signing out.
    await expect(eve.engine.devices.remove(eve.engine.getSnapshot().me.deviceId)).rejects.toMatchObject({
      code: 'invalid_input',
    });
  });

  it('a removed device that was away learns it at its next unlock and wipes what it holds', async () => {
    const fox = await user('dn_fox');
    const second = await secondDevice(fox, 'away');
    const removedId = second.engine.getSnapshot().me.deviceId;
    asClient(second.engine).close();
    await fox.engine.devices.remove(removedId);
    await expect(boot(relay.url, second.db).unlock(fox.password, false)).rejects.toMatchObject({
      code: 'device_removed',
    });
    expect(await boot(relay.url, second.db).localAccount()).toEqual({ kind: 'none' });
  });
});
