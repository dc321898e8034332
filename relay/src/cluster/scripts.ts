// Runs a Lua script on Redis by its SHA1, loading it on a NOSCRIPT answer (after a Redis restart, for instance).
import { createHash } from 'node:crypto';
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
