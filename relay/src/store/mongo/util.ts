// Small helpers of the MongoDB store: binary values as read back, error codes, URIs safe to show, and bounded bulk
// writes.

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

/** Every write of a failed bulk write (or the one write of a failed command) was refused by a unique index. */
export function onlyDuplicateKeys(err: unknown): boolean {
  const writeErrors =
    typeof err === 'object' && err !== null ? (err as { writeErrors?: unknown }).writeErrors : undefined;
  const errors = Array.isArray(writeErrors) ? writeErrors : writeErrors === undefined ? [err] : [writeErrors];
  return errors.length > 0 && errors.every(isDuplicateKey);
}

/** The server answered that a command or option is not implemented (FerretDB's NotImplemented, code 238). */
export function isNotImplemented(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  return e.code === 238 || (typeof e.message === 'string' && /not implemented/i.test(e.message));
}

/**
 * Statements per bulk-write request. FerretDB 1.x (over PostgreSQL or SQLite) keeps one pooled database connection
 * open for every single-document update (`updateOne`) that matched, until its whole `update` command returns, and
 * needs another for the write: about 50 such statements in one request (PostgreSQL's pool; 100 on SQLite) exhaust
 * the pool and the command waits on itself for ever, and every other request with it. The store therefore sends
 * multi-document statements (`updateMany`, whose reads end before the next statement) and bounds each request.
 */
export const BULK_STATEMENTS_PER_REQUEST = 32;

/** Splits `items` into runs of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `write` (an unordered bulk write) on at most BULK_STATEMENTS_PER_REQUEST statements at a time, in turn. */
export async function inBoundedRequests<T>(ops: T[], write: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (const chunk of chunks(ops, BULK_STATEMENTS_PER_REQUEST)) await write(chunk);
}
