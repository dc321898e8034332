// Profiles end to end on the real relay: a display name and picture sealed with the owner's profile key, the key
// carried to contacts over the pairwise sessions, the relay holding only ciphertext, and everything a contact
// receives checked before it shows.
import 'fake-indexeddb/auto';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PROFILE_BYTES } from '@weconnect/relay/protocol';
import { loadCrypto, type Crypto } from '../../src/client/crypto-loader';
import { openEngineDB } from '../../src/client/db';
import { deriveInline } from '../../src/client/kdf';
import { accountMetaSchema, backupKeySchema } from '../../src/client/schemas';
import { LocalStore } from '../../src/client/store';
import type { ChatEngineApi } from '../../src/client/types';
import { Vault, deriveAtRestKey } from '../../src/client/vault';
import { asClient, boot, hasText, http, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let c: Crypto;
const engines: ChatEngineApi[] = [];

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(relay.url, prefix);
  engines.push(u.engine);
  return u;
}

/** A tiny real PNG header followed by distinctive bytes (the engine in Node checks the type and size). */
function png(fill: number, length = 3000): Uint8Array {
  const bytes = new Uint8Array(length).fill(fill);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return bytes;
}

/** What the relay's database holds as `userId`'s profile (the adversary's view). */
function storedProfile(userId: string): Buffer | null {
  const db = new Database(join(relay.dataDir, 'weconnect.db'), { readonly: true });
  try {
    return (
      db.prepare<[string], { profile: Buffer | null }>('SELECT profile FROM users WHERE user_id = ?').get(userId)
        ?.profile ?? null
    );
  } finally {
    db.close();
  }
}

function writeStoredProfile(userId: string, profile: Uint8Array): void {
  const db = new Database(join(relay.dataDir, 'weconnect.db'));
  try {
    db.prepare('UPDATE users SET profile = ? WHERE user_id = ?').run(Buffer.from(profile), userId);
  } finally {
    db.close();
  }
}

/** `u`'s profile key, read from its own device's store (opened with its password), as a contact would hold it. */
async function profileKeyOf(u: TestUser): Promise<Uint8Array> {
  const db = await openEngineDB(u.db);
  try {
    const meta = accountMetaSchema.parse(await db.get('meta', 'account'));
    const { wrapKey } = await deriveInline(u.password, meta);
    const store = new LocalStore(db, new Vault(await deriveAtRestKey(wrapKey)));
    const record = await store.read('secrets', 'backup-key', backupKeySchema);
    if (!record) throw new Error('no backup key yet');
    return c.deriveProfileKey(record.key);
  } finally {
    db.close();
  }
}

function includes(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).includes(Buffer.from(needle));
}

async function converse(a: TestUser, b: TestUser): Promise<void> {
  await openWith(a, b);
  const text = `hi ${b.name} from ${a.name}`;
  await a.engine.send(b.userId, text);
  await until('delivered', () => hasText(b.engine, a.userId, text));
}

let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  c = await loadCrypto();
  relay = await startTestRelay();
  alice = await user('pf_alice');
  bob = await user('pf_bob');
  await converse(alice, bob);
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

describe('profiles', () => {
  it('agrees with the relay on the largest sealed profile', () => {
    expect(PROFILE_BYTES).toBe(c.SEALED_PROFILE_MAX_BYTES);
  });

  it("gives bob alice's name and picture after she saves them, over their session", async () => {
    const picture = png(0x11);
    await alice.engine.saveProfile('Alice Liddell', picture);
    expect(alice.engine.getSnapshot().profiles[alice.userId]).toEqual({ name: 'Alice Liddell', picture });
    const seen = await until('bob sees the profile', () => bob.engine.getSnapshot().profiles[alice.userId]);
    expect(seen.name).toBe('Alice Liddell');
    expect(Buffer.from(seen.picture ?? [])).toEqual(Buffer.from(picture));
  });

  it('stores only ciphertext on the relay: neither the name nor the picture bytes', async () => {
    const stored = storedProfile(alice.userId);
    expect(stored).not.toBeNull();
    expect(includes(stored!, new TextEncoder().encode('Alice'))).toBe(false);
    expect(includes(stored!, new Uint8Array(64).fill(0x11))).toBe(false);
    // And these bytes are alice's profile (they open with her key to the name and picture she saved).
    const opened = c.openProfile(await profileKeyOf(alice), alice.userId, stored!);
    expect(opened.name).toBe('Alice Liddell');
    expect(includes(stored!, opened.picture!.subarray(0, 64))).toBe(false);
  });

  it('carries the key with the first message to a new contact, and every change reaches contacts', async () => {
    const carol = await user('pf_carol');
    await converse(alice, carol);
    await until(
      'carol sees the name',
      () => carol.engine.getSnapshot().profiles[alice.userId]?.name === 'Alice Liddell',
    );
    await alice.engine.saveProfile('Alice in Wonderland', null);
    for (const u of [bob, carol]) {
      await until(`${u.name} sees the new name`, () => {
        const p = u.engine.getSnapshot().profiles[alice.userId];
        return p?.name === 'Alice in Wonderland' && p.picture === null;
      });
    }
  });

  it('ignores a profile key for alice that comes from anyone but alice', async () => {
    const carol = await user('pf_carol2');
    const dave = await user('pf_dave');
    await converse(alice, carol);
    await until('carol has the key', () => carol.engine.getSnapshot().profiles[alice.userId]);
    await converse(carol, dave);
    // Carol passes alice's real key on to dave, naming alice.
    const key = c.toBase64Url(await profileKeyOf(alice));
    await asClient(carol.engine).dangerousTestOnlySendControl(dave.userId, {
      v: 1,
      type: 'profile-key',
      userId: alice.userId,
      key,
    });
    // A fence: carol then shares her own profile with dave; keys are handled in arrival order and each fetched at
    // once, so once dave shows carol's profile, alice's would have been fetched too had dave taken that key.
    await carol.engine.saveProfile('Carol', null);
    await until('dave sees carol', () => dave.engine.getSnapshot().profiles[carol.userId]?.name === 'Carol');
    expect(dave.engine.getSnapshot().profiles[alice.userId]).toBeUndefined();
  });

  it('rejects a tampered profile and shows nothing from it', async () => {
    const warn = vi.spyOn(console, 'warn');
    try {
      const sealed = storedProfile(alice.userId)!;
      const tampered = Uint8Array.from(sealed);
      tampered[100]! ^= 0x01;
      writeStoredProfile(alice.userId, tampered);
      const erin = await user('pf_erin');
      await converse(alice, erin);
      await until('the tampered profile was refused', () =>
        warn.mock.calls.some((call) => String(call[0]).includes('did not open')),
      );
      expect(erin.engine.getSnapshot().profiles[alice.userId]).toBeUndefined();
      writeStoredProfile(alice.userId, sealed);
    } finally {
      warn.mockRestore();
    }
  });

  it('shows the name but not a picture that is not an image', async () => {
    // Alice's client misbehaves: it seals random bytes as her picture with her real key.
    const junk = c.randomBytes(2000);
    const sealed = c.sealProfile(await profileKeyOf(alice), alice.userId, { name: 'Junk picture', picture: junk });
    const token = asClient(alice.engine).dangerousTestOnlyTokens().access;
    expect((await http(relay.url, 'PUT', '/api/profile', token ?? '', { profile: c.toBase64Url(sealed) })).status).toBe(
      204,
    );
    const frank = await user('pf_frank');
    await converse(alice, frank);
    const seen = await until('frank sees the name', () => {
      const p = frank.engine.getSnapshot().profiles[alice.userId];
      return p?.name === 'Junk picture' ? p : undefined;
    });
    expect(seen.picture).toBeNull();
  });

  it('gives group members the key with the first group message (their member lists show her profile)', async () => {
    // Alice saves before the group exists: gil and hal, strangers to her until now, get the key with her first message.
    await alice.engine.saveProfile('Alice at the party', png(0x22));
    const gil = await user('pf_gil');
    const hal = await user('pf_hal');
    const group = await alice.engine.createGroup('Tea party', [
      { userId: gil.userId, username: gil.name },
      { userId: hal.userId, username: hal.name },
    ]);
    await until('gil has the group', () => gil.engine.getSnapshot().conversations.some((c) => c.conv === group));
    await alice.engine.send(group, 'welcome to the tea party');
    for (const u of [gil, hal]) {
      await until(`${u.name} sees alice's profile`, () => {
        return u.engine.getSnapshot().profiles[alice.userId]?.name === 'Alice at the party';
      });
    }
    expect(hal.engine.getSnapshot().profiles[alice.userId]?.name).toBe(
      alice.engine.getSnapshot().profiles[alice.userId]?.name,
    );
  });

  it("shows alice's own profile on her new device, which derives the same key", async () => {
    const second = await boot(relay.url, `${alice.db}-second`).signIn(alice.name, alice.password);
    engines.push(second);
    const expected = alice.engine.getSnapshot().profiles[alice.userId];
    await until('the new device shows her profile', () => second.getSnapshot().profiles[alice.userId]);
    expect(second.getSnapshot().profiles[alice.userId]).toEqual(expected);
  });

  it("gives a contact's new device the key once a session with it exists", async () => {
    const bob2 = await boot(relay.url, `${bob.db}-second`).signIn(bob.name, bob.password);
    engines.push(bob2);
    await until('online', () => bob2.getSnapshot().connection === 'online');
    expect(bob2.getSnapshot().profiles[alice.userId]).toBeUndefined();
    // Bob writes from the new device: alice's client meets the device (a new session) and sends it her key.
    await bob2.openConversation({ userId: alice.userId, username: alice.name });
    await bob2.send(alice.userId, 'hello from my new laptop');
    await until('alice has the message', () => hasText(alice.engine, bob.userId, 'hello from my new laptop'));
    const expected = alice.engine.getSnapshot().profiles[alice.userId];
    await until("bob's new device shows alice's profile", () => bob2.getSnapshot().profiles[alice.userId]);
    expect(bob2.getSnapshot().profiles[alice.userId]).toEqual(expected);
  });

  it('refuses a name over 64 characters, control characters, and a picture that is not an image', async () => {
    await expect(alice.engine.saveProfile('x'.repeat(65), null)).rejects.toThrow(/64 characters/);
    await expect(alice.engine.saveProfile('evil\u202Egnp.exe', null)).rejects.toThrow(/not allowed/);
    await expect(alice.engine.saveProfile('ok', c.randomBytes(100))).rejects.toThrow(/JPEG, PNG or WebP/);
    await expect(alice.engine.saveProfile('ok', png(1, 64 * 1024 + 1))).rejects.toThrow(/64 KiB/);
  });
});
