// Socket.IO transport: handshake auth, then parse → service → ack for each event. No business logic here.
// Every handler survives any payload: a missing or non-function ack is tolerated, anything thrown becomes an
// error ack, and the per-device token bucket applies to every event a client emits.
import type { Server as HttpServer } from 'node:http';
import jwt from 'jsonwebtoken';
import type { Logger } from 'pino';
import { Server } from 'socket.io';
import type { ServerOptions, Socket } from 'socket.io';
import type { ClusterBus } from './cluster/bus.js';
import type { Config } from './config.js';
import type { RelayMetrics } from './metrics.js';
import { RelayError, asRelayError } from './errors.js';
import { messageSendSchema, presenceWatchSchema } from './protocol.js';
import type { AckError, ClientToServerEvents, ServerToClientEvents } from './protocol.js';
import type { AccountService } from './service/accounts.js';
import type { Delivery } from './service/delivery.js';
import type { MailboxService } from './service/mailbox.js';
import type { PresenceService } from './service/presence.js';
import type { EventLimiter } from './service/rate-limit.js';
import { ENGINE_HEADERS } from './http/security.js';
import { ExpiryWheel, SocketLink } from './socket-link.js';
import type { LinkSocket, WriteBufferPolicy } from './socket-link.js';
import { compactListenerTables, unwrapOnceListeners } from './listener-tables.js';
import { SmallMap, SmallSet } from './socket-maps.js';
import { coalesceWrites } from './socket-writes.js';
import { relayParser } from './socket-parser.js';
import { parseInput } from './validation.js';

export type RelayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketLink>;
type RelaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketLink>;
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
  /**
   * The cluster bus: a revocation goes to every node over it as well as through the adapter, and after a cut each
   * node checks the sessions of its own sockets against the store (a revocation during the outage reached neither).
   */
  bus: ClusterBus;
  /** Prometheus metrics, when METRICS_PORT is set. */
  metrics?: RelayMetrics;
  /** `message:send` events received and not answered yet (Relay.sendsUnanswered). */
  sendGauge?: { unanswered: number };
  /** Socket.IO's adapter between relay nodes (the Redis streams adapter); in-memory when absent. */
  adapter?: ServerOptions['adapter'];
}

export interface SocketLayer {
  io: RelayServer;
  /** Drops every connection authenticated through this refresh family, on every node (sign-out, token reuse). */
  disconnectFamily(familyId: string): void;
  /** Tells a removed device's connections (`device:removed`), then drops them, on every node. */
  deviceRemoved(familyIds: readonly string[]): void;
  /** Tells every connected device of the account that its device list changed (`devices:changed`). */
  devicesChanged(userId: string, reason: 'added' | 'renamed' | 'removed'): void;
}

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
  io.engine.on('connection', (raw: EngineSocket) => {
    raw.request = null;
    if (raw.transport?.name === 'websocket') {
      coalesceWrites(raw.transport);
      releaseUpgradeRequest(raw.transport);
      releaseHandshakeListeners(raw.transport);
      trimCleanups(raw);
      unwrapConnectionOnces(raw, raw.transport);
    } else {
      unwrapConnectionOnces(raw);
      // long-polling first: the WebSocket comes later, if at all
      raw.once('upgrade', (transport: EngineTransport) => {
        coalesceWrites(transport);
        releaseUpgradeRequest(transport);
        trimCleanups(raw);
        unwrapConnectionOnces(undefined, transport);
        compactListenerTables(raw, transport, transport.socket);
      });
    }
  });

  const bufferPolicy = writeBufferPolicy(config);
  io.use((socket, next) => {
    const auth: unknown = socket.handshake.auth;
    const token = typeof auth === 'object' && auth !== null ? (auth as { token?: unknown }).token : undefined;
    accounts.authenticate(token).then(
      (claims) => {
        socket.data = new SocketLink(socket, claims, tokenExpiry(token, deps.now()), deps.now, bufferPolicy);
        // Nothing reads the handshake again: do not hold the token (its expiry is kept), nor the rest, for the
        // connection's lifetime.
        const handshake = socket.handshake;
        handshake.auth = EMPTY;
        handshake.headers = EMPTY;
        handshake.query = EMPTY;
        handshake.time = '';
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

  // A token authorizes its connection only until it expires. Closing the transport (not a Socket.IO disconnect,
  // after which clients stay away) makes a client reconnect, and the handshake then needs a fresh token.
  const expiry = new ExpiryWheel<RelaySocket>(deps.now, (socket) => socket.conn.close());
  const handlers = eventHandlers(deps, expiry);
  io.on('connection', (socket) => onConnection(socket, deps, handlers, expiry));

  const dropLocal = (familyIds: readonly string[]): void => {
    for (const familyId of familyIds) io.local.in(familyRoom(familyId)).disconnectSockets(true);
  };
  /** Every family with a socket on this node, checked against the store; the ended ones are dropped. */
  const recheckSessions = async (): Promise<void> => {
    const families = [...io.of('/').sockets.values()].map((socket) => socket.data.familyId);
    const ended = await accounts.endedFamilies(families);
    if (ended.length > 0) log.info({ sockets: ended.length }, 'dropped sockets of sessions revoked during a cut');
    dropLocal(ended);
  };
  deps.bus.onEvent((event) => {
    if (event.type !== 'revoked') return;
    // A removed device is told first on this path too: the bus and the adapter are separate channels, and whichever
    // reaches this node first must not drop the socket before the event.
    if (event.removed) for (const familyId of event.familyIds) io.local.in(familyRoom(familyId)).emit('device:removed');
    dropLocal(event.familyIds);
  });
  deps.bus.onResume(() => {
    recheckSessions().catch((err: unknown) => log.warn({ err }, 'session recheck after a cut failed'));
  });

  const disconnectFamily = (familyId: string): void => {
    // A room per family: through the adapter this reaches the family's sockets on every node. The bus says it
    // again; if that cannot be published, the bus owes a resume and every node rechecks its sockets' sessions.
    io.in(familyRoom(familyId)).disconnectSockets(true);
    void deps.bus.publish({ type: 'revoked', familyIds: [familyId] });
  };
  return {
    io,
    disconnectFamily,
    deviceRemoved(familyIds) {
      // The device learns why it was dropped (one that misses the event learns it from `device_removed` on its next
      // request or handshake).
      // Here, then on every other node through the bus, each in order: the event, then the disconnect. (Through the
      // adapter the disconnect could overtake a bus-borne one and vice versa.) If the bus cannot publish, it owes a
      // resume and every node rechecks its sockets' sessions, dropping these without the event.
      for (const familyId of familyIds) io.local.in(familyRoom(familyId)).emit('device:removed');
      dropLocal(familyIds);
      void deps.bus.publish({ type: 'revoked', familyIds: [...familyIds], removed: true });
    },
    devicesChanged(userId, reason) {
      io.in(userRoom(userId)).emit('devices:changed', { reason });
    },
  };
}

interface EngineTransport extends NodeJS.EventEmitter {
  name?: string;
  /** The `ws` WebSocket of the websocket transport. */
  socket?: NodeJS.EventEmitter & {
    _socket?: NodeJS.EventEmitter | null;
    bufferedAmount?: number;
    terminate?: () => void;
  };
}
interface EngineSocket extends NodeJS.EventEmitter {
  request: unknown;
  /** What engine.io runs when it leaves the current transport: one function per transport it set. */
  cleanupFn?: unknown[];
  transport?: EngineTransport;
  /** Engine.IO packets waiting for the transport to become writable (it is not while the last write is pending). */
  writeBuffer?: { data?: unknown }[];
  close(discard?: boolean): void;
}

/** Bytes of one queued Engine.IO packet (a ping has no data). */
function packetBytes(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/**
 * What a connection has queued for writing: Engine.IO's write buffer (which grows while the transport waits for a
 * write to finish) plus what the WebSocket has not yet handed to the kernel. The kernel's own buffers are bounded.
 */
export function queuedBytes(conn: EngineSocket): number {
  let bytes = conn.transport?.socket?.bufferedAmount ?? 0;
  for (const packet of conn.writeBuffer ?? []) bytes += packetBytes(packet.data);
  return bytes;
}

/**
 * Closes a connection at once. Engine.IO's close() waits for its write buffer to drain and `ws`'s close() for the
 * peer's close frame (30 s): neither comes from a client that stopped reading, so the WebSocket is terminated.
 */
function dropConnection(conn: EngineSocket): void {
  const ws = conn.transport?.socket;
  if (conn.transport?.name === 'websocket' && typeof ws?.terminate === 'function') ws.terminate();
  else conn.close(true);
}

function writeBufferPolicy(config: Config): WriteBufferPolicy {
  const conn = (socket: LinkSocket): EngineSocket => (socket as RelaySocket).conn as unknown as EngineSocket;
  return {
    queuedBytes: (socket) => queuedBytes(conn(socket)),
    drop: (socket) => dropConnection(conn(socket)),
    limitBytes: config.socketBufferLimitBytes,
    graceMs: config.socketBufferGraceMs,
  };
}

/** The listener engine.io's WebSocketResponse leaves on the TCP socket; it holds the whole upgrade request. */
const UPGRADE_CLOSE_LISTENER = '() => this.emit("close")';

/**
 * engine.io 6.6 wraps each WebSocket upgrade in a WebSocketResponse (for its HTTP middlewares, which the relay does not
 * use) that listens for the TCP socket's close with a closure holding the upgrade request (about 1.5 KiB with its
 * headers) for the connection's lifetime. Removing that listener only drops a `close` event nobody listens to.
 */
function releaseUpgradeRequest(transport: EngineTransport): void {
  const tcp = transport.socket?._socket;
  if (!tcp) return;
  for (const raw of tcp.rawListeners('close')) {
    const listener = (raw as { listener?: unknown }).listener ?? raw;
    if (typeof listener === 'function' && listener.toString() === UPGRADE_CLOSE_LISTENER) {
      tcp.removeListener('close', listener as () => void);
    }
  }
}

/**
 * Two listeners engine.io leaves for a connection's lifetime when it starts on a WebSocket, each a closure (with its
 * entry in its emitter's listener table): the handshake's `headers` listener on the transport, which only a
 * long-polling response emits, and `onUpgradeError` on the WebSocket, a no-op the transport's own `error` listener
 * replaces (it stays, so an error is still handled).
 */
function releaseHandshakeListeners(transport: EngineTransport): void {
  transport.removeAllListeners('headers');
  const ws = transport.socket;
  if (!ws) return;
  for (const listener of ws.listeners('error')) {
    if (listener.name === UPGRADE_ERROR_LISTENER) ws.removeListener('error', listener as () => void);
  }
}

/**
 * V8 gives an array that grew by its first push room for 17 items (152 bytes). engine.io pushes one clean-up function
 * per transport it sets, and takes them all out when it leaves that transport: a copy holds just the one.
 */
function trimCleanups(raw: EngineSocket): void {
  if (Array.isArray(raw.cleanupFn)) raw.cleanupFn = raw.cleanupFn.slice();
}

/**
 * The four `once` listeners engine.io sets for a connection's lifetime, each replaced by the listener it wraps
 * (listener-tables.ts: about 150 bytes each). Each is reached at most once without its wrapper:
 * - the engine.io socket's `close` (engine.io's server counts its clients with it): the socket emits `close` only
 *   where its readyState first turns to closed;
 * - the transport's `close` and `error`: the engine.io socket's own, which it removes when it first closes, and it
 *   closes on either (`clearTransport`);
 * - the `ws` WebSocket's `close`, the transport's: `ws` emits it once, when the TCP socket has closed.
 * Given the engine.io socket at its `connection`, the transport when it is set (at `connection` or `upgrade`).
 */
function unwrapConnectionOnces(raw?: EngineSocket, transport?: EngineTransport): void {
  unwrapOnceListeners(raw, 'close');
  unwrapOnceListeners(transport, 'close', 'error');
  unwrapOnceListeners(transport?.socket, 'close');
}

/** Socket.IO's per-connection Maps: the socket's `acks`, and its client's `sockets` and `nsps`. */
interface SocketMaps {
  acks?: unknown;
  client?: { sockets?: unknown; nsps?: unknown };
}

/**
 * Swaps Socket.IO's three Maps of a connected socket (about 200 bytes of table each, even when empty) for SmallMaps
 * (socket-maps.ts): its client's sockets by id and by namespace hold one entry, as the relay has one namespace, and
 * the acks it awaits of a `messages` push are none or one while the connection is idle.
 */
function slimSocketMaps(socket: RelaySocket): void {
  const maps = socket as unknown as SocketMaps;
  if (maps.acks instanceof Map) maps.acks = new SmallMap(maps.acks);
  const client = maps.client;
  if (client?.sockets instanceof Map) client.sockets = new SmallMap(client.sockets);
  if (client?.nsps instanceof Map) client.nsps = new SmallMap(client.nsps);
}

/** The adapter's Sets (not a public API): each socket's rooms, and each room's sockets. */
interface AdapterSets {
  sids?: Map<string, unknown>;
  rooms?: Map<string, unknown>;
}

/** A room's sockets are held in a SmallSet up to this many (a larger room keeps its Set). */
const SMALL_ROOM = 2;

/**
 * Swaps the adapter's Set of the rooms a socket is in (the relay's two, once it left the room of its own id) and the
 * Set of each of those rooms that holds one or two sockets (about 200 bytes of table each) for SmallSets
 * (socket-maps.ts). A room's SmallSet takes later members itself; one made again after it emptied is a Set until the
 * next connection that joins it.
 */
function slimRoomSets(socket: RelaySocket): void {
  const adapter = socket.nsp.adapter as unknown as AdapterSets;
  const rooms = adapter.sids?.get(socket.id);
  if (!(rooms instanceof Set)) return;
  adapter.sids?.set(socket.id, new SmallSet(rooms as Set<string>));
  for (const room of rooms as Set<string>) {
    const members = adapter.rooms?.get(room);
    if (members instanceof Set && members.size <= SMALL_ROOM) adapter.rooms?.set(room, new SmallSet(members));
  }
}

/** The name of engine.io's no-op `error` listener on a WebSocket that opened a session (server.js, onWebSocket). */
const UPGRADE_ERROR_LISTENER = 'onUpgradeError';

/** Shared by every trimmed handshake; frozen, so no one can write through it. */
const EMPTY = Object.freeze({});

const familyRoom = (familyId: string): string => `family:${familyId}`;
/** Every connection of one account (its device-list changes go there). */
const userRoom = (userId: string): string => `user:${userId}`;

/** When the handshake's access token (verified by the middleware) expires, in ms since the epoch. */
function tokenExpiry(token: unknown, now: number): number {
  const claims = typeof token === 'string' ? jwt.decode(token, { json: true }) : null;
  return typeof claims?.exp === 'number' ? claims.exp * 1000 : now;
}

interface EventHandlers {
  /** Every client event, by name (one catch-all listener keeps each socket's listener table small). */
  event: (this: RelaySocket, event: unknown, ...args: unknown[]) => void;
  disconnect: (this: RelaySocket) => void;
}

/**
 * The listeners of every socket, made once per server: Socket.IO calls them with the socket as `this`, so an idle
 * connection holds no closures of its own.
 */
function eventHandlers(deps: SocketDeps, expiry: ExpiryWheel<RelaySocket>): EventHandlers {
  const { log, mailbox, presence, delivery, eventLimiter, now } = deps;

  const limited = (): never => {
    deps.metrics?.rateLimited.inc({ limit: 'events' });
    throw new RelayError('rate_limited', 'too many events; slow down');
  };
  /**
   * Every event costs one token of the device's bucket, whatever it carries. Throws `rate_limited`; a promise only
   * when the limiter answers with one (the cluster's), so a message on one node makes none here.
   */
  const admit = (link: SocketLink): void | Promise<void> => {
    const taken = eventLimiter.take(link.deviceId, now());
    if (taken === true) return;
    if (taken === false) limited();
    return (taken as Promise<boolean>).then((ok) => {
      if (!ok) limited();
    });
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

  const gauge = deps.sendGauge ?? { unanswered: 0 };
  const send = async (link: SocketLink, payload: unknown, ack: Ack | undefined): Promise<void> => {
    gauge.unanswered++;
    try {
      const admitted = admit(link);
      if (admitted) await admitted;
      const input = parseInput(messageSendSchema, payload, 'payload');
      const { ts, refused } = await mailbox.send(link, input);
      deps.metrics?.sends.inc();
      answer(ack, refused ? { ok: true, ts, refused } : { ok: true, ts });
    } catch (err) {
      deps.metrics?.refusedSends.inc({ code: asRelayError(err).code });
      fail(ack, err);
    } finally {
      gauge.unanswered--;
    }
  };

  const watch = async (link: SocketLink, payload: unknown, ack: Ack | undefined): Promise<void> => {
    try {
      await admit(link);
      const input = parseInput(presenceWatchSchema, payload, 'payload');
      const watcher = link.watcher;
      const updates = await presence.watch(watcher, input.userIds);
      answer(ack, { ok: true });
      for (const update of updates) watcher.send(update);
    } catch (err) {
      fail(ack, err);
    }
  };

  return {
    event(event, ...args) {
      const { payload, ack } = splitArgs(args);
      if (event === 'message:send') {
        void send(this.data, payload, ack);
      } else if (event === 'presence:watch') {
        void watch(this.data, payload, ack);
      } else {
        Promise.resolve()
          .then(() => admit(this.data))
          .then(
            () => fail(ack, new RelayError('invalid_input', 'unknown event')),
            (err: unknown) => fail(ack, err),
          );
      }
    },
    disconnect() {
      deps.metrics?.connections.dec();
      const link = this.data;
      expiry.remove(this, link.expiresAt);
      link.close();
      delivery.detach(link.delivery);
      const watcher = link.watcherIfAny;
      if (watcher) presence.unwatch(watcher);
      presence.disconnected(link.userId);
    },
  };
}

function onConnection(
  socket: RelaySocket,
  deps: SocketDeps,
  handlers: EventHandlers,
  expiry: ExpiryWheel<RelaySocket>,
): void {
  const link = socket.data;
  void socket.join([familyRoom(link.familyId), userRoom(link.userId)]);
  // Socket.IO puts every socket in a room of its own id; the relay never addresses one (its rooms are the family's and
  // the account's), and the room costs a Set and two map entries per connection.
  void socket.leave(socket.id);
  slimRoomSets(socket);
  expiry.add(socket, link.expiresAt);
  // "Last active" is kept per connection (and sign-in, refresh), never per message.
  deps.accounts.touch(link.deviceId).catch((err: unknown) => deps.log.warn({ err }, 'device activity not recorded'));

  // Socket.IO itself listens for `error` (a noop), so an error event cannot throw.
  socket.onAny(handlers.event);
  // Socket.IO keeps the any-listeners in an array grown by push (room for 17 items, 152 bytes); nothing adds to it
  // again, and a copy holds just the one (about 130 bytes less per connection).
  const any = socket as unknown as { _anyListeners?: unknown[] };
  if (Array.isArray(any._anyListeners)) any._anyListeners = any._anyListeners.slice();
  slimSocketMaps(socket);
  socket.on('disconnect', handlers.disconnect);

  deps.metrics?.connections.inc();
  link.delivery = deps.delivery.attach(link);
  deps.presence.connected(link.userId);
  // Every listener of the connection's lifetime is set: its four listener tables go to fast mode (listener-tables.ts).
  const conn = socket.conn as unknown as EngineSocket;
  compactListenerTables(socket, conn, conn.transport, conn.transport?.socket);
}
