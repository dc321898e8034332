// The frames the relay sends one connection in one turn of the event loop leave in one write on its TCP socket
// (src/socket-writes.ts), in the order sent, and nothing waits past that turn. Counted inside the relay process, on
// the connection's own TCP socket.
import type { Socket as NetSocket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PresenceUpdate } from '../src/protocol.js';
import { coalesceWrites } from '../src/socket-writes.js';
import { connectDevice, signUp, startRelay, waitFor } from './helpers.js';
import type { TestDevice, TestRelay } from './helpers.js';

let t: TestRelay | undefined;
const devices: TestDevice[] = [];
afterEach(async () => {
  for (const d of devices.splice(0)) d.close();
  await t?.close();
  t = undefined;
});

type WritableInternals = NetSocket & {
  _write(chunk: unknown, encoding: unknown, cb: unknown): void;
  _writev(chunks: unknown[], cb: unknown): void;
};

/** The relay's socket of a device, and a count of the writes its TCP socket makes (a write or a writev each). */
function relaySideOf(relay: TestRelay, deviceId: string) {
  const socket = [...relay.relay.io.sockets.sockets.values()].find((s) => s.data.deviceId === deviceId);
  if (!socket) throw new Error('no relay socket for the device');
  const conn = socket.conn as unknown as { transport: { name: string; socket: { _socket: WritableInternals } } };
  expect(conn.transport.name).toBe('websocket');
  const tcp = conn.transport.socket._socket;
  const counter = { writes: 0 };
  const write = tcp._write.bind(tcp);
  const writev = tcp._writev.bind(tcp);
  tcp._write = (chunk, encoding, cb) => {
    counter.writes++;
    write(chunk, encoding, cb);
  };
  tcp._writev = (chunks, cb) => {
    counter.writes++;
    writev(chunks, cb);
  };
  return { socket, tcp, counter };
}

/** Resolves in the check phase of the event loop: after this turn's callbacks, ticks and promise continuations. */
const turnEnded = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const update = (n: number): PresenceUpdate => ({ userId: `u${n}`, online: n % 2 === 0, lastSeen: n });

describe('writes to a connection', () => {
  it('sends the frames of one turn of the event loop in one write, in order, and the next turn in a write of its own', async () => {
    t = await startRelay();
    const account = await signUp(t.url);
    const device = await connectDevice(t.url, account.accessToken);
    devices.push(device);
    const { socket, tcp, counter } = relaySideOf(t, account.deviceId);

    // Three frames in one synchronous stretch: engine.io alone would write the first at once, hold the other two
    // until that write's callback and then write each with a syscall of its own (three writes).
    for (const n of [1, 2, 3]) socket.emit('presence', update(n));
    expect(tcp.writableLength).toBeGreaterThan(0); // held for the rest of the turn
    await turnEnded();
    expect(tcp.writableLength).toBe(0); // and handed to the kernel before the next one
    await waitFor(() => device.presence.length === 3, 5000, 'three presence updates');
    expect(device.presence).toEqual([update(1), update(2), update(3)]);
    expect(counter.writes).toBe(1);

    // A frame of a later turn is not held for more: it goes out in that turn, in a write of its own.
    socket.emit('presence', update(4));
    await turnEnded();
    expect(tcp.writableLength).toBe(0);
    await waitFor(() => device.presence.length === 4, 5000, 'a fourth presence update');
    expect(device.presence[3]).toEqual(update(4));
    expect(counter.writes).toBe(2);
  });

  it('destroys a socket whose uncork throws, and still uncorks the others then and in later turns', async () => {
    /** A TCP socket as the wrapper sees it; `uncork` throws when told to. */
    class FakeTcp {
      corks = 0;
      destroyed: Error | undefined;
      constructor(private readonly throws: boolean) {}
      cork(): void {
        this.corks++;
      }
      uncork(): void {
        this.corks--;
        if (this.throws) throw new Error('uncork failed');
      }
      destroy(err?: Error): void {
        this.destroyed = err;
      }
    }
    /** A transport class of its own, so the wrapper wraps this one (engine.io's is wrapped by the test above). */
    class FakeTransport {
      writable = true;
      sent: unknown[] = [];
      constructor(readonly socket: { _socket: FakeTcp }) {}
      send(packets: unknown[]): void {
        this.writable = false;
        this.sent.push(...packets);
      }
    }
    const bad = new FakeTcp(true);
    const good = new FakeTcp(false);
    const a = new FakeTransport({ _socket: bad });
    const b = new FakeTransport({ _socket: good });
    coalesceWrites(a);
    a.send(['a1']);
    b.send(['b1']);
    expect([bad.corks, good.corks]).toEqual([1, 1]);
    expect([a.writable, b.writable]).toEqual([true, true]);
    await turnEnded();
    expect(bad.destroyed?.message).toBe('uncork failed');
    expect(good.corks).toBe(0);

    b.send(['b2']);
    expect(good.corks).toBe(1);
    await turnEnded();
    expect(good.corks).toBe(0);
    expect(b.sent).toEqual(['b1', 'b2']);
  });
});
