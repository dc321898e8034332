// Small helpers of the MongoDB store: binary values as read back, error codes, and URIs safe to show.

/** A binary field as the driver returns it (a BSON Binary, or a Buffer) as bytes; null when absent. */
export function bytesOf(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const inner = (value as { buffer?: unknown }).buffer; // bson Binary: .buffer is the Uint8Array of its bytes
  if (inner instanceof Uint8Array) return Buffer.from(inner.buffer, inner.byteOffset, inner.byteLength);
  throw new Error('a stored binary field has an unexpected type');
}

/** Bytes that must exist. */
export function requiredBytes(value: unknown): Buffer {
  const bytes = bytesOf(value);
  if (!bytes) throw new Error('a stored binary field is missing');
  return bytes;
}

/** E11000: a unique index refused the write. */
export function isDuplicateKey(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 11000;
}

/** The server answered that a command or option is not implemented (FerretDB's NotImplemented, code 238). */
export function isNotImplemented(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  return e.code === 238 || (typeof e.message === 'string' && /not implemented/i.test(e.message));
}
