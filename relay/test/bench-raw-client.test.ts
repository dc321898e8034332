// The bench's raw Socket.IO client (bench/raw-socketio.ts: Engine.IO v4 and Socket.IO frames written directly on
// `ws` with the server's own parser) against the real relay and a plain Socket.IO server: a send through it is acked
// and delivered exactly as through socket.io-client, connect errors come back the same, pings are answered, and the
// bench's closed loop over it loses and duplicates nothing.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRawSocketIo, emitWithAck } from '../bench/raw-socketio.js';
import type { EventSocket } from '../bench/raw-socketio.js';
import { SocketIoTransport, connectSocketIo } from '../bench/transports.js';
import { LoadDriver } from '../bench/workloads.js';
import { messageId, signUp, startRelay, uniqueUsername, waitFor } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

interface Delivered {
  id: string;
  body: Uint8Array;
  [field: string]: unknown;
}

/** A connected device (either client) that records every `messages` batch and acks it at once. */
async function device(
  kind: 'raw' | 'socketio',
  url: string,
  token: string,
): Promise<{ socket: EventSocket; received: Delivered[] }> {
  const received: Delivered[] = [];
  const listen = (socket: EventSocket): void => {
    socket.on('messages', (...args: unknown[]) => {
      const [batch, ack] = args as [Delivered[], () => void];
      received.push(...batch);
      ack();
    });
  };
  const socket =
    kind === 'raw'
      ? await connectRawSocketIo(url, { token }, 'msgpack', listen)
      : await connectSocketIo(url, { token }, 'msgpack', listen);
  return { socket, received };
}

describe('the bench raw Socket.IO client against the WeConnect relay', () => {
  let relay: TestRelay;
  let alice: TestAccount;
  let bob: TestAccount;
  const open: EventSocket[] = [];

  beforeAll(async () => {
    // The bench's raised send limits: its closed loop sends as fast as the relay acks.
    relay = await startRelay({ SEND_RATE_BURST: '1000000', SEND_RATE_PER_SEC: '1000000' });
    alice = await signUp(relay.url, uniqueUsername('alice'), { oneTimePrekeys: 0 });
    bob = await signUp(relay.url, uniqueUsername('bob'), { oneTimePrekeys: 0 });
  });
  afterAll(async () => {
    for (const socket of open) socket.close();
    await relay.close();
  });

  it('acks and delivers a send exactly as socket.io-client does', async () => {
    const answers: Record<string, unknown>[] = [];
    const deliveries: Delivered[] = [];
    for (const kind of ['socketio', 'raw'] as const) {
      const sender = await device(kind, relay.url, alice.accessToken);
      const recipient = await device(kind, relay.url, bob.accessToken);
      open.push(sender.socket, recipient.socket);
      const id = messageId();
      const body = Buffer.from(`hello through ${kind}`);
      const answer = (await emitWithAck(
        sender.socket,
        'message:send',
        { id, envelopes: [{ to: bob.deviceId, body }] },
        10_000,
      )) as Record<string, unknown>;
      await waitFor(() => recipient.received.some((m) => m.id === id), 5000, `the ${kind} delivery`);
      const delivered = recipient.received.find((m) => m.id === id) as Delivered;
      expect(Buffer.from(delivered.body).toString()).toBe(`hello through ${kind}`);
      answers.push(answer);
      deliveries.push(delivered);
      sender.socket.close();
      recipient.socket.close();
    }
    const [viaClient, viaRaw] = answers as [Record<string, unknown>, Record<string, unknown>];
    expect(viaClient.ok).toBe(true);
    expect(viaRaw.ok).toBe(true);
    expect(Object.keys(viaRaw).sort()).toEqual(Object.keys(viaClient).sort());
    const [clientDelivery, rawDelivery] = deliveries as [Delivered, Delivered];
    expect(Object.keys(rawDelivery).sort()).toEqual(Object.keys(clientDelivery).sort());
    expect(rawDelivery.from).toBe(clientDelivery.from);
    expect(rawDelivery.body).toBeInstanceOf(Uint8Array);
  });

  it('receives a message stored while the device was offline, pushed right after the handshake', async () => {
    const sender = await device('raw', relay.url, alice.accessToken);
    open.push(sender.socket);
    const id = messageId();
    const answer = (await emitWithAck(
      sender.socket,
      'message:send',
      { id, envelopes: [{ to: bob.deviceId, body: Buffer.from('kept') }] },
      10_000,
    )) as { ok: boolean };
    expect(answer.ok).toBe(true);
    const recipient = await device('raw', relay.url, bob.accessToken);
    open.push(recipient.socket);
    await waitFor(() => recipient.received.some((m) => m.id === id), 5000, 'the stored message');
  });

  it('is refused with the same connect error as socket.io-client for a bad token', async () => {
    const viaClient = await connectSocketIo(relay.url, { token: 'not-a-token' }, 'msgpack').then(
      () => 'connected',
      (error: Error) => error.message,
    );
    const viaRaw = await connectRawSocketIo(relay.url, { token: 'not-a-token' }, 'msgpack').then(
      () => 'connected',
      (error: Error) => error.message,
    );
    expect(viaClient).not.toBe('connected');
    expect(viaRaw).toBe(viaClient);
  });

  it("carries the bench's closed loop with nothing lost, duplicated or stray", async () => {
    const pairs = 4;
    const recipients = await Promise.all(
      Array.from({ length: pairs }, () => signUp(relay.url, uniqueUsername('br'), { oneTimePrekeys: 0 })),
    );
    const sockets: EventSocket[] = [];
    const wireIds: string[] = [];
    for (let p = 0; p < pairs; p++) {
      const recipient = recipients[p] as TestAccount;
      sockets.push(await connectRawSocketIo(relay.url, { token: alice.accessToken }, 'msgpack'));
      sockets.push(await connectRawSocketIo(relay.url, { token: recipient.accessToken }, 'msgpack'));
      wireIds.push(alice.deviceId, recipient.deviceId);
    }
    open.push(...sockets);
    const driver = new LoadDriver(new SocketIoTransport(sockets, wireIds, new Map()), pairs, 300, pairs * 2);
    const hooks = { onWindowStart: () => undefined, onWindowEnd: () => undefined };
    const result = await driver.run(
      { kind: 'closed', inFlight: 2, warmupMs: 100, durationMs: 400, drainMs: 5000 },
      hooks,
    );
    expect(result.delivered).toBeGreaterThan(0);
    expect({
      lost: result.lost,
      duplicates: result.duplicates,
      strays: result.strays,
      rejected: result.rejected,
    }).toEqual({ lost: 0, duplicates: 0, strays: 0, rejected: 0 });
  });
});

describe('the bench raw Socket.IO client against a Socket.IO server with the default parser', () => {
  let io_: Server;
  let url: string;
  let heartbeats = 0;

  beforeAll(async () => {
    const httpServer = createServer();
    // Pings every 50 ms, 50 ms to answer: a client that does not answer is dropped within 100 ms.
    io_ = new Server(httpServer, { transports: ['websocket'], pingInterval: 50, pingTimeout: 50 });
    io_.engine.on('connection', (raw: { on(event: string, listener: () => void): void }) =>
      raw.on('heartbeat', () => heartbeats++),
    );
    io_.on('connection', (socket) => {
      socket.on('echo', (payload: unknown, ack: (answer: unknown) => void) => ack(payload));
      socket.on('push-me', (payload: unknown) => {
        socket.emit('pushed', payload, (answer: unknown) => socket.emit('push-acked', answer));
      });
    });
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await io_.close();
  });

  it('sends and receives binary attachments, and acks the server events it is asked to', async () => {
    const socket = await connectRawSocketIo(url, {}, 'default');
    const bodies = [Buffer.from([1, 2, 3]), Buffer.from([4, 5])];
    const echoed = (await emitWithAck(socket, 'echo', { bodies, text: 'x' }, 5000)) as {
      bodies: Buffer[];
      text: string;
    };
    expect(echoed.text).toBe('x');
    expect(echoed.bodies.map((b) => [...b])).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    const acked: unknown[] = [];
    socket.on('pushed', (...args: unknown[]) => (args.at(-1) as (answer: unknown) => void)('thanks'));
    socket.on('push-acked', (answer: unknown) => acked.push(answer));
    socket.emit('push-me', { n: 1 });
    await waitFor(() => acked.length === 1, 5000, 'the ack of the pushed event');
    expect(acked).toEqual(['thanks']);
    socket.close();
  });

  it('answers the server pings so the connection stays open', async () => {
    const disconnected: string[] = [];
    io_.once('connection', (s) => s.on('disconnect', (reason) => disconnected.push(reason)));
    const raw = await connectRawSocketIo(url, {}, 'default');
    const start = heartbeats;
    // Six ping rounds of 50 ms each: a client that did not answer would have been dropped after the first.
    await waitFor(() => heartbeats >= start + 6, 5000, 'six answered pings');
    expect(disconnected).toEqual([]);
    expect((await emitWithAck(raw, 'echo', 'still here', 5000)) as string).toBe('still here');
    raw.close();
  });
});
