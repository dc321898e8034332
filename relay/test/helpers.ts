// Shared test helpers: a real relay on port 0 in a temporary DATA_DIR, accounts with valid Ed25519-signed prekeys
// made with node:crypto, a small HTTP client, and real socket.io-client devices with the msgpack parser.
// Used by the relay suites, the crash-recovery test and the benchmark: keep them general.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { loadConfig } from '../src/config.js';
import type { Config, EnvName } from '../src/config.js';
import type { DeliveredMessage, PresenceUpdate, SendAck, SessionAnswer, WatchAck } from '../src/protocol.js';
import { createRelay } from '../src/server.js';
import type { Relay, RelayOptions } from '../src/server.js';

// ---------------------------------------------------------------------------------------------------------------
// Relay

export interface TestRelay {
  relay: Relay;
  /** e.g. http://127.0.0.1:40123 — for fetch and for io(). */
  url: string;
  port: number;
  /** GET /metrics of the relay's metrics listener, when METRICS_PORT was given. */
  metricsUrl: string | undefined;
  dataDir: string;
  /** The JWT secret in use (tests forge tokens with it). */
  jwtSecret: string;
  config: Config;
  /** Closes the relay; removes DATA_DIR when startRelay created it. */
  close(): Promise<void>;
}

/**
 * Starts a real relay on 127.0.0.1, port 0. Overrides are environment variables (as strings), applied over test
 * defaults: BCRYPT_COST 4, per-address limits raised (all test clients share 127.0.0.1), LOG_LEVEL silent, a random JWT_SECRET, a fresh temporary DATA_DIR, and a WEB_DIST that
 * does not exist (no web app served). Pass DATA_DIR to reuse a directory (it is then kept on close); pass
 * JWT_SECRET: '' to let the relay generate its secret file.
 */
export async function startRelay(
  overrides: Partial<Record<EnvName, string>> = {},
  options: RelayOptions = {},
): Promise<TestRelay> {
  const ownDir = overrides.DATA_DIR === undefined;
  const dataDir = overrides.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'weconnect-relay-'));
  const env: Record<string, string> = {
    BCRYPT_COST: '4',
    LOG_LEVEL: 'silent',
    JWT_SECRET: randomBytes(32).toString('base64url'),
    WEB_DIST: join(dataDir, 'no-web-app'),
    // Every test client comes from 127.0.0.1: the per-address limits are raised unless a test sets them.
    SIGNUP_RATE_BURST: '100000',
    SIGNIN_ADDRESS_MAX_FAILURES: '100000',
    BCRYPT_QUEUE_PER_ADDRESS: '1000',
    BCRYPT_QUEUE_MAX: '100000',
    ...overrides,
    DATA_DIR: dataDir,
  };
  const config = loadConfig(env);
  const relay = await createRelay(config, options);
  const { url, port, metricsUrl } = await relay.listen(0, '127.0.0.1');
  const jwtSecret = config.jwtSecret ?? readFileSync(join(dataDir, 'jwt-secret'), 'utf8').trim();
  return {
    relay,
    url,
    port,
    metricsUrl,
    dataDir,
    jwtSecret,
    config,
    async close() {
      await relay.close();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Keys and accounts

export interface TestIdentity {
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
  privateKey: KeyObject;
}

export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new Error('not an OKP public key');
  return Buffer.from(jwk.x, 'base64url');
}

export function newIdentity(): TestIdentity {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey: rawPublicKey(publicKey), privateKey };
}

/** A fresh X25519 public key, raw 32 bytes. */
export function x25519PublicKey(): Buffer {
  return rawPublicKey(generateKeyPairSync('x25519').publicKey);
}

/** A signed prekey as the wire carries it: an X25519 key signed by `identity` over its 32 bytes. */
export function signedPrekey(
  identity: TestIdentity,
  keyId = 1,
): { keyId: number; publicKey: string; signature: string } {
  const publicKey = x25519PublicKey();
  return {
    keyId,
    publicKey: publicKey.toString('base64url'),
    signature: sign(null, publicKey, identity.privateKey).toString('base64url'),
  };
}

/**
 * A signed KEM prekey as the wire carries it: 1,184 random bytes standing for an ML-KEM-768 key (the relay checks
 * only the length and the signature), signed by `identity` over label ‖ KEM type ‖ last-resort flag ‖ u32 keyId ‖ key.
 * `signAs` signs other values than the ones sent (a relabelling client).
 */
export function kemPrekey(
  identity: TestIdentity,
  keyId: number,
  lastResort = false,
  signAs: { keyId?: number; lastResort?: boolean } = {},
): { keyId: number; lastResort: boolean; publicKey: string; signature: string } {
  const publicKey = randomBytes(1184);
  const label = Buffer.from('WeConnect/KEM-prekey/v1');
  const id = Buffer.alloc(4);
  id.writeUInt32BE(signAs.keyId ?? keyId);
  const flag = (signAs.lastResort ?? lastResort) ? 1 : 0;
  const signed = Buffer.concat([Buffer.of(label.length), label, Buffer.of(1, flag), id, publicKey]);
  return {
    keyId,
    lastResort,
    publicKey: publicKey.toString('base64url'),
    signature: sign(null, signed, identity.privateKey).toString('base64url'),
  };
}

/** `count` one-time prekeys with keyIds firstKeyId, firstKeyId + 1, ... */
export function oneTimePrekeys(count: number, firstKeyId = 1): { keyId: number; publicKey: string }[] {
  return Array.from({ length: count }, (_, i) => ({
    keyId: firstKeyId + i,
    publicKey: x25519PublicKey().toString('base64url'),
  }));
}

let nameCounter = 0;
/** A username no other test uses: prefix + counter + random suffix, at most 32 characters. */
export function uniqueUsername(prefix = 'user'): string {
  nameCounter++;
  return `${prefix}_${nameCounter}_${randomBytes(4).toString('hex')}`.slice(0, 32);
}

/** A client message id: 16 random bytes, base64url. */
export function messageId(): string {
  return randomBytes(16).toString('base64url');
}

export interface AccountKeys {
  username: string;
  authKey: string;
  identity: TestIdentity;
}

/** A valid `POST /api/accounts` body with fresh keys, and the secrets behind it. */
export function accountBody(
  username = uniqueUsername(),
  options: { oneTimePrekeys?: number } = {},
): { body: Record<string, unknown>; keys: AccountKeys } {
  const identity = newIdentity();
  const authKey = randomBytes(32).toString('base64url');
  return {
    keys: { username, authKey, identity },
    body: {
      username,
      salt: randomBytes(16).toString('base64url'),
      authKey,
      identityKey: identity.publicKey.toString('base64url'),
      signedPrekey: signedPrekey(identity),
      oneTimePrekeys: oneTimePrekeys(options.oneTimePrekeys ?? 5),
    },
  };
}

export type TestAccount = SessionAnswer & AccountKeys;

/** Signs up an account (with `oneTimePrekeys` one-time prekeys, default 5); throws unless 201. */
export async function signUp(
  baseUrl: string,
  username = uniqueUsername(),
  options: { oneTimePrekeys?: number } = {},
): Promise<TestAccount> {
  const { body, keys } = accountBody(username, options);
  const res = await api(baseUrl, 'POST', '/api/accounts', { body });
  if (res.status !== 201) throw new Error(`sign-up answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { ...(res.body as SessionAnswer), ...keys };
}

/** Signs in (a new device unless `deviceId` names one of the account's); throws unless 200. */
export async function signIn(baseUrl: string, account: AccountKeys, deviceId?: string): Promise<SessionAnswer> {
  const body = { username: account.username, authKey: account.authKey, ...(deviceId ? { deviceId } : {}) };
  const res = await api(baseUrl, 'POST', '/api/sessions', { body });
  if (res.status !== 200) throw new Error(`sign-in answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body as SessionAnswer;
}

/** Uploads a signed prekey for the session's device, as a client does after signing in; throws unless 204/200. */
export async function uploadKeys(baseUrl: string, account: AccountKeys, session: SessionAnswer): Promise<void> {
  const res = await api(baseUrl, 'PUT', '/api/devices/self/prekeys', {
    token: session.accessToken,
    body: { signedPrekey: signedPrekey(account.identity), oneTimePrekeys: oneTimePrekeys(2) },
  });
  if (res.status >= 300) throw new Error(`prekey upload answered ${res.status}: ${JSON.stringify(res.body)}`);
}

/** Signs in on a new device and uploads its keys: a device that group sends fan out to. */
export async function signInWithKeys(baseUrl: string, account: AccountKeys): Promise<SessionAnswer> {
  const session = await signIn(baseUrl, account);
  await uploadKeys(baseUrl, account, session);
  return session;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export interface ApiAnswer {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when the answer is not JSON, or null when empty. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read answers of many shapes
}

/** One HTTP request. `body` is sent as JSON; `rawBody` as is (with content-type application/json). */
export async function api(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined || options.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = options.rawBody ?? JSON.stringify(options.body);
  }
  const res = await fetch(`${baseUrl}${path}`, { method, headers, body, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  let parsed: unknown = null;
  if (text.length > 0) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

// ---------------------------------------------------------------------------------------------------------------
// Sockets

export type ClientSocket = Socket;

export interface TestDevice {
  socket: ClientSocket;
  /** Every delivered message, in arrival order. */
  messages: DeliveredMessage[];
  /** Every `messages` event as it arrived. */
  batches: DeliveredMessage[][];
  presence: PresenceUpdate[];
  /** With autoAck false: the ack callbacks of received batches, in order, not yet called. */
  pendingAcks: (() => void)[];
  send(payload: unknown): Promise<SendAck>;
  watch(userIds: string[]): Promise<WatchAck>;
  /** Resolves once at least `count` messages have arrived in total. */
  waitForMessages(count: number, timeoutMs?: number): Promise<DeliveredMessage[]>;
  close(): void;
}

/** Socket options every test client uses: msgpack, websocket only, no reconnection. */
export function socketOptions(token: unknown): Parameters<typeof io>[1] {
  return {
    parser: msgpackParser,
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 10_000,
  };
}

/**
 * Connects one device with an access token; resolves once connected, rejects with the connect_error. With
 * `autoAck` (default) every `messages` batch is acknowledged on arrival.
 */
export function connectDevice(url: string, token: string, options: { autoAck?: boolean } = {}): Promise<TestDevice> {
  const autoAck = options.autoAck ?? true;
  const socket = io(url, socketOptions(token));
  const device: TestDevice = {
    socket,
    messages: [],
    batches: [],
    presence: [],
    pendingAcks: [],
    send: (payload) => socket.timeout(10_000).emitWithAck('message:send', payload) as Promise<SendAck>,
    watch: (userIds) => socket.timeout(10_000).emitWithAck('presence:watch', { userIds }) as Promise<WatchAck>,
    waitForMessages: (count, timeoutMs = 5000) =>
      waitFor(() => device.messages.length >= count, timeoutMs, `${count} messages`).then(() => device.messages),
    close: () => {
      socket.disconnect();
    },
  };
  socket.on('messages', (batch: DeliveredMessage[], ack: () => void) => {
    device.batches.push(batch);
    device.messages.push(...batch);
    if (autoAck) ack();
    else device.pendingAcks.push(ack);
  });
  socket.on('presence', (update: PresenceUpdate) => device.presence.push(update));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(device));
    socket.once('connect_error', (err) => {
      socket.disconnect();
      reject(err);
    });
  });
}

/** Tries to connect with `token` and returns the connect_error's `data` (throws if the connection succeeds). */
export function connectError(url: string, token: unknown): Promise<unknown> {
  const socket = io(url, socketOptions(token));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.disconnect();
      reject(new Error('connected, but a connect_error was expected'));
    });
    socket.once('connect_error', (err: Error & { data?: unknown }) => {
      socket.disconnect();
      resolve(err.data);
    });
  });
}

/** Polls `predicate` every 10 ms until it holds; rejects after `timeoutMs` naming `what`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A SQLite file as `PRAGMA`s see it, read-only: its bytes, its free pages and its integrity check. */
export function sqliteFileState(file: string): { bytes: number; freePages: number; integrity: unknown } {
  const db = new Database(file, { readonly: true });
  try {
    const freePages = db.pragma('freelist_count', { simple: true }) as number;
    return { bytes: statSync(file).size, freePages, integrity: db.pragma('integrity_check', { simple: true }) };
  } finally {
    db.close();
  }
}
