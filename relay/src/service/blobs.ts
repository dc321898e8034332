// Attachment blobs (issue #15): resumable uploads of opaque ciphertext, downloads by anyone signed in who holds the
// id, and their expiry. The relay sees a blob's size, its uploader, who downloads it and when — never its content,
// type or name (those travel inside the end-to-end encrypted message). Request bodies are streamed to the store; no
// blob is ever held in memory whole.
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RelayError } from '../errors.js';
import { LIMITS } from '../protocol.js';
import type { BlobCreate, BlobStatus } from '../protocol.js';
import type { BlobRecord, BlobStore } from '../store/store.js';
import type { AccessClaims } from './tokens.js';

const HOUR_MS = 3600 * 1000;
/** An upload not completed within this long after it was created is deleted by the sweep. */
export const INCOMPLETE_BLOB_TTL_MS = 24 * HOUR_MS;

/** Thrown for `upload_offset`: the answer carries the upload's status, so the client resumes where the relay is. */
export class UploadOffsetError extends RelayError {
  constructor(
    message: string,
    readonly blob: BlobStatus,
  ) {
    super('upload_offset', message);
  }
}

/** The request body stopped before its end (the client aborted, or the connection broke). */
class BodyCutOff extends RelayError {
  constructor() {
    super('invalid_input', 'the request body was cut off');
  }
}

export interface BlobSweepResult {
  /** Blobs whose every message was acknowledged: their expiry moved to the grace period. */
  graced: number;
  /** Blobs deleted because they expired (or were left incomplete). */
  expired: number;
}

export class BlobService {
  /** Blobs with a data request in progress: one writer per blob (a second one is told the offset). */
  private readonly writing = new Set<string>();

  constructor(
    private readonly store: BlobStore,
    private readonly now: () => number,
  ) {}

  async create(auth: AccessClaims, body: BlobCreate): Promise<BlobStatus> {
    const blobId = randomBytes(16).toString('base64url');
    const now = this.now();
    const outcome = await this.store.create(
      {
        blobId,
        owner: auth.userId,
        size: body.size,
        sha256: body.sha256,
        now,
        expiresAt: now + INCOMPLETE_BLOB_TTL_MS,
      },
      LIMITS.blobQuotaBytes,
    );
    if (outcome === 'quota_exceeded') {
      throw new RelayError('quota_exceeded', `an account's blobs may hold at most ${LIMITS.blobQuotaBytes} bytes`);
    }
    return { blobId, size: body.size, received: 0, complete: false, chunkBytes: LIMITS.blobChunkBytes };
  }

  /** The caller's own upload's status; another account's blob is `not_found` (its existence is not revealed). */
  async status(auth: AccessClaims, blobId: string): Promise<BlobStatus> {
    return statusOf(await this.own(auth, blobId));
  }

  /**
   * Appends one request's bytes at `offset`, which must be what the relay holds. `declaredLength` is the request's
   * Content-Length when it sent one (checked before a byte is read). The last byte completes the upload: the file's
   * SHA-256 is computed from the stored bytes and must be the declared one, else the blob is deleted.
   */
  async write(
    auth: AccessClaims,
    blobId: string,
    offset: number,
    body: AsyncIterable<Uint8Array>,
    declaredLength: number | undefined,
  ): Promise<BlobStatus> {
    const blob = await this.own(auth, blobId);
    if (blob.completedAt !== null) throw new UploadOffsetError('the upload is complete', statusOf(blob));
    if (this.writing.has(blobId)) {
      throw new UploadOffsetError('another request is writing this upload', statusOf(blob));
    }
    if (offset !== blob.received) {
      throw new UploadOffsetError(`the relay holds ${blob.received} bytes of this upload`, statusOf(blob));
    }
    const room = blob.size - blob.received;
    if (declaredLength !== undefined) checkLength(declaredLength, room);
    this.writing.add(blobId);
    try {
      const received = await this.store
        .write(blobId, offset, limited(body, room, declaredLength))
        .catch(async (err: unknown) => {
          if (err instanceof RelayError) throw err;
          // The store refused to commit: the blob was deleted meanwhile, or (MongoDB, several nodes) another
          // request committed this offset first.
          const now = await this.store.get(blobId);
          if (!now) throw new RelayError('not_found', 'no such blob');
          if (now.received !== offset) throw new UploadOffsetError('another request wrote this offset', statusOf(now));
          throw err;
        });
      if (received < blob.size) return { ...statusOf(blob), received };
      const digest = await this.digestOf(blobId, blob.size);
      if (digest !== blob.sha256) {
        await this.store.delete([blobId]);
        throw new RelayError('digest_mismatch', 'the uploaded bytes do not have the declared SHA-256; blob deleted');
      }
      const now = this.now();
      await this.store.complete(blobId, now, now + LIMITS.blobTtlDays * 24 * HOUR_MS);
      return { ...statusOf(blob), received, complete: true };
    } finally {
      this.writing.delete(blobId);
    }
  }

  /** A complete blob for a download by any signed-in account (the 128-bit id is the capability); else not_found. */
  async readable(blobId: string): Promise<BlobRecord> {
    const blob = await this.store.get(blobId);
    if (!blob || blob.completedAt === null) throw new RelayError('not_found', 'no such blob');
    return blob;
  }

  read(blobId: string, start: number, end: number): Readable {
    return this.store.read(blobId, start, end);
  }

  async delete(auth: AccessClaims, blobId: string): Promise<void> {
    await this.own(auth, blobId);
    await this.store.delete([blobId]);
  }

  /** A stored send names blobs: the sender's own complete ones are linked to it (others' and unknown ids ignored). */
  async link(auth: AccessClaims, blobIds: string[], messageId: string, ts: number): Promise<void> {
    await this.store.link(auth.userId, auth.deviceId, blobIds, messageId, ts);
  }

  /** Grace for blobs whose messages were all acknowledged, then deletion of every expired blob. */
  async sweep(): Promise<BlobSweepResult> {
    const now = this.now();
    const graced = await this.store.settleLinks(now + LIMITS.blobGraceHours * HOUR_MS);
    const expired = await this.store.sweep(now);
    return { graced, expired };
  }

  private async own(auth: AccessClaims, blobId: string): Promise<BlobRecord> {
    const blob = await this.store.get(blobId);
    if (!blob || blob.owner !== auth.userId) throw new RelayError('not_found', 'no such blob');
    return blob;
  }

  private async digestOf(blobId: string, size: number): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of this.store.read(blobId, 0, size - 1)) hash.update(chunk as Uint8Array);
    return hash.digest('base64url');
  }
}

function statusOf(blob: BlobRecord): BlobStatus {
  return {
    blobId: blob.blobId,
    size: blob.size,
    received: blob.received,
    complete: blob.completedAt !== null,
    chunkBytes: LIMITS.blobChunkBytes,
  };
}

/** The limits of one data request: at most a chunk, and never past the blob's size. */
function checkLength(bytes: number, room: number): void {
  if (bytes > LIMITS.blobChunkBytes) {
    throw new RelayError('payload_too_large', `one request carries at most ${LIMITS.blobChunkBytes} bytes`);
  }
  if (bytes > room) throw new RelayError('invalid_input', 'the bytes go past the size of the blob');
}

/** Passes the body on while it keeps within the limits; a body that breaks off becomes BodyCutOff. */
async function* limited(
  body: AsyncIterable<Uint8Array>,
  room: number,
  declaredLength: number | undefined,
): AsyncGenerator<Uint8Array> {
  let bytes = 0;
  try {
    for await (const chunk of body) {
      bytes += chunk.length;
      checkLength(bytes, room);
      yield chunk;
    }
  } catch (err) {
    throw err instanceof RelayError ? err : new BodyCutOff();
  }
  // Fewer bytes than announced: the connection broke off; none of them are kept.
  if (declaredLength !== undefined && bytes !== declaredLength) throw new BodyCutOff();
}
