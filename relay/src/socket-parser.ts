// The msgpack Socket.IO parser of the protocol, hardened on the receiving side: an event whose name is not a
// string, or is one of the names Socket.IO and EventEmitter reserve ("disconnect", "error", ...), is rejected as
// the default parser does, so no client can impersonate internal events (an unhandled "error" would crash Node).
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
