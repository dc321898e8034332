// The baseline: a bare Socket.IO relay with no auth and no storage, as in the Socket.IO tutorials.
// A socket joins a room named by the device id from its handshake; `message:send` is pushed at once to each
// recipient's sockets and acked. The recipient is asked for an ack, as the WeConnect relay asks, so both servers
// handle the same four packets per delivery. Group sends take the relay's payload (`{id, group, body}`): the member
// devices come from an in-memory map filled once by `group:create` (the bench's stand-in for POST /api/groups), and
// every member device but the sender's gets one push. Started with `--parser default` (Socket.IO's own) or
// `--parser msgpack`.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { hostServer } from './host.js';

interface Envelope {
  to: string;
  body: Uint8Array;
}

type SendPayload = { id: string; envelopes: Envelope[] } | { id: string; group: string; body: Uint8Array };

type SendAck = (answer: { ok: true; ts: number } | { ok: false; error: { code: string; message: string } }) => void;

const parserName = process.argv[process.argv.indexOf('--parser') + 1] === 'msgpack' ? 'msgpack' : 'default';

await hostServer(async () => {
  const httpServer = createServer();
  const io = new Server(httpServer, {
    serveClient: false,
    transports: ['websocket'],
    ...(parserName === 'msgpack' ? { parser: msgpackParser } : {}),
  });
  let seq = 0;
  const groups = new Map<string, string[]>();
  io.on('connection', (socket) => {
    const deviceId = (socket.handshake.auth as { deviceId?: unknown }).deviceId;
    if (typeof deviceId !== 'string') {
      socket.disconnect(true);
      return;
    }
    void socket.join(deviceId);
    const push = (to: string, entry: { id: string; seq: number; ts: number; body: Uint8Array; group?: string }) => {
      const room = io.sockets.adapter.rooms.get(to);
      if (room === undefined) return;
      for (const socketId of room) io.sockets.sockets.get(socketId)?.emit('messages', [entry], () => {});
    };
    socket.on('group:create', (payload: { group: string; members: string[] }, ack: (answer: unknown) => void) => {
      groups.set(payload.group, payload.members);
      if (typeof ack === 'function') ack({ ok: true });
    });
    socket.on('message:send', (payload: SendPayload, ack: SendAck) => {
      const ts = Date.now();
      if ('group' in payload) {
        for (const to of groups.get(payload.group) ?? []) {
          if (to !== deviceId) push(to, { id: payload.id, seq: ++seq, ts, body: payload.body, group: payload.group });
        }
      } else {
        for (const envelope of payload.envelopes)
          push(envelope.to, { id: payload.id, seq: ++seq, ts, body: envelope.body });
      }
      if (typeof ack === 'function') ack({ ok: true, ts });
    });
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    port: (httpServer.address() as AddressInfo).port,
    close: async () => {
      await io.close();
    },
  };
});
