// Helpers for engine tests against a real relay: boot an engine on a fake-indexeddb database, wait for a condition,
// read a whole conversation, make bare relay accounts (plain HTTP, no engine) to poke the relay as another client.
import 'fake-indexeddb/auto';
import { expect } from 'vitest';
import { EngineBoot, type BootOptions } from '../../src/client/boot';
import type { ChatClient } from '../../src/client/chat-client';
import { loadCrypto } from '../../src/client/crypto-loader';
import { deriveInline } from '../../src/client/kdf';
import type { ChatEngineApi, ChatMessage } from '../../src/client/types';

let seq = 0;

export function boot(relayUrl: string, dbName: string, extra: Partial<BootOptions> = {}): EngineBoot {
  return new EngineBoot({ relayUrl, dbName, derive: deriveInline, ...extra });
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false && value !== null) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function history(engine: ChatEngineApi, conv: string): Promise<ChatMessage[]> {
  const out: ChatMessage[] = [];
  let cursor: number | null = null;
  do {
    const page = await engine.loadHistory(conv, cursor, 50);
    out.unshift(...page.messages);
    cursor = page.cursor;
  } while (cursor !== null);
  return out;
}

export async function hasText(engine: ChatEngineApi, conv: string, text: string): Promise<boolean> {
  return (await history(engine, conv)).some((m) => m.text === text);
}

export function asClient(e: ChatEngineApi): ChatClient {
  return e as ChatClient;
}

export interface TestUser {
  name: string;
  password: string;
  db: string;
  engine: ChatEngineApi;
  userId: string;
}

export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${seq++}`;
}

export async function signUpUser(
  relayUrl: string,
  prefix: string,
  extra: Partial<BootOptions> = {},
): Promise<TestUser> {
  const name = uniqueName(prefix);
  const db = `engine-${name}`;
  const password = `correct horse ${name}`;
  const engine = await boot(relayUrl, db, extra).signUp(name, password);
  await until('connection', () => engine.getSnapshot().connection === 'online');
  return { name, password, db, engine, userId: engine.getSnapshot().me.userId };
}

export async function openWith(a: TestUser, b: TestUser): Promise<void> {
  const found = await a.engine.searchPeople(b.name);
  const person = found.find((p) => p.userId === b.userId);
  expect(person).toBeDefined();
  await a.engine.openConversation(person!);
}

/** A relay account made with plain HTTP (keys from @weconnect/crypto, a random auth key): another client's view. */
export async function bareAccount(relayUrl: string): Promise<{ userId: string; token: string }> {
  const c = await loadCrypto();
  const keys = c.createAccountKeys({ oneTimePrekeyCount: 1 });
  const res = await fetch(new URL('/api/accounts', relayUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      username: uniqueName('bare'),
      salt: c.toBase64Url(c.randomBytes(16)),
      authKey: c.toBase64Url(c.randomBytes(32)),
      ...keys.upload,
    }),
  });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { userId: string; accessToken: string };
  return { userId: body.userId, token: body.accessToken };
}

export async function http(
  relayUrl: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(new URL(path, relayUrl), {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : null };
}
