// A Socket.IO client written directly on a `ws` WebSocket, for the load generator: Engine.IO v4 framing (the open
// packet, answering pings, `4`-prefixed text messages, binary frames as they are), the Socket.IO CONNECT with the
// auth payload, events with acks and acks of the server's events — encoded and decoded with the SAME parser the
// server uses (socket.io-msgpack-parser for the WeConnect relay and bare-msgpack, socket.io-parser for bare). It
// skips everything socket.io-client adds on top (reconnection, buffering, the manager, timers per ack, the
// Engine.IO socket object), so one generator process can offer more load than the server can take.
import * as defaultParser from 'socket.io-parser';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { WebSocket } from 'ws';

/** Socket.IO packet types (both parsers number them the same; the default parser adds 5 and 6 for binary). */
const PACKET = { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4 } as const;

interface Packet {
  type: number;
  nsp: string;
  data?: unknown;
  id?: number;
}

interface ParserEncoder {
  encode(packet: Packet): (string | Buffer | Uint8Array | ArrayBuffer)[];
}
interface ParserDecoder {
  add(chunk: unknown): void;
  on(event: 'decoded', listener: (packet: Packet) => void): unknown;
}

export type ParserName = 'default' | 'msgpack';

/** The same parser modules the relays load (bare.ts: `--parser`; the WeConnect relay: msgpack). */
function parserOf(name: ParserName): { Encoder: new () => ParserEncoder; Decoder: new () => ParserDecoder } {
  return (name === 'msgpack' ? msgpackParser : defaultParser) as unknown as {
    Encoder: new () => ParserEncoder;
    Decoder: new () => ParserDecoder;
  };
}

type Listener = (...args: unknown[]) => void;

/**
 * The part of socket.io-client's `Socket` the load generator uses, so both clients drive the same workloads:
 * `on(event, (...args, ack?) => …)`, `emit(event, ...args, ack?)` and `close()`.
 */
export interface EventSocket {
  on(event: string, listener: Listener): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  close(): unknown;
}

/** Sends `event` with `payload` and resolves with the first argument of its ack, or rejects after `timeoutMs`. */
export function emitWithAck(socket: EventSocket, event: string, payload: unknown, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.emit(event, payload, (answer: unknown) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

export class RawSocketIo implements EventSocket {
  private readonly encoder: ParserEncoder;
  private readonly decoder: ParserDecoder;
  private readonly listeners = new Map<string, Listener[]>();
  private readonly acks = new Map<number, Listener>();
  private nextAckId = 0;
  private connected = false;
  private onConnect: ((error: Error | null) => void) | null = null;
  readonly ws: WebSocket;

  constructor(
    url: string,
    private readonly auth: Record<string, string>,
    parser: ParserName,
    handshakeTimeoutMs = 20_000,
  ) {
    const { Encoder, Decoder } = parserOf(parser);
    this.encoder = new Encoder();
    this.decoder = new Decoder();
    this.decoder.on('decoded', (packet) => this.packet(packet));
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, {
      perMessageDeflate: false,
      handshakeTimeout: handshakeTimeoutMs,
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => this.frame(data, isBinary));
    this.ws.on('error', (error) => this.fail(error));
    this.ws.on('close', () => this.fail(new Error('closed before the Socket.IO connect')));
  }

  /** Resolves once the server accepted the Socket.IO CONNECT (its middleware ran), rejects with its error. */
  connect(): Promise<this> {
    return new Promise((resolve, reject) => {
      this.onConnect = (error) => (error === null ? resolve(this) : reject(error));
    });
  }

  on(event: string, listener: Listener): this {
    const list = this.listeners.get(event);
    if (list === undefined) this.listeners.set(event, [listener]);
    else list.push(listener);
    return this;
  }

  /** `emit(event, ...args)`; a function as the last argument asks for an ack and gets its arguments. */
  emit(event: string, ...args: unknown[]): this {
    const last = args.at(-1);
    const packet: Packet = { type: PACKET.EVENT, nsp: '/', data: [event, ...args] };
    if (typeof last === 'function') {
      const id = this.nextAckId++;
      this.acks.set(id, last as Listener);
      packet.data = [event, ...args.slice(0, -1)];
      packet.id = id;
    }
    this.write(packet);
    return this;
  }

  close(): this {
    this.ws.terminate();
    return this;
  }

  private write(packet: Packet): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    for (const chunk of this.encoder.encode(packet)) {
      // Engine.IO v4 over WebSocket: a text message is `4` + the text, binary data goes as it is.
      if (typeof chunk === 'string') this.ws.send(`4${chunk}`);
      else this.ws.send(chunk);
    }
  }

  private frame(data: Buffer, isBinary: boolean): void {
    try {
      if (isBinary) {
        this.decoder.add(data);
        return;
      }
      const text = data.toString();
      switch (text.charCodeAt(0)) {
        case 0x30: // "0" open: the session; answer with the Socket.IO CONNECT and its auth
          this.write({ type: PACKET.CONNECT, nsp: '/', data: this.auth });
          return;
        case 0x32: // "2" ping
          this.ws.send('3');
          return;
        case 0x34: // "4" message
          this.decoder.add(text.slice(1));
          return;
        case 0x31: // "1" close
          this.ws.terminate();
          return;
        default: // "3" pong, "6" noop: nothing to do
          return;
      }
    } catch (error) {
      // A frame the parser rejects: the server would close the connection for the same.
      this.fail(error instanceof Error ? error : new Error(String(error)));
      this.ws.terminate();
    }
  }

  private packet(packet: Packet): void {
    switch (packet.type) {
      case PACKET.CONNECT:
        this.connected = true;
        this.onConnect?.(null);
        this.onConnect = null;
        return;
      case PACKET.CONNECT_ERROR: {
        const data = packet.data as { message?: unknown } | string | undefined;
        const text = typeof data === 'string' ? data : String(data?.message ?? 'connect error');
        this.fail(new Error(text));
        this.ws.terminate();
        return;
      }
      case PACKET.EVENT: {
        const [event, ...args] = packet.data as [string, ...unknown[]];
        if (packet.id !== undefined) {
          const id = packet.id;
          let answered = false;
          args.push((...answer: unknown[]) => {
            if (answered) return;
            answered = true;
            this.write({ type: PACKET.ACK, nsp: '/', id, data: answer });
          });
        }
        for (const listener of this.listeners.get(event) ?? []) listener(...args);
        return;
      }
      case PACKET.ACK: {
        const ack = packet.id === undefined ? undefined : this.acks.get(packet.id);
        if (ack === undefined || packet.id === undefined) return;
        this.acks.delete(packet.id);
        ack(...(packet.data as unknown[]));
        return;
      }
      case PACKET.DISCONNECT:
        this.ws.terminate();
        return;
    }
  }

  private fail(error: Error): void {
    if (this.connected) return;
    this.onConnect?.(error);
    this.onConnect = null;
  }
}

/**
 * Connects one raw Socket.IO client; `listen` attaches listeners before the connection opens (an event sent right
 * after the handshake, such as the WeConnect relay's mailbox, must not be missed).
 */
export async function connectRawSocketIo(
  url: string,
  auth: Record<string, string>,
  parser: ParserName,
  listen?: (socket: RawSocketIo) => void,
): Promise<RawSocketIo> {
  const socket = new RawSocketIo(url, auth, parser);
  listen?.(socket);
  try {
    return await socket.connect();
  } catch (error) {
    socket.close();
    throw new Error(`could not connect: ${error instanceof Error ? error.message : String(error)}`);
  }
}
