// The msgpack Socket.IO parser of the protocol, hardened on the receiving side: an event whose name is not a
// string, or is one of the names Socket.IO and EventEmitter reserve ("disconnect", "error", ...), is rejected as
// the default parser does, so no client can impersonate internal events (an unhandled "error" would crash Node);
// so is a payload with a "__proto__" map key (see assertPlainData).
import { createRequire } from 'node:module';
import * as msgpackParser from 'socket.io-msgpack-parser';

/**
 * notepack.io (the msgpack of socket.io-msgpack-parser) ships no types: loaded through require with the two functions
 * used here and by the cluster's wire format, so that every project that compiles this file (the web tests import the
 * relay) needs no declaration.
 */
export const msgpack = createRequire(import.meta.url)('notepack.io') as {
  encode(value: unknown): Buffer;
  decode(buffer: Uint8Array): unknown;
};

const RESERVED_EVENTS = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'error',
  'newListener',
  'removeListener',
]);

/**
 * msgpack decodes a map key "__proto__" by assignment, which sets the decoded object's prototype instead of adding a
 * field: the schemas would then read inherited fields. Every decoded object must be a plain one (or binary: a Buffer,
 * or an ArrayBuffer, which notepack's ext type 0 decodes to).
 */
export function assertPlainData(data: unknown): void {
  const stack: unknown[] = [data];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null) continue;
    if (value instanceof Uint8Array || value instanceof ArrayBuffer) continue; // msgpack bin, and ext type 0
    if (!Array.isArray(value) && Object.getPrototypeOf(value) !== Object.prototype) throw new Error('invalid payload');
    for (const item of Array.isArray(value) ? (value as unknown[]) : Object.values(value)) stack.push(item);
  }
}

interface DecodedPacket {
  type?: unknown;
  data?: unknown;
}

type DecodedListener = (packet: unknown) => void;

const checkPacket = (decoded: DecodedPacket): void => msgpackParser.Decoder.prototype.checkPacket.call(null, decoded);

/**
 * The server's decoder, one per connection. socket.io-msgpack-parser's own is a component-emitter: a table of listener
 * arrays per connection (about 200 bytes once Socket.IO's Client listens) and two arrays made per packet to emit it.
 * Socket.IO's Client attaches exactly one listener, for `decoded`, and removes it on close: this one holds that
 * listener in a field and calls it directly. Anything else asking to listen is refused loudly, not ignored.
 */
export class SafeDecoder {
  private listener: DecodedListener | null = null;

  on(event: string, listener: DecodedListener): this {
    if (event !== 'decoded' || this.listener !== null)
      throw new Error(`the relay's decoder takes one 'decoded' listener`);
    this.listener = listener;
    return this;
  }

  removeListener(event: string, listener: DecodedListener): this {
    if (event === 'decoded' && this.listener === listener) this.listener = null;
    return this;
  }

  /** Decodes one frame; throws on anything the protocol does not allow (Socket.IO then closes the connection). */
  add(frame: unknown): void {
    const decoded = msgpack.decode(frame as Uint8Array) as DecodedPacket;
    if (typeof decoded !== 'object' || decoded === null) throw new Error('invalid packet');
    checkPacket(decoded);
    if (decoded.type === msgpackParser.PacketType.EVENT) {
      const name: unknown = Array.isArray(decoded.data) ? decoded.data[0] : undefined;
      if (typeof name !== 'string' || RESERVED_EVENTS.has(name)) throw new Error('invalid payload');
      assertPlainData(decoded.data);
    }
    this.listener?.(decoded);
  }

  destroy(): void {
    this.listener = null;
  }
}

/** Pass as `parser` to the Socket.IO Server; clients use socket.io-msgpack-parser itself. */
export const relayParser = {
  protocol: msgpackParser.protocol,
  PacketType: msgpackParser.PacketType,
  Encoder: msgpackParser.Encoder,
  Decoder: SafeDecoder,
};
