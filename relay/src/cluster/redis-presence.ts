// Presence shared by every relay node through Redis. Per user, a hash of node id → open connections; a user is
// online while the hash has a field. Nodes beat a heartbeat; a node that stops (SIGKILL, lost host) is reaped by
// whichever node notices first, and the users it alone held go offline. After Redis comes back (possibly empty),
// each node writes its own connections back.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { PresenceRegistry, RegistryState } from '../service/presence.js';
import { Script } from './scripts.js';
import type { RedisClient } from './scripts.js';

const PREFIX = 'wc:presence:';
const NODES = `${PREFIX}nodes`;
const userKey = (userId: string): string => `${PREFIX}u:${userId}`;
const nodeKey = (nodeId: string): string => `${PREFIX}n:${nodeId}`;
const sinceKey = (userId: string): string => `${PREFIX}since:${userId}`;
/** How long an offline user's last-seen time stays in Redis (the store keeps it for good). */
const SEEN_TTL_MS = 24 * 3600 * 1000;

// KEYS: user hash, node set, since key, nodes zset. ARGV: node id, user id, now, node expiry.
const CONNECT = new Script(`
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
local before = redis.call('HLEN', KEYS[1])
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[2])
if before == 0 then
  redis.call('SET', KEYS[3], ARGV[3])
  return ARGV[3]
end
return false
`);

// KEYS: user hash, node set, since key. ARGV: node id, user id, now, seen ttl.
const DISCONNECT = new Script(`
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  if redis.call('HLEN', KEYS[1]) == 0 then
    redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
    return ARGV[3]
  end
end
return false
`);

// KEYS: user hashes then since keys (n each). Answers {connections, since} per user.
const STATES = new Script(`
local n = #KEYS / 2
local out = {}
for i = 1, n do
  out[#out + 1] = redis.call('HLEN', KEYS[i])
  out[#out + 1] = redis.call('GET', KEYS[n + i]) or ''
end
return out
`);

// KEYS: nodes zset. ARGV: now, prefix, seen ttl. Claims expired nodes (ZREM succeeds for one reaper) and answers
// the users that went offline with them.
const REAP = new Script(`
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 20)
local offline = {}
for _, node in ipairs(dead) do
  if redis.call('ZREM', KEYS[1], node) == 1 then
    local nk = ARGV[2] .. 'n:' .. node
    for _, user in ipairs(redis.call('SMEMBERS', nk)) do
      local uk = ARGV[2] .. 'u:' .. user
      redis.call('HDEL', uk, node)
      if redis.call('HLEN', uk) == 0 then
        redis.call('SET', ARGV[2] .. 'since:' .. user, ARGV[1], 'PX', ARGV[3])
        offline[#offline + 1] = user
      end
    end
    redis.call('DEL', nk)
  end
end
return offline
`);

// KEYS: nodes zset, node set. ARGV: node id, node expiry, now, prefix, then user id and count pairs. Writes this
// node's connections back; answers the users who had been offline (they come online again).
const REASSERT = new Script(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local back = {}
for i = 5, #ARGV, 2 do
  local uk = ARGV[4] .. 'u:' .. ARGV[i]
  if redis.call('HLEN', uk) == 0 then
    redis.call('SET', ARGV[4] .. 'since:' .. ARGV[i], ARGV[3])
    back[#back + 1] = ARGV[i]
  end
  redis.call('HSET', uk, ARGV[1], ARGV[i + 1])
  redis.call('SADD', KEYS[2], ARGV[i])
end
return back
`);

export interface RedisPresenceOptions {
  client: RedisClient;
  log: Logger;
  now: () => number;
  /** A node silent for this long is taken for dead (heartbeats go at a third of it). */
  nodeTimeoutMs: number;
  /** Users who went offline with a dead node (or came back after an outage), for the presence service. */
  onTransition: (userId: string, online: boolean, at: number) => void;
}

export class RedisPresenceRegistry implements PresenceRegistry {
  /** Random per process: a restarted relay is a new node, and its predecessor is reaped. */
  readonly nodeId = randomBytes(9).toString('base64url');
  /** This node's open connections per user: what it writes back after an outage. */
  private readonly local = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly o: RedisPresenceOptions) {
    this.timer = setInterval(
      () => {
        this.beat().catch((err: unknown) => o.log.debug({ err }, 'presence heartbeat failed'));
      },
      Math.max(100, Math.floor(o.nodeTimeoutMs / 3)),
    );
    this.timer.unref();
  }

  async connected(userId: string, now: number): Promise<number | null> {
    this.local.set(userId, (this.local.get(userId) ?? 0) + 1);
    const since = await CONNECT.run<string | null>(
      this.o.client,
      [userKey(userId), nodeKey(this.nodeId), sinceKey(userId), NODES],
      [this.nodeId, userId, now, now + this.o.nodeTimeoutMs],
    );
    return since === null ? null : Number(since);
  }

  async disconnected(userId: string, now: number): Promise<number | null> {
    const left = (this.local.get(userId) ?? 1) - 1;
    if (left > 0) this.local.set(userId, left);
    else this.local.delete(userId);
    const at = await DISCONNECT.run<string | null>(
      this.o.client,
      [userKey(userId), nodeKey(this.nodeId), sinceKey(userId)],
      [this.nodeId, userId, now, SEEN_TTL_MS],
    );
    return at === null ? null : Number(at);
  }

  async states(userIds: string[]): Promise<Map<string, RegistryState>> {
    const out = new Map<string, RegistryState>();
    for (let i = 0; i < userIds.length; i += 200) {
      const part = userIds.slice(i, i + 200);
      const flat = await STATES.run<(number | string)[]>(
        this.o.client,
        [...part.map(userKey), ...part.map(sinceKey)],
        [],
      );
      part.forEach((id, j) => {
        const connections = Number(flat[2 * j]);
        const since = flat[2 * j + 1] === '' ? undefined : Number(flat[2 * j + 1]);
        if (connections > 0) out.set(id, { online: true, lastSeen: since ?? this.o.now() });
        else if (since !== undefined) out.set(id, { online: false, lastSeen: since });
      });
    }
    return out;
  }

  /** Heartbeat, then reap nodes whose heartbeat stopped. */
  async beat(): Promise<void> {
    const now = this.o.now();
    await this.o.client.zAdd(NODES, { score: now + this.o.nodeTimeoutMs, value: this.nodeId });
    const offline = await REAP.run<string[]>(this.o.client, [NODES], [now, PREFIX, SEEN_TTL_MS]);
    for (const userId of offline) this.o.onTransition(userId, false, now);
  }

  /** After Redis was away (perhaps restarted empty): this node's connections go back in. */
  async reassert(): Promise<void> {
    const now = this.o.now();
    const pairs = [...this.local].flatMap(([userId, count]) => [userId, count]);
    const back = await REASSERT.run<string[]>(
      this.o.client,
      [NODES, nodeKey(this.nodeId)],
      [this.nodeId, now + this.o.nodeTimeoutMs, now, PREFIX, ...pairs],
    );
    for (const userId of back) this.o.onTransition(userId, true, now);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
