// Backpressure on `messages` pushes: a device that stops reading its socket (its TCP socket paused, while it keeps
// sending blind pongs) cannot make the relay buffer without bound. Measured inside the relay process, on the
// connection's own TCP socket and Engine.IO write buffer: what the relay pushed or queued for it stays within a fixed
// bound, the connection is dropped, and every message arrives once the device connects again.
import { randomBytes } from 'node:crypto';
import type { Socket as NetSocket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectDevice, messageId, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

const BODY_BYTES = 64 * 1024;

let t: TestRelay | undefined;
const devices: TestDevice[] = [];
const stalls: { stop(): void }[] = [];
afterEach(async () => {
  for (const s of stalls.splice(0)) s.stop();
  for (const d of devices.splice(0)) d.close();
  await t?.close();
  t = undefined;
});

interface ClientWs {
  _socket: NetSocket;
  send(data: string): void;
}

/**
 * A device that reads nothing from the moment it is connected: its TCP socket is paused, and it answers Engine.IO
 * heartbeats blindly (a pong, "3", every 100 ms, without reading the pings).
 */
async function stalledDevice(url: string, token: string): Promise<{ device: TestDevice; stop(): void }> {
  const device = await connectDevice(url, token);
  devices.push(device);
  const ws = (device.socket.io.engine.transport as unknown as { ws: ClientWs }).ws;
  ws._socket.pause();
  const pongs = setInterval(() => ws.send('3'), 100);
  const stall = {
    device,
    stop() {
      clearInterval(pongs);
      ws._socket.destroy();
    },
  };
  stalls.push(stall);
  return stall;
}

interface RelayConn {
  writeBuffer: { data?: unknown }[];
  transport: { socket?: { bufferedAmount: number; _socket?: NetSocket } };
}

/** The relay's Engine.IO connection of a device, or undefined once it is gone. */
function relayConnOf(relay: TestRelay, deviceId: string): RelayConn | undefined {
  for (const socket of relay.relay.io.sockets.sockets.values()) {
    if (socket.data.deviceId === deviceId) return socket.conn as unknown as RelayConn;
  }
  return undefined;
}

/** Bytes the relay holds for this connection in its process: Engine.IO's write buffer and the WebSocket's. */
function heldBytes(conn: RelayConn): number {
  let bytes = conn.transport.socket?.bufferedAmount ?? 0;
  for (const p of conn.writeBuffer) {
    if (typeof p.data === 'string') bytes += p.data.length;
    else if (ArrayBuffer.isView(p.data)) bytes += p.data.byteLength;
  }
  return bytes;
}

/**
 * Waits until the relay delivers live to the device (it read the empty mailbox after its connect). A send that lands
 * before would be read from the mailbox instead, as a stored batch that the relay waits to be acknowledged before it
 * pushes anything else, and a stalled device never acknowledges it: the stream below would never reach the device.
 * With the SQLite writer worker the connect's own writes (last-seen) take long enough for the first send to land there.
 */
async function deliveringLive(relay: TestRelay, deviceId: string): Promise<void> {
  const live = (): boolean =>
    [...relay.relay.io.of('/').sockets.values()].some(
      (socket) =>
        socket.data.deviceId === deviceId && (socket.data.delivery as { live?: boolean } | null)?.live === true,
    );
  await waitFor(live, 5000, 'live delivery to the device');
}

/** Sends `count` 64 KiB messages to `to`, one at a time, until `stop()` holds; returns the ids sent. */
async function stream(from: TestDevice, to: string, count: number, stop: () => boolean): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count && !stop(); i++) {
    const id = messageId();
    const ack = await from.send({ id, envelopes: [{ to, body: randomBytes(BODY_BYTES) }] });
    expect(ack).toMatchObject({ ok: true });
    ids.push(id);
  }
  return ids;
}

/** The device connects again (a new connection with its token) and must receive exactly `ids`. */
async function reconnectAndReceive(relay: TestRelay, account: TestAccount, ids: string[]): Promise<void> {
  const again = await connectDevice(relay.url, account.accessToken);
  devices.push(again);
  await again.waitForMessages(ids.length, 15_000);
  expect(new Set(again.messages.map((m) => m.id))).toEqual(new Set(ids));
}

describe('a device that stops reading its socket', () => {
  it('is pushed at most the delivery window unacknowledged, is dropped at its ack timeout, and gets everything after reconnecting', async () => {
    const relay = (t = await startRelay({ DELIVERY_WINDOW_BYTES: String(512 * 1024) }, { ackTimeoutMs: 2000 }));
    const alice = await signUp(relay.url);
    const bob = await signUp(relay.url);
    const sender = await connectDevice(relay.url, alice.accessToken);
    devices.push(sender);
    const stalled = await stalledDevice(relay.url, bob.accessToken);
    await deliveringLive(relay, bob.deviceId);
    const conn = relayConnOf(relay, bob.deviceId);
    const tcp = conn?.transport.socket?._socket;
    if (!tcp) throw new Error('no relay-side TCP socket for the stalled device');
    const before = tcp.bytesWritten;

    // 48 messages of 64 KiB (3 MiB) within the send rate limit; the window is 512 KiB.
    const bound = 512 * 1024 + 2 * (BODY_BYTES + 1024);
    let pushed = 0;
    const ids = await stream(sender, bob.deviceId, 48, () => {
      pushed = Math.max(pushed, tcp.bytesWritten - before);
      return pushed > bound;
    });
    pushed = Math.max(pushed, tcp.bytesWritten - before);
    expect(pushed, 'bytes the relay wrote or queued to the stalled device').toBeLessThanOrEqual(bound);
    expect(ids).toHaveLength(48);

    await waitFor(() => relayConnOf(relay, bob.deviceId) === undefined, 8000, 'the relay to drop the stalled device');
    stalled.stop();
    await reconnectAndReceive(relay, bob, ids);
  });

  it('has at most its buffer limit queued in the relay, is dropped when it stays above it, and gets everything after reconnecting', async () => {
    const limit = 256 * 1024;
    const relay = (t = await startRelay({
      // No delivery window to speak of, so only the buffer limit bounds what is queued.
      DELIVERY_WINDOW_BYTES: String(256 * 1024 * 1024),
      SOCKET_BUFFER_LIMIT: String(limit),
      SOCKET_BUFFER_GRACE_MS: '300',
      SEND_RATE_BURST: '600',
    }));
    const alice = await signUp(relay.url);
    const bob = await signUp(relay.url);
    const sender = await connectDevice(relay.url, alice.accessToken);
    devices.push(sender);
    const stalled = await stalledDevice(relay.url, bob.accessToken);
    await deliveringLive(relay, bob.deviceId);
    const conn = relayConnOf(relay, bob.deviceId);
    if (!conn) throw new Error('no relay-side connection for the stalled device');

    // Up to 600 messages of 64 KiB (37.5 MiB): far more than the kernel's socket buffers absorb.
    const bound = limit + 2 * (BODY_BYTES + 1024);
    let held = 0;
    let dropped = false;
    const sampler = setInterval(() => (held = Math.max(held, heldBytes(conn))), 5);
    try {
      const ids = await stream(sender, bob.deviceId, 600, () => {
        held = Math.max(held, heldBytes(conn));
        dropped = relayConnOf(relay, bob.deviceId) === undefined;
        return dropped || held > bound;
      });
      expect(held, 'bytes queued in the relay for the stalled device').toBeLessThanOrEqual(bound);
      expect(dropped, 'the stalled device was dropped while messages streamed').toBe(true);
      stalled.stop();
      await reconnectAndReceive(relay, bob, ids);
    } finally {
      clearInterval(sampler);
    }
  });
});
