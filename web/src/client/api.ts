// RelayApi: the HTTP half of PROTOCOL.md. Parses every answer; maps failures to ClientError codes;
// refreshes the access token once on 401 through the TokenKeeper.

import type { z } from 'zod';
import { ClientError, type ClientErrorCode } from './errors';
import { errorAnswerSchema, sessionAnswerSchema } from '@weconnect/relay/protocol';

const KNOWN: ReadonlySet<string> = new Set([
  'unauthorized',
  'username_taken',
  'invalid_input',
  'rate_limited',
  'not_found',
  'device_limit',
  'device_removed',
  'kt_unwitnessed',
]);

function mapCode(code: string): ClientErrorCode {
  return KNOWN.has(code) ? (code as ClientErrorCode) : 'relay_error';
}

/**
 * How long a call may take, answer included. The engine waits for some calls in its queues (a group's info is checked
 * with the relay before it is stored): a relay that never answers, or a connection that went dead without a reset,
 * must not hold them for ever.
 */
export const REQUEST_TIMEOUT_MS = 60_000;

/** Raw HTTP call; `token` adds the bearer header. Throws ClientError; returns the parsed JSON (or null on 204). */
export async function request<T>(
  base: string,
  method: string,
  path: string,
  schema: z.ZodType<T> | null,
  body?: unknown,
  token?: string,
  timeoutMs = REQUEST_TIMEOUT_MS,
): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  const unreachable = (cause: unknown): ClientError =>
    signal.aborted
      ? new ClientError('relay_unreachable', `The relay did not answer within ${timeoutMs / 1000} s.`, { cause })
      : new ClientError('relay_unreachable', 'The relay is unreachable. Check your connection.', { cause });
  let res: Response;
  let text: string;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    text = await res.text();
  } catch (cause) {
    throw unreachable(cause);
  }
  let json: unknown = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const parsed = errorAnswerSchema.safeParse(json);
    if (parsed.success) throw new ClientError(mapCode(parsed.data.error.code), parsed.data.error.message);
    throw new ClientError('relay_error', `The relay answered ${res.status} ${res.statusText}`.trim());
  }
  if (!schema) return null as T;
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new ClientError('relay_error', `Unexpected answer from the relay for ${path}`);
  return parsed.data;
}

/** Holds the access token, refreshes it with the (rotating) refresh token, and persists each new refresh token. */
export class TokenKeeper {
  #access: string | null = null;
  #expiresAt = 0;
  #refresh: string;
  #inflight: Promise<string> | null = null;
  readonly #base: string;
  readonly #persist: (refreshToken: string) => Promise<void>;
  readonly #now: () => number;
  #lifetimeMs = 0;

  constructor(
    base: string,
    refreshToken: string,
    persist: (refreshToken: string) => Promise<void>,
    now: () => number = Date.now,
  ) {
    this.#base = base;
    this.#refresh = refreshToken;
    this.#persist = persist;
    this.#now = now;
  }

  /** Installs a fresh pair (after sign-in). */
  async set(accessToken: string, refreshToken: string, expiresIn: number): Promise<void> {
    this.#refresh = refreshToken;
    await this.#persist(refreshToken);
    this.#access = accessToken;
    this.#lifetimeMs = expiresIn * 1000;
    this.#expiresAt = this.#now() + this.#lifetimeMs;
  }

  /**
   * A valid access token, refreshed when it is missing or about to expire. "About to" is the last 30 s, or the
   * last quarter of the lifetime when tokens live shorter than two minutes (else every call would refresh).
   */
  async access(): Promise<string> {
    const margin = Math.min(30_000, this.#lifetimeMs / 4);
    if (this.#access && this.#now() < this.#expiresAt - margin) return this.#access;
    return this.refresh();
  }

  /** Forces a refresh; concurrent callers share one request (a refresh token is single-use). */
  refresh(): Promise<string> {
    this.#inflight ??= (async () => {
      try {
        const answer = await request(this.#base, 'POST', '/api/sessions/refresh', sessionAnswerSchema, {
          refreshToken: this.#refresh,
        });
        await this.set(answer.accessToken, answer.refreshToken, answer.expiresIn);
        return answer.accessToken;
      } finally {
        this.#inflight = null;
      }
    })();
    return this.#inflight;
  }

  /** Current access token without refreshing. */
  get current(): string | null {
    return this.#access;
  }

  /** Test-only: the refresh token now held, and a way to make the relay refuse the access token. */
  dangerousTestOnlyPeek(): { refreshToken: string; spoilAccessToken: () => void } {
    return {
      refreshToken: this.#refresh,
      spoilAccessToken: () => {
        this.#access = 'spoiled.access.token';
      },
    };
  }
}

/** Authenticated calls: one retry after a refresh when the relay says 401. */
export class RelayApi {
  readonly base: string;
  readonly tokens: TokenKeeper;
  /** Told when the relay answers `device_removed`: this device was removed from its account. */
  onDeviceRemoved: (() => void) | null = null;

  constructor(base: string, tokens: TokenKeeper) {
    this.base = base;
    this.tokens = tokens;
  }

  async call<T>(method: string, path: string, schema: z.ZodType<T> | null, body?: unknown): Promise<T> {
    const token = await this.tokens.access();
    try {
      return await request(this.base, method, path, schema, body, token);
    } catch (error) {
      if (error instanceof ClientError && error.code === 'device_removed') this.onDeviceRemoved?.();
      if (!(error instanceof ClientError) || error.code !== 'unauthorized') throw error;
      const fresh = await this.tokens.refresh();
      return request(this.base, method, path, schema, body, fresh);
    }
  }
}
