// The msgpack Socket.IO parser of the protocol, hardened on the receiving side: an event whose name is not a
// string, or is one of the names Socket.IO and EventEmitter reserve ("disconnect", "error", ...), is rejected as
// the default parser does, so no client can impersonate internal events (an unhandled "error" would crash Node);
// so is a payload with a "__proto__" map key (see assertPlainData).
import * as msgpackParser from 'socket.io-msgpack-parser';

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

class SafeDecoder extends msgpackParser.Decoder {
  override checkPacket(decoded: DecodedPacket): void {
    if (typeof decoded !== 'object' || decoded === null) throw new Error('invalid packet');
    super.checkPacket(decoded);
    if (decoded.type === msgpackParser.PacketType.EVENT) {
      const name: unknown = Array.isArray(decoded.data) ? decoded.data[0] : undefined;
      if (typeof name !== 'string' || RESERVED_EVENTS.has(name)) throw new Error('invalid payload');
      assertPlainData(decoded.data);
    }
  }
}

/** Pass as `parser` to the Socket.IO Server; clients use socket.io-msgpack-parser itself. */
export const relayParser = {
  protocol: msgpackParser.protocol,
  PacketType: msgpackParser.PacketType,
  Encoder: msgpackParser.Encoder,
  Decoder: SafeDecoder,
};
