// Typed errors of the chat engine: the UI shows `message`, tests and logic switch on `code`.

export type ClientErrorCode =
  | 'relay_unreachable'
  | 'unauthorized'
  | 'username_taken'
  | 'invalid_input'
  | 'rate_limited'
  | 'wrong_password'
  /** Unlock: the password opens this device's data, but the relay has a newer password for the account. */
  | 'password_changed'
  /** The peer's account was deleted (the relay no longer knows it). */
  | 'account_deleted'
  | 'not_signed_in'
  | 'locked'
  | 'decrypt_failed'
  | 'identity_changed'
  | 'no_devices'
  | 'corrupt_store'
  | 'not_found'
  /** Sign-in on a new device: the account already has the most devices the relay allows. */
  | 'device_limit'
  /** The relay served a key backup that is older than one this device has seen, or not this account's. */
  | 'backup_rejected'
  /** The relay asked for password-hashing (Argon2id) settings other than the ones this app uses, or served
   * key-derivation code that is not the code built (its Subresource Integrity check failed). */
  | 'kdf_refused'
  /** This device was removed from its account by another of its devices (the relay said `device_removed`). */
  | 'device_removed'
  /**
   * Key transparency (issue #16): what the relay served is not in its public log, or the log's signed history is not
   * consistent with what this device saw before. Sending to that contact stops.
   */
  | 'transparency_failed'
  /**
   * Key transparency with a required witness (issue #16): the contact's newest log entry is not cosigned by the
   * witness yet (the relay said `kt_unwitnessed`). Transient: sending waits and retries; the contact is not blocked.
   */
  | 'kt_unwitnessed'
  | 'relay_error';

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
  }
}

/** A short human sentence for any thrown value, for the UI. */
export function describeError(error: unknown): string {
  if (error instanceof ClientError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
