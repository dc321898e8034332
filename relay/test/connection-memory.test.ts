// What an idle connection keeps: no upgrade request (engine.io's and its WebSocketResponse's references are dropped),
// no token in its handshake, none of the handshake's listeners engine.io leaves behind, and no room of its own id;
// and a client that starts on long-polling and upgrades to a WebSocket still works. Each is compared with a plain
// Socket.IO server of the same versions and options, started here: the relay's connection holds one `close` listener
// fewer on its TCP socket, no request, no `headers` listener on its transport, one `error` listener fewer on its
// WebSocket and one room fewer where the plain one holds them (if engine.io or Socket.IO stopped adding them, the
// comparison fails instead of passing for nothing). It holds none of the four `once` wrappers the plain one holds,
// and is still forgotten when it ends by a disconnect, a vanished TCP socket or a frame `ws` refuses.
// scripts/idle-memory.ts measures the memory itself.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import type { Socket } from 'socket.io';
import { io } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCompactListeners, onceWrapperCount } from '../src/listener-tables.js';
import { SafeDecoder, msgpack } from '../src/socket-parser.js';
import { connectDevice, messageId, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url);
  bob = await signUp(t.url);
});
afterAll(() => t.close());

interface EngineClient {
  request: unknown;
  transport: NodeJS.EventEmitter & { name: string; socket?: NodeJS.EventEmitter & { _socket?: NodeJS.EventEmitter } };
}

const relayServer = (): Server => t.relay.io as unknown as Server;

/** engine.io's connected sockets (not a public API: this test pins the internals the relay works around). */
function engineClients(server: Server = t.relay.io as unknown as Server): EngineClient[] {
  const engine = server.engine as unknown as { clients: Record<string, EngineClient> };
  return Object.values(engine.clients);
}

interface Held {
  request: unknown;
  /** On its TCP socket. */
  closeListeners: number;
  /** On its transport. */
  headersListeners: number;
  /** On its `ws` WebSocket. */
  errorListeners: number;
}

function held(client: EngineClient): Held {
  return {
    request: client.request,
    closeListeners: client.transport.socket?._socket?.listenerCount('close') ?? -1,
    headersListeners: client.transport.listenerCount('headers'),
    errorListeners: client.transport.socket?.listenerCount('error') ?? -1,
  };
}

/** The server's Socket.IO socket of that engine.io connection. */
function socketOf(server: Server, client: EngineClient): Socket {
  const socket = [...server.of('/').sockets.values()].find((s) => (s.conn as unknown) === client);
  if (!socket) throw new Error('no Socket.IO socket on that connection');
  return socket;
}

/** The rooms the server's socket of that engine.io connection is in. */
function roomsOf(server: Server, client: EngineClient): string[] {
  const socket = socketOf(server, client);
  return [...socket.rooms].map((room) => (room === socket.id ? 'its own id' : room.split(':')[0]!));
}

/** Socket.IO's per-connection maps (not a public API): the acks a socket awaits, its client's sockets and namespaces. */
interface ConnectionMaps {
  acks: ReadonlyMap<number, unknown>;
  sockets: ReadonlyMap<string, unknown>;
  nsps: ReadonlyMap<string, unknown>;
}

function mapsOf(socket: Socket): ConnectionMaps {
  const inner = socket as unknown as { acks: ConnectionMaps['acks']; client: Omit<ConnectionMaps, 'acks'> };
  return { acks: inner.acks, sockets: inner.client.sockets, nsps: inner.client.nsps };
}

/** The relay's pushes on that socket still waiting for their ack (SocketLink's queue; not a public API). */
function unsettledPushes(socket: Socket): number {
  const link = socket.data as { pending?: { resolve: unknown }[] | null };
  return (link.pending ?? []).filter((push) => push.resolve !== null).length;
}

/** What kind of Set the adapter holds the socket's rooms in, and each of those rooms' sockets in, and their sizes. */
function roomSets(server: Server, client: EngineClient): [string, number][] {
  const socket = socketOf(server, client);
  const adapter = server.of('/').adapter as unknown as {
    sids: Map<string, ReadonlySet<unknown>>;
    rooms: Map<string, ReadonlySet<unknown>>;
  };
  const mine = adapter.sids.get(socket.id);
  if (!mine) throw new Error('the socket is in no room');
  const kind = (set: ReadonlySet<unknown> | undefined): [string, number] => [
    set?.constructor.name ?? 'none',
    set?.size ?? -1,
  ];
  return [kind(mine), ...[...mine].map((room) => kind(adapter.rooms.get(room as string)))];
}

/** What kind of object each map is, and what it holds. */
function mapKinds(socket: Socket): Record<keyof ConnectionMaps, [string, number]> {
  const maps = mapsOf(socket);
  const kind = (map: ReadonlyMap<unknown, unknown>): [string, number] => [map.constructor.name, map.size];
  return { acks: kind(maps.acks), sockets: kind(maps.sockets), nsps: kind(maps.nsps) };
}

/**
 * Whether each of a connection's four listener tables is compact (listener-tables.ts): the Socket.IO socket's, the
 * engine.io socket's, its transport's and the `ws` WebSocket's.
 */
function compactTables(server: Server, client: EngineClient): boolean[] {
  return [socketOf(server, client), client, client.transport, client.transport.socket].map(hasCompactListeners);
}

/** The `once` wrappers of a connection's engine.io socket, its transport and its `ws` WebSocket, in that order. */
function onceWrappers(client: EngineClient): number[] {
  return [client as unknown as NodeJS.EventEmitter, client.transport, client.transport.socket].map((emitter) =>
    emitter ? onceWrapperCount(emitter) : -1,
  );
}

/** What a connection of a plain Socket.IO server (no relay hooks) holds, its rooms, its maps and listener tables. */
async function plainConnection(): Promise<
  Held & {
    rooms: string[];
    maps: ReturnType<typeof mapKinds>;
    tables: boolean[];
    roomSets: [string, number][];
    onces: number[];
  }
> {
  const http = createServer();
  const server = new Server(http, { parser: msgpackParser, serveClient: false });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const socket = io(`http://127.0.0.1:${port}`, { parser: msgpackParser, transports: ['websocket'], forceNew: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    const [client] = engineClients(server);
    if (!client) throw new Error('the plain server has no connection');
    return {
      ...held(client),
      rooms: roomsOf(server, client),
      maps: mapKinds(socketOf(server, client)),
      tables: compactTables(server, client),
      roomSets: roomSets(server, client),
      onces: onceWrappers(client),
    };
  } finally {
    socket.disconnect();
    await server.close();
  }
}

describe('an idle connection', () => {
  it('keeps neither the upgrade request, nor the access token, nor the handshake’s listeners, nor a room of its id', async () => {
    const plain = await plainConnection();
    expect(plain.request).not.toBeNull();
    expect(plain.closeListeners).toBeGreaterThan(0);
    expect(plain.headersListeners).toBeGreaterThan(0);
    expect(plain.errorListeners).toBeGreaterThan(1);
    expect(plain.rooms).toEqual(['its own id']);
    const device = await connectDevice(t.url, alice.accessToken);
    const clients = engineClients();
    expect(clients.length).toBeGreaterThan(0);
    for (const client of clients) {
      expect(held(client)).toEqual({
        request: null,
        closeListeners: plain.closeListeners - 1,
        headersListeners: 0,
        // the transport's own, which handles a WebSocket error: engine.io's no-op is gone
        errorListeners: plain.errorListeners - 1,
      });
      expect(roomsOf(t.relay.io as unknown as Server, client).sort()).toEqual(['family', 'user']);
      expect(compactTables(relayServer(), client)).toEqual([true, true, true, true]);
      // its two rooms, each with its one device
      expect(roomSets(relayServer(), client)).toEqual([
        ['SmallSet', 2],
        ['SmallSet', 1],
        ['SmallSet', 1],
      ]);
    }
    expect(plain.tables).toEqual([false, false, false, false]);
    // the room of its own id
    expect(plain.roomSets).toEqual([
      ['Set', 1],
      ['Set', 1],
    ]);
    const sockets = [...t.relay.io.sockets.sockets.values()];
    for (const socket of sockets) expect(JSON.stringify(socket.handshake)).not.toContain(alice.accessToken);
    device.close();
  });

  it('holds its namespace and the acks it awaits in SmallMaps where Socket.IO holds Maps, and settles many pushes at once', async () => {
    const plain = await plainConnection();
    expect(plain.maps).toEqual({ acks: ['Map', 0], sockets: ['Map', 1], nsps: ['Map', 1] });
    // an account of its own: what it leaves unsettled is no other test's
    const carol = await signUp(t.url);
    const recipient = await connectDevice(t.url, carol.accessToken, { autoAck: false });
    const sender = await connectDevice(t.url, alice.accessToken);
    try {
      const [client] = engineClients().filter((c) => socketOf(relayServer(), c).data.deviceId === carol.deviceId);
      if (!client) throw new Error('no relay connection of the recipient');
      const socket = socketOf(relayServer(), client);
      expect(mapKinds(socket)).toEqual({ acks: ['SmallMap', 0], sockets: ['SmallMap', 1], nsps: ['SmallMap', 1] });
      // pushes the recipient does not acknowledge yet: the acks the relay awaits grow past one entry
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const id = messageId();
        ids.push(id);
        expect(await sender.send({ id, envelopes: [{ to: carol.deviceId, body: randomBytes(16) }] })).toMatchObject({
          ok: true,
        });
        await waitFor(() => recipient.pendingAcks.length > i, 5000, `push ${i + 1}`);
      }
      expect(mapsOf(socket).acks.size).toBe(3);
      for (const ack of recipient.pendingAcks.splice(0)) ack();
      await waitFor(() => mapsOf(socket).acks.size === 0, 5000, 'the acks settled');
      expect(mapKinds(socket).acks).toEqual(['SmallMap', 0]);
      expect(recipient.messages.map((m) => m.id)).toEqual(ids);
    } finally {
      sender.close();
      recipient.close();
    }
  });

  it('ignores acks a hostile client sends for ids it was never pushed, and settles real ones out of order and twice', async () => {
    const dave = await signUp(t.url);
    const recipient = await connectDevice(t.url, dave.accessToken, { autoAck: false });
    const sender = await connectDevice(t.url, alice.accessToken);
    const push = async (count: number): Promise<void> => {
      const id = messageId();
      await sender.send({ id, envelopes: [{ to: dave.deviceId, body: randomBytes(16) }] });
      await waitFor(() => recipient.pendingAcks.length === count, 5000, `push ${count}`);
    };
    // an ACK packet as any client can write it, for any id
    const rawAck = (id: number): void =>
      (recipient.socket as unknown as { packet(packet: object): void }).packet({ type: 3, id, data: [] });
    // a reply on the same connection: the relay has handled every packet sent before the request
    const roundTrip = (): Promise<unknown> => recipient.watch([]).catch((err: unknown) => err);
    try {
      const [client] = engineClients().filter((c) => socketOf(relayServer(), c).data.deviceId === dave.deviceId);
      if (!client) throw new Error('no relay connection of the recipient');
      const socket = socketOf(relayServer(), client);
      for (let i = 1; i <= 3; i++) await push(i);
      const ids = [...mapsOf(socket).acks.keys()];
      expect(ids).toHaveLength(3);
      for (const id of [Math.max(...ids) + 1, Math.max(...ids) + 1000]) rawAck(id);
      await roundTrip();
      expect([...mapsOf(socket).acks.keys()]).toEqual(ids);
      // nothing settled: a settled push is one the relay deletes from the mailbox as delivered
      expect(unsettledPushes(socket)).toBe(3);
      for (const id of [...ids].reverse()) {
        rawAck(id);
        rawAck(id);
      }
      await roundTrip();
      expect(mapsOf(socket).acks.size).toBe(0);
      expect(unsettledPushes(socket)).toBe(0);
      // the client's own acks of the same pushes now find nothing; the connection lives on and is pushed again
      for (const ack of recipient.pendingAcks.splice(0)) ack();
      await push(1);
      expect(mapsOf(socket).acks.size).toBe(1);
      recipient.pendingAcks.splice(0)[0]!();
      await waitFor(() => mapsOf(socket).acks.size === 0, 5000, 'the last ack settled');
      expect(recipient.socket.connected).toBe(true);
    } finally {
      sender.close();
      recipient.close();
    }
  });

  it('holds none of the four `once` wrappers engine.io sets, and is still cleaned up however it ends', async () => {
    const plain = await plainConnection();
    // engine.io's: its server's `close` on the socket; the socket's `close` and `error` on its transport; the
    // transport's `close` on its WebSocket
    expect(plain.onces).toEqual([1, 2, 1]);
    const engine = relayServer().engine as unknown as { clientsCount: number };
    const before = { engine: engine.clientsCount, sockets: relayServer().of('/').sockets.size };
    /** The client's own WebSocket (socket.io-client on `ws`) and its TCP socket. */
    const clientWs = (device: TestDevice) =>
      (device.socket.io.engine.transport as unknown as { ws: { _socket: { write(b: Buffer): void; destroy(): void } } })
        .ws;
    const ends: [string, (device: TestDevice) => void, string][] = [
      ['a Socket.IO disconnect', (device) => device.close(), 'transport close'],
      ['a TCP socket gone without a close frame', (device) => clientWs(device)._socket.destroy(), 'transport close'],
      // a client's frame must be masked: `ws` fails the connection with an error on the transport
      ['an unmasked frame', (device) => clientWs(device)._socket.write(Buffer.from([0x81, 0x00])), 'transport error'],
    ];
    for (const [how, end, reason] of ends) {
      const device = await connectDevice(t.url, alice.accessToken);
      const mine = engineClients().find((c) => socketOf(relayServer(), c).id === device.socket.id);
      if (!mine) throw new Error(`no relay connection to end by ${how}`);
      expect(onceWrappers(mine), how).toEqual([0, 0, 0]);
      const closed = new Promise<unknown>((resolve) => (mine as unknown as NodeJS.EventEmitter).on('close', resolve));
      end(device);
      expect(await closed, how).toBe(reason);
      await waitFor(
        () => engine.clientsCount === before.engine && relayServer().of('/').sockets.size === before.sockets,
        5000,
        `the relay to forget the connection ended by ${how}`,
      );
      // the engine.io socket's own listeners left its transport when it closed; the `error` listener that stays is
      // the no-op engine.io then adds, to silence a discarded transport's later errors
      expect([mine.transport.listenerCount('close'), mine.transport.listenerCount('error')], how).toEqual([0, 1]);
      device.close();
    }
    // and the relay serves on
    const recipient = await connectDevice(t.url, bob.accessToken);
    const sender = await connectDevice(t.url, alice.accessToken);
    try {
      const id = messageId();
      expect(await sender.send({ id, envelopes: [{ to: bob.deviceId, body: randomBytes(16) }] })).toMatchObject({
        ok: true,
      });
      expect((await recipient.waitForMessages(1)).map((m) => m.id)).toEqual([id]);
    } finally {
      sender.close();
      recipient.close();
    }
  });

  it('works when it starts on long-polling and upgrades to a WebSocket', async () => {
    const recipient = await connectDevice(t.url, bob.accessToken);
    const socket = io(t.url, { parser: msgpackParser, auth: { token: alice.accessToken }, forceNew: true });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      await waitFor(() => socket.io.engine.transport.name === 'websocket', 5000, 'the upgrade');
      await waitFor(
        () => engineClients().every((c) => c.transport.name === 'websocket'),
        5000,
        'the upgrade on the relay',
      );
      const plain = await plainConnection();
      for (const client of engineClients()) {
        expect(client.request).toBeNull();
        expect(held(client).closeListeners).toBe(plain.closeListeners - 1);
        expect(compactTables(relayServer(), client)).toEqual([true, true, true, true]);
        expect(onceWrappers(client)).toEqual([0, 0, 0]);
      }
      const id = messageId();
      const ack: unknown = await socket
        .timeout(5000)
        .emitWithAck('message:send', { id, envelopes: [{ to: bob.deviceId, body: randomBytes(16) }] });
      expect(ack).toMatchObject({ ok: true });
      expect((await recipient.waitForMessages(1)).map((m) => m.id)).toEqual([id]);
    } finally {
      socket.disconnect();
      recipient.close();
    }
  });
});

describe('the relay’s packet decoder', () => {
  const event = (name: string, payload: unknown): Buffer =>
    msgpack.encode({ type: msgpackParser.PacketType.EVENT, nsp: '/', data: [name, payload], id: 1 });

  it('is what Socket.IO decodes each connection’s packets with, holding its one listener until the connection ends', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    const socket = [...t.relay.io.sockets.sockets.values()].at(-1);
    const client = (socket as unknown as { client: { decoder: unknown; ondecoded: unknown } }).client;
    expect(client.decoder).toBeInstanceOf(SafeDecoder);
    expect((client.decoder as { listener: unknown }).listener).toBe(client.ondecoded);
    device.close();
    await waitFor(() => (client.decoder as { listener: unknown }).listener === null, 5000, 'the listener to go');
  });

  it('hands each packet to its listener, refuses a second listener or another event, and stops once removed', () => {
    const decoder = new SafeDecoder();
    const got: unknown[] = [];
    const listener = (packet: unknown): void => void got.push(packet);
    decoder.on('decoded', listener);
    expect(() => decoder.on('decoded', () => undefined)).toThrow();
    expect(() => new SafeDecoder().on('error', () => undefined)).toThrow();
    decoder.add(event('message:send', { id: 'a' }));
    expect(got).toEqual([
      { type: msgpackParser.PacketType.EVENT, nsp: '/', data: ['message:send', { id: 'a' }], id: 1 },
    ]);
    expect(() => decoder.add(event('disconnect', {}))).toThrow('invalid payload');
    expect(() => decoder.add(msgpack.encode({ type: 9, nsp: '/', data: [] }))).toThrow('invalid packet type');
    decoder.removeListener('decoded', listener);
    decoder.add(event('message:send', { id: 'b' }));
    expect(got).toHaveLength(1);
  });
});
