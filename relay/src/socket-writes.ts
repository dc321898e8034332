// One write per connection per turn of the event loop. engine.io's WebSocket transport hands each flush to `ws`, and
// `ws` writes each frame with a syscall of its own; meanwhile the transport stops taking packets until that write's
// callback, a tick later, so the next packet (the second ack of a sender with two sends in one commit, say) is a
// second flush and a second syscall. On loopback and on small machines a `writev` costs about as much as the rest of
// a delivery's socket work. Here the connection's TCP socket is corked at its first frame in a turn and uncorked once
// the turn's callbacks and promise continuations have run (one process.nextTick for all connections), and the
// transport keeps taking packets meanwhile: every frame of the turn leaves in one `writev`, in the order sent.
// Nothing else changes: the frames are the same bytes, and what waits for the uncork is in the TCP socket's buffer,
// which `ws`'s bufferedAmount (the relay's write-buffer bound, socket-link.ts) counts.

/** engine.io's WebSocket transport, as far as this file uses it. */
interface WsTransport {
  writable: boolean;
  send(packets: unknown[]): void;
  /** The `ws` WebSocket, and its TCP socket. */
  socket?: { _socket?: Corkable | null };
}

interface Corkable {
  cork(): void;
  uncork(): void;
  destroy(err?: Error): void;
}

/** The transport classes whose `send` is wrapped (one, engine.io's WebSocket; wrapped once). */
const wrapped = new WeakSet<object>();
/** TCP sockets corked in this turn. */
const corked = new Set<Corkable>();

/**
 * Runs once per turn in which something was written. A socket whose uncork threw (Node's streams do not; this is the
 * guard) is destroyed, and the others are still uncorked: a socket left corked would never write again, and the set
 * left non-empty would keep every later socket corked too.
 */
function uncorkAll(): void {
  const sockets = [...corked];
  corked.clear();
  for (const tcp of sockets) {
    try {
      tcp.uncork();
    } catch (err) {
      tcp.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

/**
 * Makes every WebSocket transport of this transport's class write each turn's frames at once. Wraps the class's
 * `send` on the first call (the class is not exported under a stable path, so it is found from a live transport).
 */
export function coalesceWrites(transport: object): void {
  const proto = Object.getPrototypeOf(transport) as WsTransport;
  if (wrapped.has(proto) || typeof proto.send !== 'function') return;
  wrapped.add(proto);
  const send = proto.send;
  proto.send = function coalescedSend(this: WsTransport, packets: unknown[]): void {
    const tcp = this.socket?._socket;
    if (!tcp) {
      send.call(this, packets);
      return;
    }
    if (!corked.has(tcp)) {
      if (corked.size === 0) process.nextTick(uncorkAll);
      tcp.cork();
      corked.add(tcp);
    }
    send.call(this, packets);
    // engine.io would wait for the write's callback; the frame is in the corked socket's buffer, in order, so the
    // next packet may follow it there. The callback still comes after the uncork: it sets this again, and engine.io
    // then runs the flush's send callbacks and flushes its (now empty) buffer, as before.
    this.writable = true;
  };
}
