// A malicious relay for tests: an HTTP + Socket.IO proxy in front of the real relay that can rewrite HTTP answers
// (prekey bundles) and acks, and hold, drop, reorder, replay or forge `messages` deliveries. Clients connect to it
// exactly as to a relay; each client socket gets its own upstream socket to the real relay with the client's own token.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket as ServerSocket } from 'socket.io';
import { io as connectUpstream, type Socket as ClientSocket } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';

/** One `messages` item as the relay delivers it. */
export interface Delivery {
  id: string;
  seq: number;
  ts: number;
  body: Uint8Array;
  group?: string;
}

/** What the proxy keeps on each client socket: its upstream socket, and the pushes that came before its handler. */
interface ProxyData {
  up?: ClientSocket;
  early?: [Delivery[], () => void][];
  onMessages?: (raw: Delivery[], ack: () => void) => void;
}

export interface MaliciousRelay {
  url: string;
  /** Rewrites a JSON answer of the real relay (path without query); return it unchanged to pass it on. */
  rewriteHttp: ((path: string, status: number, body: unknown, deviceId: string) => unknown) | null;
  /**
   * Decides what reaches a device of each `messages` event: returns the items to deliver (possibly none). The
   * real relay is acknowledged as soon as the decision is made, so whatever is withheld is gone from it.
   */
  tamper: ((deviceId: string, batch: Delivery[]) => Delivery[]) | null;
  /**
   * Answers an HTTP request itself, without asking the real relay (path without query): return a JSON body to send
   * with status 200, or undefined to pass the request on.
   */
  forgeHttp: ((path: string) => unknown) | null;
  /**
   * Answers an HTTP request with an error of the relay's choosing, without asking the real relay (path without
   * query): return `{ status, code, message, retryAfter? }`, or undefined to pass the request on.
   */
  refuseHttp:
    ((path: string) => { status: number; code: string; message: string; retryAfter?: number } | undefined) | null;
  /** Every item the real relay handed to each device, in arrival order (what the operator could replay). */
  /**
   * Rewrites the relay's answer to a client's event (its ack) before the client gets it: `payload` is what the client
   * sent, `deviceId` the sending device.
   */
  rewriteAck: ((event: string, deviceId: string, payload: unknown, answer: unknown) => unknown) | null;
  seen: Map<string, Delivery[]>;
  /** Every envelope each device sent (`message:send`), in order: what the operator receives from clients. */
  sent: Map<string, { id: string; to: string; body: Uint8Array }[]>;
  /** Every HTTP request path (with query) that reached the malicious relay, in order. */
  requests: string[];
  /** Delivers items of the relay's choosing to a connected device; resolves when the device acknowledges. */
  inject(deviceId: string, items: Delivery[]): Promise<void>;
  close(): Promise<void>;
}

function deviceOf(token: unknown): string {
  if (typeof token !== 'string') return '';
  const payload = token.split('.')[1] ?? '';
  try {
    return String((JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { dev?: unknown }).dev ?? '');
  } catch {
    return '';
  }
}

/** A copy of a delivered body: the parser's may be a view of a buffer that is used again once the event is handled. */
function toBytes(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return Uint8Array.prototype.slice.call(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  throw new Error('a delivery body is not binary');
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startMaliciousRelay(upstreamUrl: string): Promise<MaliciousRelay> {
  const clients = new Map<string, ServerSocket>();
  const upstreams = new Set<ClientSocket>();

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    void (async () => {
      const body = await readBody(req);
      relay.requests.push(req.url ?? '/');
      const refusal = relay.refuseHttp?.((req.url ?? '/').split('?')[0]!);
      if (refusal !== undefined) {
        res.writeHead(refusal.status, {
          'content-type': 'application/json',
          ...(refusal.retryAfter !== undefined ? { 'retry-after': String(refusal.retryAfter) } : {}),
        });
        res.end(JSON.stringify({ error: { code: refusal.code, message: refusal.message } }));
        return;
      }
      const forged = relay.forgeHttp?.((req.url ?? '/').split('?')[0]!);
      if (forged !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(forged));
        return;
      }
      const headers: Record<string, string> = {};
      for (const name of ['authorization', 'content-type']) {
        const value = req.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      const answer = await fetch(new URL(req.url ?? '/', upstreamUrl), {
        method: req.method,
        headers,
        body: body.length > 0 ? body.toString('utf8') : undefined, // the relay's API is JSON text
      });
      let text = await answer.text();
      const path = (req.url ?? '/').split('?')[0]!;
      if (relay.rewriteHttp && (answer.headers.get('content-type') ?? '').includes('json')) {
        const device = deviceOf((req.headers.authorization ?? '').replace(/^Bearer /, ''));
        text = JSON.stringify(relay.rewriteHttp(path, answer.status, JSON.parse(text), device));
      }
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
      res.end(text);
    })().catch(() => {
      res.writeHead(502);
      res.end();
    });
  };

  const httpServer = createServer(onRequest);
  const ioServer = new Server(httpServer, { parser: msgpackParser, serveClient: false });

  ioServer.use((socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown }).token;
    const up = connectUpstream(upstreamUrl, {
      parser: msgpackParser,
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { token },
    });
    // The relay pushes a waiting mailbox as soon as the upstream socket connects, before this socket's connection
    // handler runs: what arrives meanwhile waits for it (an unanswered push would hold the mailbox back for good).
    const data = socket.data as ProxyData;
    data.early = [];
    up.on('messages', (raw: Delivery[], ack: () => void) => {
      if (data.onMessages) data.onMessages(raw, ack);
      else data.early?.push([raw.map((d) => ({ ...d, body: toBytes(d.body) })), ack]);
    });
    up.once('connect', () => {
      upstreams.add(up);
      data.up = up;
      next();
    });
    up.once('connect_error', (err: Error & { data?: unknown }) => {
      up.close();
      const refusal = new Error(err.message) as Error & { data?: unknown };
      refusal.data = err.data;
      next(refusal);
    });
  });

  ioServer.on('connection', (socket) => {
    const data = socket.data as ProxyData;
    const up = data.up!;
    const deviceId = deviceOf((socket.handshake.auth as { token?: unknown }).token);
    clients.set(deviceId, socket);
    const onMessages = (raw: Delivery[], ack: () => void): void => {
      // msgpack hands binary over as an ArrayBuffer (or a Buffer): the attacker's copies are plain Uint8Arrays, so a
      // test that tries to open them with a key really tries (an ArrayBuffer would only be refused as bad input).
      const batch = raw.map((d) => ({ ...d, body: toBytes(d.body) }));
      relay.seen.set(deviceId, [...(relay.seen.get(deviceId) ?? []), ...batch]);
      const out = relay.tamper ? relay.tamper(deviceId, batch) : batch;
      if (out.length === 0 || relay.tamper) ack(); // what the malicious relay withholds is gone
      if (out.length > 0) socket.emit('messages', out, relay.tamper ? () => undefined : ack);
    };
    data.onMessages = onMessages;
    for (const [raw, ack] of data.early?.splice(0) ?? []) onMessages(raw, ack);
    up.on('presence', (update: unknown) => socket.emit('presence', update));
    up.on('devices:changed', (event: unknown) => socket.emit('devices:changed', event));
    up.on('disconnect', () => socket.disconnect(true));
    socket.onAny((event: string, ...args: unknown[]) => {
      if (event === 'message:send') recordSend(deviceId, args[0]);
      const ack = args.at(-1);
      if (relay.rewriteAck && typeof ack === 'function') {
        const rewrite = relay.rewriteAck;
        args[args.length - 1] = (answer: unknown) => ack(rewrite(event, deviceId, args[0], answer));
      }
      up.emit(event, ...args);
    });
    socket.on('disconnect', () => {
      if (clients.get(deviceId) === socket) clients.delete(deviceId);
      upstreams.delete(up);
      up.close();
    });
  });

  const recordSend = (deviceId: string, payload: unknown): void => {
    const p = payload as { id?: unknown; envelopes?: { to?: unknown; body?: unknown }[] } | null;
    if (typeof p?.id !== 'string' || !Array.isArray(p.envelopes)) return;
    const list = relay.sent.get(deviceId) ?? [];
    for (const e of p.envelopes) {
      if (typeof e.to === 'string') list.push({ id: p.id, to: e.to, body: toBytes(e.body) });
    }
    relay.sent.set(deviceId, list);
  };

  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;

  const relay: MaliciousRelay = {
    url: `http://127.0.0.1:${port}`,
    rewriteHttp: null,
    forgeHttp: null,
    refuseHttp: null,
    tamper: null,
    rewriteAck: null,
    seen: new Map(),
    sent: new Map(),
    requests: [],
    inject(deviceId, items) {
      const socket = clients.get(deviceId);
      if (!socket) return Promise.reject(new Error(`device ${deviceId} is not connected`));
      return new Promise((resolve) => socket.emit('messages', items, () => resolve()));
    },
    async close() {
      for (const up of upstreams) up.close();
      await ioServer.close();
      httpServer.closeAllConnections();
    },
  };
  return relay;
}
