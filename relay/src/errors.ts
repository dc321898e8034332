// RelayError: the one error type the relay throws on purpose; it maps to the protocol's one error shape.
import type { ErrorAnswer, ErrorCode } from './protocol.js';

/** HTTP status of each error code. */
export const STATUS_OF: Readonly<Record<ErrorCode, number>> = {
  invalid_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  username_taken: 409,
  payload_too_large: 413,
  rate_limited: 429,
  unknown_recipient: 400,
  device_limit: 403,
  mailbox_full: 507,
  registration_closed: 403,
  invite_invalid: 403,
  group_limit: 409,
  last_admin: 409,
  block_limit: 409,
  internal: 500,
  unavailable: 503,
  device_removed: 401,
  quota_exceeded: 507,
  upload_offset: 409,
  digest_mismatch: 400,
  kt_unwitnessed: 503,
};

/**
 * An error whose code and message are safe to show a client. The message must never contain secrets, keys,
 * tokens or bodies; anything that is not a RelayError reaches the wire only as `internal`.
 */
export class RelayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** For `rate_limited` and `kt_unwitnessed`: whole seconds until a retry can succeed (the `Retry-After` header). */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { retryAfterSeconds?: number }) {
    super(message);
    this.name = 'RelayError';
    this.code = code;
    this.status = STATUS_OF[code];
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  toWire(): ErrorAnswer {
    return { error: { code: this.code, message: this.message } };
  }
}

/** The RelayError to show for any thrown value: itself, or a generic `internal`. */
export function asRelayError(err: unknown): RelayError {
  return err instanceof RelayError ? err : new RelayError('internal', 'internal error');
}
