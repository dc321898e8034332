// CryptoError: the one error type the library throws, carrying a machine-readable code.

/**
 * Why an operation failed. Callers branch on these; messages are for humans and logs.
 *
 * - `not_ready`: {@link ready} has not resolved yet.
 * - `bad_input`: an argument or serialized value has the wrong type, length or shape (the message names it).
 * - `invalid_key`: a public key is all-zero, of low order or not a valid curve point, or a DH output was all-zero.
 * - `invalid_signature`: a signature (signed prekey, group message) does not verify.
 * - `decrypt_failed`: authentication failed (wrong key, tampered, truncated); no plaintext is ever returned.
 * - `too_many_skipped`: a message would need more skipped message keys than allowed (1000 per step).
 * - `duplicate_message`: the message key was already used (a replay) or is no longer kept.
 * - `sender_mismatch`: the claimed sender (envelope, group, identity key) is not the session's peer.
 * - `unknown_prekey`: a prekey message names a prekey that the caller did not supply.
 * - `unknown_sender_key`: a group message is for a sender key this record does not hold.
 * - `message_id_mismatch`: a group message's signed message id is not the id it was delivered under.
 * - `unsupported_version`: a message or serialized state has a version this library does not understand.
 * - `post_quantum_required`: a session start without the ML-KEM part where the caller requires PQXDH (downgrade).
 * - `test_hooks_disabled`: a `dangerousTestOnly…` function was called outside tests.
 */
export type CryptoErrorCode =
  | 'not_ready'
  | 'bad_input'
  | 'invalid_key'
  | 'invalid_signature'
  | 'decrypt_failed'
  | 'too_many_skipped'
  | 'duplicate_message'
  | 'sender_mismatch'
  | 'unknown_prekey'
  | 'unknown_sender_key'
  | 'message_id_mismatch'
  | 'unsupported_version'
  | 'post_quantum_required'
  | 'test_hooks_disabled';

/** The only error type thrown by `@weconnect/crypto`; `code` says why. */
export class CryptoError extends Error {
  readonly code: CryptoErrorCode;

  constructor(code: CryptoErrorCode, message: string) {
    super(message);
    this.name = 'CryptoError';
    this.code = code;
  }
}

/** True if `err` is a CryptoError (optionally with the given code). */
export function isCryptoError(err: unknown, code?: CryptoErrorCode): err is CryptoError {
  return err instanceof CryptoError && (code === undefined || err.code === code);
}
