// The floor: a raw `ws` relay that forwards bytes (frames in ../wire.ts). No Socket.IO, no auth, no storage, no
// parsing beyond the fixed header: a send is pushed to the recipient's socket with the body copied behind a push
// header, then acked to the sender; the recipient's push ack is read and dropped. One socket per device number
// (the latest connection of a number wins). Compression off, as Socket.IO's default.
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { AFTER_ID, FRAME, PUSH_HEADER, SEND_HEADER, idFrame } from '../wire.js';
import { hostServer } from './host.js';

await hostServer(async () => {
  const server = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload: 256 * 1024,
    clientTracking: true,
  });
  const devices = new Map<number, WebSocket>();

  const push = (recipient: number, frame: Buffer, bodyAt: number): void => {
    const target = devices.get(recipient);
    if (target === undefined) return;
    const out = Buffer.allocUnsafe(PUSH_HEADER + frame.length - bodyAt);
    out[0] = FRAME.push;
    frame.copy(out, 1, 1, AFTER_ID);
    frame.copy(out, PUSH_HEADER, bodyAt);
    target.send(out);
  };

  server.on('connection', (socket, request) => {
    const device = Number(new URL(request.url ?? '/', 'http://relay').searchParams.get('device'));
    if (!Number.isInteger(device) || device < 0) {
      socket.close(1008, 'device');
      return;
    }
    devices.set(device, socket);
    socket.on('close', () => {
      if (devices.get(device) === socket) devices.delete(device);
    });
    socket.on('message', (data: Buffer, isBinary) => {
      if (!isBinary || data.length < AFTER_ID) return;
      switch (data[0]) {
        case FRAME.send:
          if (data.length < SEND_HEADER) return;
          push(data.readUInt32BE(AFTER_ID), data, SEND_HEADER);
          socket.send(idFrame(FRAME.sendAck, data, 0));
          return;
        case FRAME.groupSend: {
          const count = data.readUInt16BE(AFTER_ID);
          const bodyAt = AFTER_ID + 2 + 4 * count;
          if (data.length < bodyAt) return;
          for (let i = 0; i < count; i++) push(data.readUInt32BE(AFTER_ID + 2 + 4 * i), data, bodyAt);
          socket.send(idFrame(FRAME.sendAck, data, 0));
          return;
        }
        default:
          return; // push-ack: nothing to do, as the bare relay drops its push acks
      }
    });
  });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
});
