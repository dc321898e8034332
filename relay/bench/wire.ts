// The raw `ws` relay's binary frames, shared by servers/ws.ts and the load generator's raw client (ws-transport.ts).
// One WebSocket binary message per frame: a kind byte, the 16-byte message id, then the kind's fields (big-endian).
// A device is named by a number in the connection URL (`/?device=<n>`); there is no authentication and no storage.
//
//   send        [1][id 16][recipient u32][body …]          sender → relay
//   send-ack    [2][id 16][status u8]                     relay → sender (0 = ok)
//   push        [3][id 16][body …]                        relay → recipient
//   push-ack    [4][id 16]                                recipient → relay
//   group-send  [5][id 16][count u16][recipient u32 × count][body …]   sender → relay; one push per listed recipient
//
// So a 1:1 delivery is the same four frames as with the Socket.IO relays (send, its ack, the push, the push ack).
// A group send lists its recipients in the frame (the relay keeps no group state), one push per recipient.

export const FRAME = { send: 1, sendAck: 2, push: 3, pushAck: 4, groupSend: 5 } as const;

export const ID_BYTES = 16;
/** Where a send's recipient and a group send's count start. */
export const AFTER_ID = 1 + ID_BYTES;
export const SEND_HEADER = AFTER_ID + 4;
export const PUSH_HEADER = AFTER_ID;

/** A `send` frame: the id is the raw 16 bytes. */
export function sendFrame(id: Uint8Array, recipient: number, body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(SEND_HEADER + body.length);
  frame[0] = FRAME.send;
  frame.set(id, 1);
  frame.writeUInt32BE(recipient, AFTER_ID);
  frame.set(body, SEND_HEADER);
  return frame;
}

/** A `group-send` frame listing every recipient. */
export function groupSendFrame(id: Uint8Array, recipients: readonly number[], body: Uint8Array): Buffer {
  const header = AFTER_ID + 2 + 4 * recipients.length;
  const frame = Buffer.allocUnsafe(header + body.length);
  frame[0] = FRAME.groupSend;
  frame.set(id, 1);
  frame.writeUInt16BE(recipients.length, AFTER_ID);
  recipients.forEach((r, i) => frame.writeUInt32BE(r, AFTER_ID + 2 + 4 * i));
  frame.set(body, header);
  return frame;
}

/** The 17-byte answer frames (`send-ack` adds a status byte). */
export function idFrame(kind: number, source: Buffer, extra?: number): Buffer {
  const frame = Buffer.allocUnsafe(extra === undefined ? AFTER_ID : AFTER_ID + 1);
  frame[0] = kind;
  source.copy(frame, 1, 1, AFTER_ID);
  if (extra !== undefined) frame[AFTER_ID] = extra;
  return frame;
}
