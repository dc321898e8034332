// The engine's IndexedDB layout (one database per browser profile and relay). Private values are Vault-sealed.

import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { Sealed } from './vault';

/**
 * What is stored where. Only routing metadata stays in clear (ids, sort keys, timestamps); every value that holds
 * a key, a token, a name or a message is a `Sealed` record.
 */
export interface WeConnectDB extends DBSchema {
  /** 'account': public facts needed before unlock (ids, salt, KDF params) + a sealed check value. */
  meta: { key: string; value: unknown };
  /** 'unlock-key': the non-extractable at-rest CryptoKey, only when the user chose "keep unlocked". */
  devicekeys: { key: string; value: CryptoKey };
  /** Sealed secrets: identity, tokens, prekeys, signed prekeys. */
  secrets: { key: string; value: Sealed };
  /**
   * Double Ratchet session states, one record per peer device under the array key [userId, deviceId] (a few states
   * each, newest first). String keys `${userId}/${deviceId}` are the old layout, migrated at start.
   */
  sessions: { key: string | string[]; value: Sealed };
  /** Known contacts (username, identity key, verified flag), key userId. */
  contacts: { key: string; value: Sealed };
  /** Local history. */
  messages: { key: string; value: MessageRow; indexes: { byConv: [string, number] } };
  /** One row per conversation (sealed summary: last message, unread count). */
  conversations: { key: string; value: { conv: string; sealed: Sealed } };
  /** Messages sent but not yet acknowledged by the relay, in creation order. */
  outbox: { key: string; value: OutboxRow; indexes: { byCreated: number } };
  /** Inbound message ids already handled (dedupe of at-least-once delivery), kept 30 days. */
  seen: { key: string; value: { id: string; at: number } };
  /**
   * (v2) One-to-one messages we sent in the last 24 hours, key message id: which devices got them under which
   * identity key, so a `resend` request is honoured only for the device, and the key, the message first went to.
   */
  sendlog: { key: string; value: SendLogRow; indexes: { byAt: number } };
}

export interface MessageRow {
  id: string;
  conv: string;
  /** Sort key: the message time in ms (relay ts when known), ties broken by id order. */
  sort: number;
  sealed: Sealed;
}

export interface OutboxRow {
  id: string;
  conv: string;
  created: number;
  sealed: Sealed;
}

export interface SendLogRow {
  id: string;
  /** When the message was first encrypted (local clock, ms): pruning and the age limit read it. */
  at: number;
  sealed: Sealed;
}

export type EngineDB = IDBPDatabase<WeConnectDB>;

export async function openEngineDB(name: string): Promise<EngineDB> {
  // Upgrades are additive: each version only adds stores, so a v1 profile keeps everything it holds.
  return openDB<WeConnectDB>(name, 2, {
    upgrade(db, oldVersion) {
      if (oldVersion < 1) createV1(db);
      if (oldVersion < 2) db.createObjectStore('sendlog', { keyPath: 'id' }).createIndex('byAt', 'at');
    },
  });
}

function createV1(db: IDBPDatabase<WeConnectDB>): void {
  db.createObjectStore('meta');
  db.createObjectStore('devicekeys');
  db.createObjectStore('secrets');
  db.createObjectStore('sessions');
  db.createObjectStore('contacts');
  const messages = db.createObjectStore('messages', { keyPath: 'id' });
  messages.createIndex('byConv', ['conv', 'sort']);
  db.createObjectStore('conversations', { keyPath: 'conv' });
  const outbox = db.createObjectStore('outbox', { keyPath: 'id' });
  outbox.createIndex('byCreated', 'created');
  db.createObjectStore('seen', { keyPath: 'id' });
}

/** Removes every local key and message of this profile (sign out without "keep"): every store the database has. */
export async function wipeEngineDB(db: EngineDB): Promise<void> {
  const stores = [...db.objectStoreNames];
  const tx = db.transaction(stores, 'readwrite');
  await Promise.all([...stores.map((s) => tx.objectStore(s).clear()), tx.done]);
}
