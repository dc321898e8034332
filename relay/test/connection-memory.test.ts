// What an idle connection keeps: no upgrade request (engine.io's and its WebSocketResponse's references are dropped),
// no token in its handshake; and a client that starts on long-polling and upgrades to a WebSocket still works.
// scripts/idle-memory.ts measures the memory itself.
import { randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, messageId, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

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
  transport: { name: string; socket?: { _socket?: NodeJS.EventEmitter } };
}

/** engine.io's connected sockets (not a public API: this test pins the internals the relay works around). */
function engineClients(): EngineClient[] {
  const engine = t.relay.io.engine as unknown as { clients: Record<string, EngineClient> };
  return Object.values(engine.clients);
}

const upgradeListener = (tcp: NodeJS.EventEmitter): boolean =>
  tcp.listeners('close').some((l) => l.toString() === '() => this.emit("close")');

describe('an idle connection', () => {
  it('keeps neither the upgrade request nor the access token', async () => {
    const device = await connectDevice(t.url, alice.accessToken);
    const clients = engineClients();
    expect(clients.length).toBeGreaterThan(0);
    for (const client of clients) {
      expect(client.request).toBeNull();
      const tcp = client.transport.socket?._socket;
      expect(tcp).toBeDefined();
      if (tcp) expect(upgradeListener(tcp)).toBe(false);
    }
    const sockets = [...t.relay.io.sockets.sockets.values()];
    for (const socket of sockets) expect(JSON.stringify(socket.handshake)).not.toContain(alice.accessToken);
    device.close();
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
      for (const client of engineClients()) {
        const tcp = client.transport.socket?._socket;
        if (tcp) expect(upgradeListener(tcp)).toBe(false);
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
