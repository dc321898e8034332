// The chat engine end to end in Node: two users on a real relay (port 0), fake-indexeddb for storage,
// Argon2id inline. Covers send both ways, outbox resend with the same id, inbound dedupe, receipts, paging, unlock.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineBoot } from '../../src/client/boot';
import type { ChatClient } from '../../src/client/chat-client';
import { deriveInline } from '../../src/client/kdf';
import type { ChatEngineApi, ChatMessage } from '../../src/client/types';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let seq = 0;

function boot(dbName: string, engine: ConstructorParameters<typeof EngineBoot>[0]['engine'] = {}) {
  return new EngineBoot({ relayUrl: relay.url, dbName, derive: deriveInline, engine });
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 10_000,
) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function history(engine: ChatEngineApi, conv: string): Promise<ChatMessage[]> {
  const out: ChatMessage[] = [];
  let cursor: number | null = null;
  do {
    const page = await engine.loadHistory(conv, cursor, 20);
    out.unshift(...page.messages);
    cursor = page.cursor;
  } while (cursor !== null);
  return out;
}

function asClient(e: ChatEngineApi): ChatClient {
  return e as ChatClient;
}

interface User {
  name: string;
  password: string;
  db: string;
  engine: ChatEngineApi;
  userId: string;
}

async function signUp(prefix: string): Promise<User> {
  const name = `${prefix}${Date.now().toString(36)}${seq++}`;
  const db = `engine-${name}`;
  const password = `correct horse ${name}`;
  const engine = await boot(db).signUp(name, password);
  await until('connection', () => engine.getSnapshot().connection === 'online');
  return { name, password, db, engine, userId: engine.getSnapshot().me.userId };
}

async function open(a: User, b: User): Promise<void> {
  const found = await a.engine.searchPeople(b.name);
  const person = found.find((p) => p.userId === b.userId);
  expect(person).toBeDefined();
  await a.engine.openConversation(person!);
}

let alice: User;
let bob: User;

beforeAll(async () => {
  relay = await startTestRelay();
  alice = await signUp('alice');
  bob = await signUp('bob');
  await open(alice, bob);
}, 60_000);

afterAll(async () => {
  for (const u of [alice, bob]) if (u) asClient(u.engine).close();
  await relay?.close();
});

describe('chat engine against a real relay', () => {
  it('delivers a message from alice to bob and a reply back, with ticks up to delivered', async () => {
    const id = await alice.engine.send(bob.userId, 'Hello Bob 👋 — ünïcödé');
    const atBob = await until('bob has the conversation', () =>
      bob.engine.getSnapshot().conversations.find((c) => c.conv === alice.userId),
    );
    expect(atBob.username).toBe(alice.name.toLowerCase());
    expect(atBob.unread).toBe(1);
    const bobHistory = await until('bob stored it', async () => {
      const h = await history(bob.engine, alice.userId);
      return h.length === 1 ? h : undefined;
    });
    expect(bobHistory[0]).toMatchObject({ id, mine: false, text: 'Hello Bob 👋 — ünïcödé' });
    await until(
      'alice sees delivered',
      async () => (await history(alice.engine, bob.userId))[0]?.status === 'delivered',
    );

    const reply = await bob.engine.send(alice.userId, 'Hi Alice!\nSecond line');
    await until('alice gets the reply', async () =>
      (await history(alice.engine, bob.userId)).some((m) => m.id === reply && m.text === 'Hi Alice!\nSecond line'),
    );
  });

  it('sends a read receipt when the reader marks the conversation read', async () => {
    const id = await alice.engine.send(bob.userId, 'read me');
    await until('bob has it', async () => (await history(bob.engine, alice.userId)).some((m) => m.id === id));
    await bob.engine.markRead(alice.userId);
    expect(bob.engine.getSnapshot().conversations.find((c) => c.conv === alice.userId)?.unread).toBe(0);
    await until(
      'alice sees read',
      async () => (await history(alice.engine, bob.userId)).find((m) => m.id === id)?.status === 'read',
    );
  });

  it('shows the typing indicator to the peer', async () => {
    alice.engine.notifyTyping(bob.userId);
    const until_ = await until('bob sees alice typing', () => bob.engine.getSnapshot().typingUntil[alice.userId]);
    expect(until_).toBeGreaterThan(Date.now());
  });

  it('keeps a message in the outbox while offline and sends it once, with the same id, on reconnect', async () => {
    const a = asClient(alice.engine);
    a.dangerousTestOnlySetOnline(false);
    await until('alice offline', () => alice.engine.getSnapshot().connection === 'offline');
    const id = await alice.engine.send(bob.userId, 'sent while offline');
    expect(await a.dangerousTestOnlyOutboxSize()).toBe(1);
    expect((await history(alice.engine, bob.userId)).find((m) => m.id === id)?.status).toBe('pending');
    a.dangerousTestOnlySetOnline(true);
    await until('outbox drained', async () => (await a.dangerousTestOnlyOutboxSize()) === 0);
    await until('bob got it', async () => (await history(bob.engine, alice.userId)).some((m) => m.id === id));
    expect((await history(bob.engine, alice.userId)).filter((m) => m.text === 'sent while offline')).toHaveLength(1);
  });

  it('resends with the same id when the relay ack was lost, and the peer shows the message once', async () => {
    // A second engine for alice's device whose acks "get lost": the message is stored by the relay but stays queued.
    asClient(alice.engine).close();
    const lossy = await boot(alice.db, { dangerousTestOnlyDropSendAcks: true }).unlock(alice.password, false);
    await until('lossy online', () => lossy.getSnapshot().connection === 'online');
    const id = await lossy.send(bob.userId, 'ack lost once');
    await until('bob got it', async () => (await history(bob.engine, alice.userId)).some((m) => m.id === id));
    expect(await asClient(lossy).dangerousTestOnlyOutboxSize()).toBe(1);
    asClient(lossy).close();

    // "Reload": a normal engine on the same database resends the queued envelopes with the same id.
    alice.engine = await boot(alice.db).unlock(alice.password, false);
    await until('outbox drained', async () => (await asClient(alice.engine).dangerousTestOnlyOutboxSize()) === 0);
    expect((await history(alice.engine, bob.userId)).find((m) => m.id === id)?.status).not.toBe('pending');
    await new Promise((r) => setTimeout(r, 300));
    expect((await history(bob.engine, alice.userId)).filter((m) => m.id === id)).toHaveLength(1);
  });

  it('drops a redelivered message it already stored (crash before the ack)', async () => {
    asClient(bob.engine).close();
    const forgetful = await boot(bob.db, { dangerousTestOnlySkipInboundAcks: true }).unlock(bob.password, false);
    await until('forgetful online', () => forgetful.getSnapshot().connection === 'online');
    const id = await alice.engine.send(bob.userId, 'deliver me twice');
    await until('stored once', async () => (await history(forgetful, alice.userId)).some((m) => m.id === id));
    const unreadBefore = forgetful.getSnapshot().conversations.find((c) => c.conv === alice.userId)?.unread ?? 0;
    asClient(forgetful).close();

    // The relay still holds the entry (never acked) and delivers it again to the next engine on this device.
    bob.engine = await boot(bob.db).unlock(bob.password, false);
    await until(
      'the relay redelivered it and it was dropped',
      () => asClient(bob.engine).dangerousTestOnlyDuplicatesDropped() >= 1,
    );
    const copies = (await history(bob.engine, alice.userId)).filter((m) => m.id === id);
    expect(copies).toHaveLength(1);
    expect(bob.engine.getSnapshot().conversations.find((c) => c.conv === alice.userId)?.unread).toBe(unreadBefore);
  });

  it('reads long histories in pages, oldest first within a page', async () => {
    const texts = Array.from({ length: 45 }, (_, i) => `page message ${i}`);
    for (const t of texts) await bob.engine.send(alice.userId, t);
    await until(
      'all arrived',
      async () =>
        (await history(alice.engine, bob.userId)).filter((m) => m.text.startsWith('page message')).length === 45,
      20_000,
    );
    const first = await alice.engine.loadHistory(bob.userId, null, 20);
    expect(first.messages).toHaveLength(20);
    expect(first.messages.at(-1)?.text).toBe('page message 44');
    expect(first.cursor).not.toBeNull();
    const second = await alice.engine.loadHistory(bob.userId, first.cursor, 20);
    expect(second.messages.at(-1)?.text).toBe('page message 24');
    const all = await history(alice.engine, bob.userId);
    const order = all.filter((m) => m.text.startsWith('page message')).map((m) => m.text);
    expect(order).toEqual(texts);
  }, 40_000);

  it('unlocks after a reload with the password and everything is back; a wrong password is refused', async () => {
    const before = await history(bob.engine, alice.userId);
    asClient(bob.engine).close();
    const b = boot(bob.db);
    expect(await b.localAccount()).toMatchObject({ kind: 'locked', userId: bob.userId });
    expect(await b.tryAutoUnlock()).toBeNull();
    await expect(b.unlock('not the password', false)).rejects.toMatchObject({ code: 'wrong_password' });
    bob.engine = await b.unlock(bob.password, true);
    expect(await history(bob.engine, alice.userId)).toEqual(before);
    expect(bob.engine.getSnapshot().conversations.map((c) => c.conv)).toContain(alice.userId);
    await until('bob online', () => bob.engine.getSnapshot().connection === 'online');

    // "Keep unlocked": the next reload resumes without the password.
    asClient(bob.engine).close();
    const resumed = await boot(bob.db).tryAutoUnlock();
    expect(resumed).not.toBeNull();
    bob.engine = resumed!;
    const id = await alice.engine.send(bob.userId, 'after unlock');
    await until('bob receives after unlock', async () =>
      (await history(bob.engine, alice.userId)).some((m) => m.id === id),
    );
  });
});

describe('a relay outage', () => {
  it('shows offline while the relay is down and drains the outbox when it is back', async () => {
    await relay.stop();
    await until('alice sees offline', () => alice.engine.getSnapshot().connection === 'offline', 20_000);
    const id = await alice.engine.send(bob.userId, 'written during the outage');
    expect((await history(alice.engine, bob.userId)).find((m) => m.id === id)?.status).toBe('pending');
    expect(await asClient(alice.engine).dangerousTestOnlyOutboxSize()).toBe(1);
    await relay.restart();
    await until('alice online again', () => alice.engine.getSnapshot().connection === 'online', 30_000);
    await until('outbox drained', async () => (await asClient(alice.engine).dangerousTestOnlyOutboxSize()) === 0);
    await until('bob got it', async () => (await history(bob.engine, alice.userId)).some((m) => m.id === id), 30_000);
  }, 90_000);
});
