// Attachments (issue #15): seal a file with a fresh key and upload the ciphertext to the relay's blob store; fetch,
// check and open one. The key, digest, name and type travel only inside the end-to-end encrypted message.
//
// Bounded memory on upload: the relay wants the ciphertext's SHA-256 when the upload is created, and WebCrypto has
// no incremental digest. Sealing is deterministic for a given key and header (see AttachmentSealer), so the file is
// sealed twice — once to hash (libsodium's incremental SHA-256), once to upload — and at most one request body
// (≤ the relay's chunkBytes, 8 MiB) is held at a time. Sealing costs far less than the upload it precedes.
// On download the ciphertext is collected into a Blob (which browsers may keep on disk), hashed as it arrives, and
// nothing is decrypted until the whole blob matches the message's digest.

import type { Attachment } from './schemas';
import type { Crypto } from './crypto-loader';
import type { RelayApi } from './api';
import { assertTest } from './context';
import { ClientError } from './errors';
import { isInlineImage, safeMimeType, sanitizeFileName } from './attachment-names';
import { blobStatusSchema, errorAnswerSchema, type BlobStatus } from '@weconnect/relay/protocol';

/** File bytes read per slice (`blob.slice().arrayBuffer()`). */
const READ_BYTES = 1024 * 1024;
/** Largest upload request body, whatever the relay allows. */
const MAX_REQUEST_BYTES = 8 * 1024 * 1024;
/** Downloaded ciphertext is gathered into Blob parts of this size. */
const GATHER_BYTES = 4 * 1024 * 1024;
/** Tries per request (upload chunk, download stream) before giving up; backoff doubles from BACKOFF_MS. */
const MAX_TRIES = 5;
const BACKOFF_MS = 250;
/** Thumbnails: the longest side, and the most base64url characters a message carries. */
const THUMB_PX = 128;
const THUMB_MAX_CHARS = 16_000;

/** 0 to 1: how far an upload or download has come. */
export type ProgressFn = (fraction: number) => void;

/** The engine's attachment API (`engine.attachments`). */
export interface AttachmentsApi {
  /** Seals and uploads a file; the result goes into `send(conv, text, { attachments })`. */
  upload(file: Blob, onProgress?: ProgressFn, options?: { name?: string; type?: string }): Promise<Attachment>;
  /** Downloads, checks the digest, decrypts and unpads; a Blob typed only for inline image types. */
  download(att: Attachment, onProgress?: ProgressFn): Promise<Blob>;
}

export interface AttachmentsDeps {
  crypto: Crypto;
  api: RelayApi;
  /** The network; tests pass one that breaks a request half-way to exercise resuming. */
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

/** Refused: the relay served other bytes than the sender sealed (or a message named a wrong digest). */
export function attachmentRejected(why: string): ClientError {
  return new ClientError('decrypt_failed', `This attachment was refused: ${why}. It may have been tampered with.`);
}

async function* slices(file: Blob, size = READ_BYTES): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < file.size; at += size) {
    yield new Uint8Array(await file.slice(at, Math.min(file.size, at + size)).arrayBuffer());
  }
}

export class Attachments implements AttachmentsApi {
  readonly #c: Crypto;
  readonly #api: RelayApi;
  readonly #fetch: typeof fetch;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(deps: AttachmentsDeps) {
    this.#c = deps.crypto;
    this.#api = deps.api;
    this.#fetch = deps.fetch ?? ((input, init) => fetch(input, init));
    this.#sleep = deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /**
   * Test-only: the same parts over another network (one that breaks a request half-way) and clock for backoff.
   * Throws outside tests.
   */
  dangerousTestOnlyWithNetwork(fetchImpl: typeof fetch, sleep: (ms: number) => Promise<void>): Attachments {
    assertTest();
    return new Attachments({ crypto: this.#c, api: this.#api, fetch: fetchImpl, sleep });
  }

  async upload(
    file: Blob,
    onProgress?: ProgressFn,
    options: { name?: string; type?: string } = {},
  ): Promise<Attachment> {
    const c = this.#c;
    if (file.size > c.ATTACHMENT_MAX_BYTES) {
      throw new ClientError('invalid_input', `Files are at most ${c.ATTACHMENT_MAX_BYTES / 1024 / 1024} MB.`);
    }
    const rawName = options.name ?? (typeof File !== 'undefined' && file instanceof File ? file.name : 'file');
    const type = safeMimeType(options.type ?? file.type);
    const key = c.generateAttachmentKey();
    const header = c.generateAttachmentHeader();
    const sealedSize = c.attachmentSealedSize(file.size);
    // Weights of the two passes in the progress bar: hashing is local and fast, the upload is the wait.
    const report = (pass: 0 | 1, done: number) =>
      onProgress?.(pass === 0 ? (done / sealedSize) * 0.2 : 0.2 + (done / sealedSize) * 0.8);
    try {
      // Pass 1: the digest.
      const sha = new c.Sha256();
      let hashed = 0;
      for await (const piece of this.#sealed(file, key, header)) {
        sha.update(piece);
        hashed += piece.length;
        report(0, hashed);
      }
      const digest = sha.digest();
      const created = await this.#api.call('POST', '/api/blobs', blobStatusSchema, {
        size: sealedSize,
        sha256: c.toBase64Url(digest),
      });
      // Pass 2: the same bytes again, uploaded in requests of at most chunkBytes.
      const limit = Math.min(created.chunkBytes, MAX_REQUEST_BYTES);
      let body = new Uint8Array(limit);
      let filled = 0;
      let offset = 0;
      for await (const piece of this.#sealed(file, key, header)) {
        let at = 0;
        while (at < piece.length) {
          const n = Math.min(piece.length - at, limit - filled);
          body.set(piece.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled === limit) {
            offset = await this.#put(created.blobId, offset, body.subarray(0, filled));
            report(1, offset);
            body = new Uint8Array(limit);
            filled = 0;
          }
        }
      }
      if (filled > 0) offset = await this.#put(created.blobId, offset, body.subarray(0, filled));
      report(1, offset);
      const attachment: Attachment = {
        blobId: created.blobId,
        key: c.toBase64Url(key),
        digest: c.toBase64Url(digest),
        size: file.size,
        type,
        name: sanitizeFileName(rawName),
        ...(isInlineImage(type) ? await imageInfo(file, c) : {}),
      };
      return attachment;
    } finally {
      c.wipe(key);
    }
  }

  async download(att: Attachment, onProgress?: ProgressFn): Promise<Blob> {
    const c = this.#c;
    const total = c.attachmentSealedSize(att.size);
    const sha = new c.Sha256();
    const parts: Blob[] = [];
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let received = 0;
    for (let attempt = 0; received < total; attempt++) {
      try {
        const res = await this.#authed('GET', `/api/blobs/${att.blobId}`, {
          headers: received > 0 ? { range: `bytes=${received}-` } : {},
        });
        if (!res.ok) throw await errorOf(res);
        if (received > 0 && res.status !== 206)
          throw new ClientError('relay_error', 'The relay did not resume the download.');
        if (!res.body) throw new ClientError('relay_error', 'The relay sent no attachment bytes.');
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read().catch((cause: unknown) => {
            throw new ClientError('relay_unreachable', 'The download broke off.', { cause });
          });
          if (done) break;
          if (received + value.length > total) throw attachmentRejected('the relay sent more bytes than the file has');
          sha.update(value);
          pending.push(value);
          pendingBytes += value.length;
          received += value.length;
          if (pendingBytes >= GATHER_BYTES) {
            parts.push(new Blob(pending as BlobPart[]));
            pending = [];
            pendingBytes = 0;
          }
          onProgress?.((received / total) * 0.9);
        }
        if (received < total) throw new ClientError('relay_unreachable', 'The download stopped early.');
      } catch (error) {
        if (!retryable(error) || attempt + 1 >= MAX_TRIES) throw error;
        await this.#sleep(BACKOFF_MS * 2 ** attempt);
      }
    }
    parts.push(new Blob(pending as BlobPart[]));
    pending = [];
    // Nothing is decrypted, let alone shown, until the whole ciphertext is the one the sender sealed.
    if (!c.constantTimeEqual(sha.digest(), c.fromBase64Url(att.digest, 32, 'digest'))) {
      throw attachmentRejected('its bytes do not match the digest in the message');
    }
    const sealed = new Blob(parts);
    const opener = new c.AttachmentOpener(c.fromBase64Url(att.key, 32, 'key'), att.size);
    const plain: Blob[] = [];
    let opened = 0;
    try {
      for await (const piece of slices(sealed)) {
        const out = opener.write(piece);
        if (out.length > 0) plain.push(new Blob(out as BlobPart[]));
        opened += piece.length;
        onProgress?.(0.9 + (opened / total) * 0.1);
      }
      opener.finish();
    } catch (error) {
      if (error instanceof Error && 'code' in error && error.code === 'decrypt_failed') {
        throw attachmentRejected('it does not open with the key in the message');
      }
      throw error;
    }
    // Only raster image types keep their type: an object URL of text/html or SVG would run in our origin.
    const type = isInlineImage(att.type) ? safeMimeType(att.type) : 'application/octet-stream';
    return new Blob(plain, { type });
  }

  /** The sealed blob, piece by piece, for `file` under `key` and `header` (deterministic). */
  async *#sealed(file: Blob, key: Uint8Array, header: Uint8Array): AsyncGenerator<Uint8Array> {
    const sealer = new this.#c.AttachmentSealer(key, file.size, header);
    let read = 0;
    for await (const s of slices(file)) {
      read += s.length;
      if (read > file.size) break;
      yield* sealer.write(s);
    }
    yield* sealer.finish();
  }

  /**
   * Uploads `bytes` at `offset`; returns the relay's new `received`. After a failed request it asks the relay how
   * much arrived and sends only the rest, with backoff.
   */
  async #put(blobId: string, offset: number, bytes: Uint8Array): Promise<number> {
    const end = offset + bytes.length;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.#authed('PUT', `/api/blobs/${blobId}/data?offset=${offset}`, {
          headers: { 'content-type': 'application/octet-stream' },
          // A Blob, not the bytes: Chromium uploads an 8 MiB ArrayBuffer body about 10x slower (measured here).
          body: new Blob([bytes as BlobPart]),
        });
        const json: unknown = await res.json().catch(() => null);
        if (res.ok) {
          const answer = blobStatusSchema.safeParse(json);
          if (!answer.success) throw new ClientError('relay_error', 'Unexpected answer from the relay for an upload');
          return answer.data.received;
        }
        // 409 upload_offset: the relay holds another number of bytes than we thought (an earlier try got through).
        if (res.status !== 409) throw errorFrom(res, json);
      } catch (error) {
        if (!retryable(error) || attempt + 1 >= MAX_TRIES) throw error;
        await this.#sleep(BACKOFF_MS * 2 ** attempt);
      }
      const status: BlobStatus = await this.#api.call('GET', `/api/blobs/${blobId}/status`, blobStatusSchema);
      if (status.received >= end || status.complete) return status.received;
      if (status.received < offset) throw new ClientError('relay_error', 'The relay lost part of the upload.');
      bytes = bytes.subarray(status.received - offset);
      offset = status.received;
    }
  }

  /** fetch with the access token; one retry after a refresh on 401. */
  async #authed(method: string, path: string, init: RequestInit): Promise<Response> {
    const go = async (token: string) => {
      try {
        return await this.#fetch(new URL(path, this.#api.base), {
          ...init,
          method,
          headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` },
        });
      } catch (cause) {
        throw new ClientError('relay_unreachable', 'The relay is unreachable. Check your connection.', { cause });
      }
    };
    const res = await go(await this.#api.tokens.access());
    if (res.status !== 401) return res;
    return go(await this.#api.tokens.refresh());
  }
}

/** Network failures and the relay's 5xx are worth another try; answers about the request itself are not. */
function retryable(error: unknown): boolean {
  return error instanceof ClientError && (error.code === 'relay_unreachable' || error.code === 'rate_limited');
}

async function errorOf(res: Response): Promise<ClientError> {
  return errorFrom(res, await res.json().catch(() => null));
}

function errorFrom(res: Response, json: unknown): ClientError {
  const parsed = errorAnswerSchema.safeParse(json);
  const message = parsed.success ? parsed.data.error.message : `The relay answered ${res.status}`;
  if (res.status === 404) return new ClientError('not_found', 'This attachment is no longer on the relay.');
  if (res.status === 429) return new ClientError('rate_limited', message);
  if (res.status >= 500 && res.status !== 507) return new ClientError('relay_unreachable', message);
  if (parsed.success && parsed.data.error.code === 'quota_exceeded') {
    return new ClientError('invalid_input', 'Your attachment storage on the relay is full. Try again later.');
  }
  return new ClientError('relay_error', message);
}

/**
 * Width, height and a small JPEG thumbnail (base64url, ≤ 16,000 characters) of an image, where the browser can
 * decode it; nothing in Node or for an image it cannot decode (the message then shows the image once downloaded).
 */
async function imageInfo(file: Blob, c: Crypto): Promise<Pick<Attachment, 'width' | 'height' | 'thumbnail'>> {
  if (typeof createImageBitmap !== 'function' || typeof OffscreenCanvas !== 'function') return {};
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return {};
  }
  try {
    const { width, height } = bitmap;
    if (width < 1 || height < 1 || width > 65_535 || height > 65_535) return {};
    for (const [px, quality] of [
      [THUMB_PX, 0.7],
      [96, 0.6],
      [64, 0.5],
    ] as const) {
      const scale = Math.min(1, px / Math.max(width, height));
      const canvas = new OffscreenCanvas(
        Math.max(1, Math.round(width * scale)),
        Math.max(1, Math.round(height * scale)),
      );
      const g = canvas.getContext('2d');
      if (!g) return { width, height };
      g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const jpeg = await canvas.convertToBlob({ type: 'image/jpeg', quality });
      const thumbnail = c.toBase64Url(new Uint8Array(await jpeg.arrayBuffer()));
      if (thumbnail.length <= THUMB_MAX_CHARS) return { width, height, thumbnail };
    }
    return { width, height };
  } finally {
    bitmap.close();
  }
}
