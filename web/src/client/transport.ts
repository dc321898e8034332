// Transport: the Socket.IO half of PROTOCOL.md — msgpack frames, reconnect with jittered backoff, a fresh access
// token on every handshake (refreshed when the relay says unauthorized), acked sends with a timeout.

import type {
  ClientToServerEvents,
  MessageSendPayload,
  ServerToClientEvents,
  SendAck,
} from '@weconnect/relay/protocol';
import { io, type Socket } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import type { TokenKeeper } from './api';
import { ClientError } from './errors';
import { sendAckSchema } from '@weconnect/relay/protocol';
import type { ConnectionState } from './types';

export interface TransportHandlers {
  state(state: ConnectionState, detail?: string): void;
  /** A batch of mailbox entries; call `ack` only once all are stored. */
  messages(batch: unknown[], ack: () => void): void;
  presence(update: unknown): void;
  /** Called after every (re)connect: flush the outbox, re-watch presence. */
  connected(): void;
  /** The refresh token was refused: the user must unlock with the password again. */
  sessionEnded(): void;
  /** This device was removed from its account (`device:removed`, or a handshake refused with `device_removed`). */
  deviceRemoved?(): void;
  /** The account's device list changed (`devices:changed`). */
  devicesChanged?(): void;
  /** The relay ended the connection itself (a revocation or a removal): Socket.IO does not reconnect then. */
  serverDisconnected?(): void;
}

const SEND_TIMEOUT_MS = 15_000;

export class Transport {
  readonly #socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly #tokens: TokenKeeper;
  readonly #handlers: TransportHandlers;
  #stopped = false;
  #retry: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;

  constructor(url: string, tokens: TokenKeeper, handlers: TransportHandlers) {
    this.#tokens = tokens;
    this.#handlers = handlers;
    this.#socket = io(url, {
      parser: msgpackParser,
      transports: ['websocket'],
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 10_000,
      randomizationFactor: 0.5,
      auth: (cb) => {
        tokens.access().then(
          (token) => cb({ token }),
          () => cb({ token: '' }),
        );
      },
    });
    const s = this.#socket;
    s.on('connect', () => {
      this.#attempt = 0;
      handlers.state('online');
      handlers.connected();
    });
    s.on('disconnect', (reason) => {
      if (this.#stopped) return;
      handlers.state(reason === 'io client disconnect' ? 'offline' : 'connecting', reason);
      if (reason === 'io server disconnect') {
        handlers.serverDisconnected?.();
        // The relay closed this connection on purpose (its session was revoked, or the device removed) and Socket.IO
        // will not reconnect: a refused refresh means the session is over; otherwise the connection comes back.
        this.#tokens.refresh().then(
          () => this.#schedule(),
          (e: unknown) => {
            if (e instanceof ClientError && e.code === 'unauthorized') handlers.sessionEnded();
            else this.#schedule();
          },
        );
      }
    });
    s.io.on('reconnect_attempt', () => handlers.state('connecting'));
    s.io.on('reconnect_error', () => handlers.state('offline', 'The relay is unreachable'));
    s.on('connect_error', (err) => {
      if (this.#stopped) return;
      const data = (err as { data?: { error?: { code?: unknown } } }).data;
      handlers.state('offline', err.message);
      if (data?.error?.code === 'device_removed') {
        handlers.deviceRemoved?.();
      } else if (data?.error?.code === 'unauthorized') {
        // The handshake refused our token: refresh once, then try again (middleware errors do not auto-retry).
        this.#tokens.refresh().then(
          () => this.#schedule(),
          (e: unknown) => {
            if (e instanceof ClientError && e.code === 'unauthorized') handlers.sessionEnded();
            else this.#schedule();
          },
        );
      } else if (!s.active) {
        this.#schedule();
      }
    });
    s.on('messages', (batch, ack) => handlers.messages(Array.isArray(batch) ? batch : [batch], ack));
    s.on('presence', (update) => handlers.presence(update));
    s.on('device:removed', () => handlers.deviceRemoved?.());
    s.on('devices:changed', () => handlers.devicesChanged?.());
  }

  #schedule(): void {
    if (this.#stopped || this.#retry) return;
    const base = Math.min(10_000, 500 * 2 ** this.#attempt++);
    const delay = base / 2 + Math.random() * (base / 2);
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (!this.#stopped && !this.#socket.connected) this.#socket.connect();
    }, delay);
  }

  start(): void {
    this.#stopped = false;
    this.#handlers.state('connecting');
    this.#socket.connect();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
    this.#socket.disconnect();
    this.#handlers.state('offline');
  }

  get connected(): boolean {
    return this.#socket.connected;
  }

  /** Emits `message:send` and resolves with the relay's answer; rejects when offline or after a timeout. */
  send(payload: MessageSendPayload): Promise<SendAck> {
    if (!this.#socket.connected) return Promise.reject(new ClientError('relay_unreachable', 'Not connected'));
    // The browser build of the msgpack encoder (notepack.io) writes only ArrayBuffer as binary; a Uint8Array would
    // become a map of indexes and the relay would refuse it. Exact-length copies work in Node too.
    const wire: MessageSendPayload =
      'envelopes' in payload
        ? { ...payload, envelopes: payload.envelopes.map((e) => ({ to: e.to, body: asArrayBuffer(e.body) })) }
        : { ...payload, body: asArrayBuffer(payload.body) };
    return new Promise((resolve, reject) => {
      this.#socket.timeout(SEND_TIMEOUT_MS).emit('message:send', wire, (err: Error | null, answer: unknown) => {
        if (err) return reject(new ClientError('relay_unreachable', 'The relay did not acknowledge in time'));
        const parsed = sendAckSchema.safeParse(answer);
        if (!parsed.success) return reject(new ClientError('relay_error', 'Malformed send acknowledgement'));
        resolve(parsed.data as SendAck);
      });
    });
  }

  /** Replaces the presence watch list (at most 200 users). */
  watch(userIds: string[]): void {
    if (!this.#socket.connected) return;
    this.#socket.emit('presence:watch', { userIds: userIds.slice(0, 200) }, () => undefined);
  }
}

function asArrayBuffer(body: Uint8Array | ArrayBuffer): ArrayBuffer {
  if (body instanceof ArrayBuffer) return body;
  const copy = new Uint8Array(body.byteLength);
  copy.set(body);
  return copy.buffer;
}
