// Presence shared by every relay node through Redis. Per user, a hash of node id → open connections; a user is
// online while the hash has a field. Nodes beat a heartbeat; a node that stops (SIGKILL, lost host) is reaped by
// whichever node notices first, and the users it alone held go offline. After Redis comes back (possibly empty),
// each node writes its own connections back.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { PresenceRegistry, RegistryState } from '../service/presence.js';
import { SILENT, Script } from './scripts.js';
import type { RedisDeadline } from './scripts.js';
import type { RedisClient } from './scripts.js';

const PREFIX = 'wc:presence:';
const NODES = `${PREFIX}nodes`;
const userKey = (userId: string): string => `${PREFIX}u:${userId}`;
const nodeKey = (nodeId: string): string => `${PREFIX}n:${nodeId}`;
const sinceKey = (userId: string): string => `${PREFIX}since:${userId}`;
/** How long an offline user's last-seen time stays in Redis (the store keeps it for good). */
const SEEN_TTL_MS = 24 * 3600 * 1000;

// Every write of a node's count for a user sets the count this node holds (not an increment): a command that runs
// twice, or after the node's write-back (a NOSCRIPT retry lets other commands in between), cannot count twice.

// KEYS: user hash, node set, since key, nodes zset. ARGV: node id, user id, now, node expiry, this node's count.
const CONNECT = new Script(`
if tonumber(ARGV[5]) <= 0 then
  return false
end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
local before = redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[2])
if before == 0 then
  redis.call('SET', KEYS[3], ARGV[3])
  return ARGV[3]
end
return false
`);

// KEYS: user hash, node set, since key. ARGV: node id, user id, now, seen ttl, this node's count.
const DISCONNECT = new Script(`
if tonumber(ARGV[5]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
  return false
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
  return ARGV[3]
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

// KEYS: nodes zset, node set. ARGV: node id, node expiry, now, prefix, seen ttl, then user id and count pairs.
// Writes this node's connections back, and takes out the users it no longer holds (a disconnect that could not
// reach Redis). Answers {users who had been offline and come online again, users who went offline}.
const REASSERT = new Script(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local back = {}
local held = {}
for i = 6, #ARGV, 2 do
  held[ARGV[i]] = true
  local uk = ARGV[4] .. 'u:' .. ARGV[i]
  if redis.call('HLEN', uk) == 0 then
    redis.call('SET', ARGV[4] .. 'since:' .. ARGV[i], ARGV[3])
    back[#back + 1] = ARGV[i]
  end
  redis.call('HSET', uk, ARGV[1], ARGV[i + 1])
  redis.call('SADD', KEYS[2], ARGV[i])
end
local gone = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not held[user] then
    local uk = ARGV[4] .. 'u:' .. user
    redis.call('SREM', KEYS[2], user)
    if redis.call('HDEL', uk, ARGV[1]) == 1 and redis.call('HLEN', uk) == 0 then
      redis.call('SET', ARGV[4] .. 'since:' .. user, ARGV[3], 'PX', ARGV[5])
      gone[#gone + 1] = user
    end
  end
end
return {back, gone}
`);

export interface RedisPresenceOptions {
  client: RedisClient;
  log: Logger;
  now: () => number;
  /** A node silent for this long is taken for dead (heartbeats go at a third of it). */
  nodeTimeoutMs: number;
  /** Users who went offline with a dead node (or came back after an outage), for the presence service. */
  onTransition: (userId: string, online: boolean, at: number) => void;
  /** Bounds the reads a client waits on (`states`, for a presence watch); none when absent. */
  deadline?: RedisDeadline;
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
      () => [this.nodeId, userId, now, now + this.o.nodeTimeoutMs, this.local.get(userId) ?? 0],
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
      () => [this.nodeId, userId, now, SEEN_TTL_MS, this.local.get(userId) ?? 0],
    );
    return at === null ? null : Number(at);
  }

  async states(userIds: string[]): Promise<Map<string, RegistryState>> {
    const out = new Map<string, RegistryState>();
    for (let i = 0; i < userIds.length; i += 200) {
      const part = userIds.slice(i, i + 200);
      const read = STATES.run<(number | string)[]>(this.o.client, [...part.map(userKey), ...part.map(sinceKey)], []);
      const flat = this.o.deadline ? await this.o.deadline.answer(read, this.o.now()) : await read;
      // A watch fails as it does while Redis is away (the client watches again later), rather than wait for good.
      if (flat === SILENT) throw new Error('Redis did not answer a presence read in time');
      part.forEach((id, j) => {
        const connections = Number(flat[2 * j]);
        const since = flat[2 * j + 1] === '' ? undefined : Number(flat[2 * j + 1]);
        if (connections > 0) out.set(id, { online: true, lastSeen: since ?? this.o.now() });
        else if (since !== undefined) out.set(id, { online: false, lastSeen: since });
      });
    }
    return out;
  }

  /**
   * Heartbeat, then reap nodes whose heartbeat stopped. A heartbeat that finds this node missing (another node took
   * it for dead during a long pause, or Redis lost its data) writes this node's connections back.
   */
  async beat(): Promise<void> {
    const now = this.o.now();
    const added = await this.o.client.zAdd(NODES, { score: now + this.o.nodeTimeoutMs, value: this.nodeId });
    if (added === 1) await this.reassert(); // at the first heartbeat there is nothing to write back
    const offline = await REAP.run<string[]>(this.o.client, [NODES], [now, PREFIX, SEEN_TTL_MS]);
    for (const userId of offline) this.o.onTransition(userId, false, now);
  }

  /**
   * After Redis was away (perhaps restarted empty, perhaps not): this node's connections go back in, and what it
   * no longer holds comes out.
   */
  async reassert(): Promise<void> {
    const now = this.o.now();
    const [back, gone] = await REASSERT.run<[string[], string[]]>(this.o.client, [NODES, nodeKey(this.nodeId)], () => [
      this.nodeId,
      now + this.o.nodeTimeoutMs,
      now,
      PREFIX,
      SEEN_TTL_MS,
      ...[...this.local].flatMap(([userId, count]) => [userId, count]),
    ]);
    for (const userId of back) this.o.onTransition(userId, true, now);
    for (const userId of gone) this.o.onTransition(userId, false, now);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
