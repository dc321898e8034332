// Socket.IO transport: handshake auth, then parse → service → ack for each event. No business logic here.
// Every handler survives any payload: a missing or non-function ack is tolerated, anything thrown becomes an
// error ack, and the per-device token bucket applies to every event a client emits.
import type { Server as HttpServer } from 'node:http';
import jwt from 'jsonwebtoken';
import type { Logger } from 'pino';
import { Server } from 'socket.io';
import type { ServerOptions, Socket } from 'socket.io';
import type { Config } from './config.js';
import { RelayError, asRelayError } from './errors.js';
import { messageSendSchema, presenceWatchSchema } from './protocol.js';
import type { AckError, ClientToServerEvents, ServerToClientEvents, SocketData } from './protocol.js';
import type { AccountService } from './service/accounts.js';
import type { Delivery, DeviceLink } from './service/delivery.js';
import type { MailboxService } from './service/mailbox.js';
import type { PresenceService, PresenceWatcher } from './service/presence.js';
import type { EventLimiter } from './service/rate-limit.js';
import { ENGINE_HEADERS } from './http/security.js';
import { relayParser } from './socket-parser.js';
import { parseInput } from './validation.js';

export type RelayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type RelaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type Ack = (answer: unknown) => void;

export interface SocketDeps {
  config: Config;
  log: Logger;
  accounts: AccountService;
  mailbox: MailboxService;
  presence: PresenceService;
  delivery: Delivery;
  eventLimiter: EventLimiter;
  now: () => number;
  /** Socket.IO's adapter between relay nodes (the Redis streams adapter); in-memory when absent. */
  adapter?: ServerOptions['adapter'];
}

export interface SocketLayer {
  io: RelayServer;
  /** Drops every connection authenticated through this refresh family, on every node (sign-out, token reuse). */
  disconnectFamily(familyId: string): void;
}

const KNOWN_EVENTS = new Set(['message:send', 'presence:watch']);

function errorAck(err: RelayError): AckError {
  return { ok: false, error: { code: err.code, message: err.message } };
}

/** Splits Socket.IO listener arguments into the payload and the ack callback, whatever the client sent. */
function splitArgs(args: unknown[]): { payload: unknown; ack: Ack | undefined } {
  const last = args.at(-1);
  const ack = typeof last === 'function' ? (last as Ack) : undefined;
  return { payload: ack && args.length === 1 ? undefined : args[0], ack };
}

export function attachSocket(httpServer: HttpServer, deps: SocketDeps): SocketLayer {
  const { config, log, accounts } = deps;
  const io: RelayServer = new Server(httpServer, {
    parser: relayParser,
    maxHttpBufferSize: config.socketFrameLimitBytes,
    serveClient: false,
    connectTimeout: 10_000,
    ...(deps.adapter ? { adapter: deps.adapter } : {}),
  });

  // Engine.IO's own error answers (bad handshake, unknown session, unsupported protocol version) skip the two hooks
  // below: set the security headers on every Engine.IO request before it is handled.
  httpServer.prependListener('request', (req, res) => {
    if (req.url?.startsWith('/socket.io/'))
      for (const [name, value] of Object.entries(ENGINE_HEADERS)) res.setHeader(name, value);
  });
  io.engine.on('initial_headers', (headers: Record<string, string>) => Object.assign(headers, ENGINE_HEADERS));
  io.engine.on('headers', (headers: Record<string, string>) => Object.assign(headers, ENGINE_HEADERS));
  // Socket.IO's memory advice: the engine's copy of the upgrade request is not needed after the handshake.
  io.engine.on('connection', (raw: { request: unknown }) => {
    raw.request = null;
  });

  io.use((socket, next) => {
    const auth: unknown = socket.handshake.auth;
    const token = typeof auth === 'object' && auth !== null ? (auth as { token?: unknown }).token : undefined;
    accounts.authenticate(token).then(
      (claims) => {
        socket.data = claims;
        next();
      },
      (err: unknown) => {
        const e = asRelayError(err);
        if (e.code === 'internal') log.error({ err }, 'socket authentication failed');
        const refusal = new Error(e.message) as Error & { data?: unknown };
        refusal.data = e.toWire();
        next(refusal);
      },
    );
  });

  io.on('connection', (socket) => onConnection(socket, deps));

  return {
    io,
    disconnectFamily(familyId) {
      // A room per family: through the adapter this reaches the family's sockets on every node.
      io.in(familyRoom(familyId)).disconnectSockets(true);
    },
  };
}

const familyRoom = (familyId: string): string => `family:${familyId}`;

/** Milliseconds until the handshake's access token (verified by the middleware) expires, within setTimeout's range. */
function tokenLifetimeMs(auth: unknown, now: number): number {
  const token = typeof auth === 'object' && auth !== null ? (auth as { token?: unknown }).token : undefined;
  const claims = typeof token === 'string' ? jwt.decode(token, { json: true }) : null;
  const expiresAt = typeof claims?.exp === 'number' ? claims.exp * 1000 : now;
  return Math.min(Math.max(0, expiresAt - now), 2 ** 31 - 1);
}

function onConnection(socket: RelaySocket, deps: SocketDeps): void {
  const { log, mailbox, presence, delivery, eventLimiter, now } = deps;
  const { userId, deviceId, familyId } = socket.data;

  void socket.join(familyRoom(familyId));
  // A token authorizes its connection only until it expires. Closing the transport (not a Socket.IO disconnect,
  // after which clients stay away) makes a client reconnect, and the handshake then needs a fresh token.
  const expiry = setTimeout(() => socket.conn.close(), tokenLifetimeMs(socket.handshake.auth, now()));
  expiry.unref();

  /** Every event costs one token of the device's bucket, whatever it carries. */
  const admit = async (): Promise<void> => {
    if (!(await eventLimiter.take(deviceId, now()))) throw new RelayError('rate_limited', 'too many events; slow down');
  };
  const answer = (ack: Ack | undefined, value: unknown): void => {
    if (!ack) return;
    try {
      ack(value);
    } catch (err) {
      log.warn({ err }, 'ack failed');
    }
  };
  const fail = (ack: Ack | undefined, err: unknown): void => {
    const e = asRelayError(err);
    if (e.code === 'internal') log.error({ err }, 'socket event failed');
    answer(ack, errorAck(e));
  };

  const pendingSends = new Set<(acked: boolean) => void>();
  const link: DeviceLink = {
    deviceId,
    send: (batch, ackTimeoutMs) =>
      new Promise<boolean>((resolve) => {
        if (!socket.connected) {
          resolve(false);
          return;
        }
        let done = false;
        const finish = (acked: boolean): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          pendingSends.delete(finish);
          resolve(acked);
        };
        pendingSends.add(finish);
        // Our own timer, not socket.timeout(): that one is not cleared on disconnect and would keep a closed
        // relay's process alive until it fires.
        const timer = setTimeout(() => finish(false), ackTimeoutMs);
        timer.unref();
        socket.emit('messages', batch, () => finish(true));
      }),
  };
  const watcher: PresenceWatcher = { send: (update) => socket.emit('presence', update) };

  socket.on('message:send', (...args: unknown[]) => {
    const { payload, ack } = splitArgs(args);
    void (async () => {
      try {
        await admit();
        const input = parseInput(messageSendSchema, payload, 'payload');
        const { ts } = await mailbox.send(socket.data, input);
        answer(ack, { ok: true, ts });
      } catch (err) {
        fail(ack, err);
      }
    })();
  });

  socket.on('presence:watch', (...args: unknown[]) => {
    const { payload, ack } = splitArgs(args);
    void (async () => {
      try {
        await admit();
        const input = parseInput(presenceWatchSchema, payload, 'payload');
        const updates = await presence.watch(watcher, input.userIds);
        answer(ack, { ok: true });
        for (const update of updates) socket.emit('presence', update);
      } catch (err) {
        fail(ack, err);
      }
    })();
  });

  socket.onAny((event: unknown, ...args: unknown[]) => {
    if (typeof event === 'string' && KNOWN_EVENTS.has(event)) return;
    const { ack } = splitArgs(args);
    admit().then(
      () => fail(ack, new RelayError('invalid_input', 'unknown event')),
      (err: unknown) => fail(ack, err),
    );
  });

  socket.on('error', (err) => log.debug({ err }, 'socket error'));

  const detach = delivery.attach(link);
  presence.connected(userId);

  socket.on('disconnect', () => {
    clearTimeout(expiry);
    detach();
    for (const finish of [...pendingSends]) finish(false);
    presence.unwatch(watcher);
    presence.disconnected(userId);
  });
}
