// REDIS_URL: what relay nodes share through Redis — Socket.IO's Redis streams adapter (rooms across nodes, e.g. the
// sockets of a revoked session), the cluster bus (committed entries, ephemeral messages, resync requests and
// presence changes, over pub/sub), presence, and the rate limits. Redis carries no state that a message depends
// on: every acknowledged message is in the store, and after an outage each node resyncs its connections from there.
import { createAdapter } from '@socket.io/redis-streams-adapter';
import type { Logger } from 'pino';
import { redactUrl } from '../log.js';
import { createClient } from 'redis';
import type { ServerOptions } from 'socket.io';
import type { EventLimiter, SigninLimiter } from '../service/rate-limit.js';
import type { ClusterBus, ClusterEvent } from './bus.js';
import { RedisEventLimiter, RedisSigninLimiter } from './redis-limits.js';
import { RedisPresenceRegistry } from './redis-presence.js';
import { RedisDeadline } from './scripts.js';
import type { RedisClient } from './scripts.js';
import { decodeEnvelope, encodeEnvelope } from './wire.js';

const CHANNEL = 'wc:cluster';

export interface RedisClusterOptions {
  url: string;
  log: Logger;
  now: () => number;
  /** How long to wait for Redis at start before giving up. */
  connectTimeoutMs?: number;
  /** A node whose presence heartbeat is this old is taken for dead. */
  nodeTimeoutMs: number;
  signin: { maxFailures: number; windowMs: number };
  /** Failed sign-ins per address across usernames. */
  signinAddress: { maxFailures: number; windowMs: number };
  events: { burst: number; perSecond: number };
  /** Sign-ups per address. */
  signups: { burst: number; perSecond: number };
  /** How long a limit check waits for Redis before the node decides alone (default REDIS_ANSWER_WITHIN_MS). */
  answerWithinMs?: number;
}

export interface RedisCluster {
  bus: RedisBus;
  registry: RedisPresenceRegistry;
  /** Where the registry reports transitions it finds itself (reaped nodes, users back after an outage). */
  onPresenceTransition(handler: (userId: string, online: boolean, at: number) => void): void;
  signinLimiter: SigninLimiter;
  addressLimiter: SigninLimiter;
  eventLimiter: EventLimiter;
  signupLimiter: EventLimiter;
  adapter: ServerOptions['adapter'];
  /** One PING on the command client (which fails at once while Redis is away): for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

async function connectWithin(client: RedisClient, url: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`cannot reach Redis at ${redactUrl(url)} within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([client.connect(), timedOut]);
  } catch (err) {
    client.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The cluster bus over Redis pub/sub; `onResume` fires once the subscription is back after a cut. */
export class RedisBus implements ClusterBus {
  readonly kind = 'redis' as const;
  private readonly handlers: ((event: ClusterEvent) => void)[] = [];
  private readonly resumeHandlers: (() => void)[] = [];
  /** Events were lost on the way out: once the publisher is back, every node is asked to resync. */
  private owesResume = false;

  constructor(
    private readonly publisher: RedisClient,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {
    publisher.on('ready', () => {
      if (!this.owesResume) return;
      this.owesResume = false;
      void this.publish({ type: 'resume' });
    });
  }

  async publish(event: ClusterEvent): Promise<void> {
    if (!this.publisher.isReady) {
      this.owesResume = true; // lost: the receivers resync when the bus is back
      return;
    }
    try {
      await this.publisher.publish(CHANNEL, encodeEnvelope({ from: this.nodeId, event }));
    } catch (err) {
      this.owesResume = true;
      this.log.warn({ err, type: event.type }, 'cluster event not published');
    }
  }

  onEvent(handler: (event: ClusterEvent) => void): void {
    this.handlers.push(handler);
  }

  onResume(handler: () => void): void {
    this.resumeHandlers.push(handler);
  }

  /** A message from the channel: parsed with the wire schema; anything else is dropped. */
  receive(message: Buffer): void {
    const envelope = decodeEnvelope(message);
    if (envelope === null) {
      this.log.warn({ bytes: message.length }, 'unreadable cluster event dropped');
      return;
    }
    if (envelope.from === this.nodeId) return;
    if (envelope.event.type === 'resume') {
      this.resumed();
      return;
    }
    for (const handler of this.handlers) {
      try {
        handler(envelope.event);
      } catch (err) {
        this.log.error({ err, type: envelope.event.type }, 'cluster event handler failed');
      }
    }
  }

  resumed(): void {
    for (const handler of this.resumeHandlers) {
      try {
        handler();
      } catch (err) {
        this.log.error({ err }, 'cluster resume handler failed');
      }
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Connects three clients: commands (scripts, publish; fails fast while Redis is away instead of queueing), the
 * bus subscriber, and the Socket.IO adapter's client (queues while Redis is away, so the adapter's stream
 * messages survive a blip). Fails within connectTimeoutMs when Redis does not answer.
 */
export async function connectRedisCluster(o: RedisClusterOptions): Promise<RedisCluster> {
  const timeout = o.connectTimeoutMs ?? 5000;
  const socket = {
    connectTimeout: timeout,
    reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000),
  };
  const command = createClient({ url: o.url, disableOfflineQueue: true, socket }) as RedisClient;
  const subscriber = createClient({ url: o.url, socket }) as RedisClient;
  const adapterClient = createClient({ url: o.url, socket }) as RedisClient;
  const clients = [command, subscriber, adapterClient];

  // One deadline for the command client's checks and reads that a client waits on: once Redis is silent, every one of
  // them goes on without it for a while.
  const deadline = new RedisDeadline(o.log, o.answerWithinMs);
  let down = false;
  const cut = (err?: unknown): void => {
    if (!down) o.log.warn({ err }, 'Redis connection lost; live fan-out paused, delivery continues from the store');
    down = true;
  };
  for (const client of clients) client.on('error', (err: unknown) => o.log.debug({ err }, 'Redis client error'));
  subscriber.on('error', cut);
  subscriber.on('reconnecting', () => cut());
  command.on('error', cut);

  try {
    await connectWithin(command, o.url, timeout);
    await connectWithin(subscriber, o.url, timeout);
    await connectWithin(adapterClient, o.url, timeout);
  } catch (err) {
    for (const client of clients) if (client.isOpen) client.destroy();
    throw err;
  }

  let onTransition: (userId: string, online: boolean, at: number) => void = () => undefined;
  const registry = new RedisPresenceRegistry({
    client: command,
    log: o.log,
    now: o.now,
    nodeTimeoutMs: o.nodeTimeoutMs,
    onTransition: (userId, online, at) => onTransition(userId, online, at),
    deadline,
  });
  const theBus = new RedisBus(command, registry.nodeId, o.log);

  await subscriber.subscribe(CHANNEL, (message: Buffer) => theBus.receive(message), true);
  await registry.beat();

  // The subscriber is re-subscribed before it reports ready; the command client must be back too. Whichever of
  // the two comes back last (the command client alone may have lost its connection) starts the resync, once.
  let recovering = false;
  const recover = (): void => {
    if (!down || recovering || !subscriber.isReady || !command.isReady) return;
    recovering = true;
    down = false;
    o.log.info('Redis is back; resyncing presence and mailboxes');
    void registry
      .reassert()
      .catch((err: unknown) => o.log.warn({ err }, 'presence reassert failed'))
      .finally(() => {
        recovering = false;
        theBus.resumed();
        recover(); // a cut that began and ended meanwhile had its 'ready' ignored
      });
  };
  subscriber.on('ready', recover);
  command.on('ready', recover);

  return {
    bus: theBus,
    registry,
    onPresenceTransition(handler) {
      onTransition = handler;
    },
    signinLimiter: new RedisSigninLimiter(
      command,
      o.signin.maxFailures,
      o.signin.windowMs,
      o.log,
      'wc:signin',
      deadline,
    ),
    addressLimiter: new RedisSigninLimiter(
      command,
      o.signinAddress.maxFailures,
      o.signinAddress.windowMs,
      o.log,
      'wc:signin-address',
      deadline,
    ),
    eventLimiter: new RedisEventLimiter(command, o.events.burst, o.events.perSecond, deadline),
    signupLimiter: new RedisEventLimiter(command, o.signups.burst, o.signups.perSecond, deadline),
    adapter: createAdapter(adapterClient, { blockTimeInMs: 2000 }) as ServerOptions['adapter'],
    async ping() {
      await command.ping();
    },
    async close() {
      registry.close();
      for (const client of clients) {
        if (!client.isOpen) continue;
        if (client.isReady) await client.close().catch(() => client.destroy());
        else client.destroy();
      }
    },
  };
}
