// Runs a Lua script on Redis by its SHA1, loading it on a NOSCRIPT answer (after a Redis restart, for instance).
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisClientType } from 'redis';

export type RedisClient = RedisClientType<Record<string, never>, Record<string, never>, Record<string, never>>;

export class Script {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source, 'utf8').digest('hex');
  }

  /**
   * `args` may be a function: it is called again for the retry after NOSCRIPT, so a script that writes what the
   * caller holds writes what it holds when the retry is sent (other commands may have run in between).
   */
  async run<T>(
    client: RedisClient,
    keys: string[],
    args: (string | number)[] | (() => (string | number)[]),
  ): Promise<T> {
    const tail = (): string[] => [
      String(keys.length),
      ...keys,
      ...(typeof args === 'function' ? args() : args).map(String),
    ];
    try {
      return await client.sendCommand<T>(['EVALSHA', this.sha, ...tail()]);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.sendCommand<T>(['EVAL', this.source, ...tail()]);
    }
  }
}

/** How long a check (a rate limit, a presence read) waits for Redis's answer before going on without it (ms). */
export const REDIS_ANSWER_WITHIN_MS = 250;
/** After Redis stayed silent past that deadline, how long the node goes on without it before asking again (ms). */
const SILENT_BACKOFF_MS = 1000;

/** What RedisDeadline.answer gives when Redis did not answer in time. */
export const SILENT = Symbol('silent');

/**
 * A deadline on Redis's answers. A Redis that keeps its connection open and answers nothing (a stopped process, a
 * network path that drops packets) fails no command: the client has written it and waits for good. Without a
 * deadline every send, sign-in and presence watch of every node would wait with it. After one silence the node goes
 * on without Redis for SILENT_BACKOFF_MS, so an outage costs each check at most one wait. A script that Redis runs
 * after its deadline has still run there (a rate limit: a token taken twice, here and there; an in-flight sign-in
 * that expires later).
 */
export class RedisDeadline {
  private silentUntil = -Infinity;

  constructor(
    private readonly log: Logger | null,
    private readonly withinMs = REDIS_ANSWER_WITHIN_MS,
  ) {}

  /** Whether the node goes on without Redis for now (it was silent less than SILENT_BACKOFF_MS ago). */
  silent(now: number): boolean {
    return now < this.silentUntil;
  }

  /** The answer, or SILENT when there was none within the deadline (the node then goes on without Redis a while). */
  async answer<T>(pending: Promise<T>, now: number): Promise<T | typeof SILENT> {
    let timer: NodeJS.Timeout | undefined;
    const answer = await Promise.race([
      pending,
      new Promise<typeof SILENT>((resolve) => (timer = setTimeout(resolve, this.withinMs, SILENT))),
    ]).finally(() => clearTimeout(timer));
    if (answer === SILENT) {
      if (!this.silent(now))
        this.log?.warn(
          { withinMs: this.withinMs },
          'Redis did not answer in time; going on without it for a while (limits in this process)',
        );
      this.silentUntil = now + SILENT_BACKOFF_MS;
    }
    return answer;
  }
}
