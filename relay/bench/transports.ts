// The load generator's two client protocols behind workloads.ts's Transport: Socket.IO (the WeConnect relay and
// the bare relays: `message:send` with an ack, `messages` pushes acked at once) and raw ws (the frames of wire.ts).
// Socket.IO is spoken by either of two clients (`--client`): `raw` (raw-socketio.ts, the default: Engine.IO and
// Socket.IO frames written directly on `ws` with the server's own parser) or `socketio` (socket.io-client).
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { WebSocket } from 'ws';
import { connectRawSocketIo } from './raw-socketio.js';
import type { EventSocket } from './raw-socketio.js';
import { AFTER_ID, FRAME, groupSendFrame, idFrame, sendFrame } from './wire.js';
import type { Transport } from './workloads.js';

const CONNECT_TIMEOUT_MS = 20_000;

type OnAck = (ok: boolean) => void;

/**
 * Connects one Socket.IO client (websocket transport only, no reconnection); rejects with the connect_error.
 * `listen` attaches listeners before the connection opens: an event sent right after the handshake (the WeConnect
 * relay's mailbox) can arrive in the same read as the handshake answer and would be dropped without one.
 */
export function connectSocketIo(
  url: string,
  auth: Record<string, string>,
  parser: 'default' | 'msgpack',
  listen?: (socket: Socket) => void,
): Promise<Socket> {
  const socket = io(url, {
    ...(parser === 'msgpack' ? { parser: msgpackParser } : {}),
    auth,
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: CONNECT_TIMEOUT_MS,
  });
  listen?.(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (error: Error) => {
      socket.close();
      reject(new Error(`could not connect: ${error.message}`));
    });
  });
}

/** Which Socket.IO client the load generator uses (`--client`). */
export type SocketIoClient = 'raw' | 'socketio';

/** Connects one Socket.IO device with the chosen client; `listen` as for connectSocketIo. */
export function connectEventSocket(
  client: SocketIoClient,
  url: string,
  auth: Record<string, string>,
  parser: 'default' | 'msgpack',
  listen?: (socket: EventSocket) => void,
): Promise<EventSocket> {
  return client === 'raw' ? connectRawSocketIo(url, auth, parser, listen) : connectSocketIo(url, auth, parser, listen);
}

/** Connects one raw ws client as device number `device`. */
export function connectWs(url: string, device: number): Promise<WebSocket> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/?device=${device}`, {
    perMessageDeflate: false,
    handshakeTimeout: CONNECT_TIMEOUT_MS,
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', (error) => reject(new Error(`device ${device} could not connect: ${error.message}`)));
  });
}

/**
 * Socket.IO: a 1:1 send is `{id, envelopes: [{to, body}]}`, a group send `{id, group, body}` with the group's wire
 * id (WeConnect: made by POST /api/groups; bare: registered with `group:create`).
 */
export class SocketIoTransport implements Transport {
  private handler: (device: number, id: string) => void = () => {};

  /**
   * @param sockets the connected devices by number (undefined: not connected, e.g. the offline-drain device)
   * @param wireIds each device's id on the wire
   * @param groupIds wire id of the group of each size
   */
  constructor(
    private readonly sockets: (EventSocket | undefined)[],
    private readonly wireIds: string[],
    private readonly groupIds: Map<number, string>,
  ) {
    sockets.forEach((socket, device) => {
      socket?.on('messages', (...args: unknown[]) => {
        const [batch, ack] = args as [{ id: string }[], (() => void) | undefined];
        for (const message of batch) this.handler(device, message.id);
        if (typeof ack === 'function') ack();
      });
    });
  }

  send(sender: number, recipient: number, id: string, body: Buffer, onAck: OnAck): void {
    const payload = { id, envelopes: [{ to: this.wireIds[recipient], body }] };
    this.sockets[sender]?.emit('message:send', payload, (answer?: { ok?: unknown }) => onAck(answer?.ok === true));
  }

  sendGroup(sender: number, members: readonly number[], id: string, body: Buffer, onAck: OnAck): void {
    const payload = { id, group: this.groupIds.get(members.length), body };
    this.sockets[sender]?.emit('message:send', payload, (answer?: { ok?: unknown }) => onAck(answer?.ok === true));
  }

  onPush(handler: (device: number, id: string) => void): void {
    this.handler = handler;
  }
}

/** Raw ws: the frames of wire.ts; the 16 id bytes travel raw and are base64url again on receipt. */
export class WsTransport implements Transport {
  private handler: (device: number, id: string) => void = () => {};
  private readonly pendingAcks = new Map<string, OnAck>();

  constructor(private readonly sockets: WebSocket[]) {
    sockets.forEach((socket, device) => {
      socket.on('message', (data: Buffer) => {
        if (data.length < AFTER_ID) return;
        const id = data.toString('base64url', 1, AFTER_ID);
        if (data[0] === FRAME.push) {
          this.handler(device, id);
          socket.send(idFrame(FRAME.pushAck, data));
        } else if (data[0] === FRAME.sendAck) {
          const onAck = this.pendingAcks.get(id);
          this.pendingAcks.delete(id);
          onAck?.(data[AFTER_ID] === 0);
        }
      });
    });
  }

  send(sender: number, recipient: number, id: string, body: Buffer, onAck: OnAck): void {
    this.pendingAcks.set(id, onAck);
    this.sockets[sender]?.send(sendFrame(Buffer.from(id, 'base64url'), recipient, body));
  }

  sendGroup(sender: number, members: readonly number[], id: string, body: Buffer, onAck: OnAck): void {
    this.pendingAcks.set(id, onAck);
    this.sockets[sender]?.send(groupSendFrame(Buffer.from(id, 'base64url'), members, body));
  }

  onPush(handler: (device: number, id: string) => void): void {
    this.handler = handler;
  }
}
