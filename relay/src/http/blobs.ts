// The blob routes (issue #15; relay/PROTOCOL.md "Blobs"): create an upload, append raw bytes at an offset, read its
// status, download a complete blob (whole or from a byte Range), delete an own blob. Data request bodies are never
// parsed or buffered: app.ts keeps the JSON parser off them and BlobService streams them to the store.
import { Router } from 'express';
import type { Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { RelayError } from '../errors.js';
import { LIMITS, blobCreateSchema, blobDataQuery, blobParams } from '../protocol.js';
import type { BlobOffsetAnswer } from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import { UploadOffsetError } from '../service/blobs.js';
import type { BlobService } from '../service/blobs.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

/** The path of a data request: app.ts keeps the body parsers off it. */
export const BLOB_DATA_PATH = /^\/blobs\/[^/]+\/data$/;

/** `bytes=N-` or `bytes=N-M`; anything else (several ranges, suffix ranges) is ignored: the whole blob is sent. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const match = /^bytes=(\d{1,16})-(\d{0,16})$/.exec(header.trim());
  if (!match) return null;
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

function downloadHeaders(res: Response, length: number): void {
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Disposition', 'attachment');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Length', String(length));
}

export function blobsRoutes(accounts: AccountService, blobs: BlobService): Router {
  const router = Router();
  const auth = requireAuth(accounts);

  router.post('/blobs', auth, async (req, res) => {
    // A well-formed size over the cap is payload_too_large (the schema alone would say invalid_input).
    const size: unknown = (req.body as { size?: unknown } | undefined)?.size;
    if (typeof size === 'number' && Number.isInteger(size) && size > LIMITS.blobMaxBytes) {
      throw new RelayError('payload_too_large', `a blob is at most ${LIMITS.blobMaxBytes} bytes`);
    }
    const body = parseInput(blobCreateSchema, req.body, 'body');
    res.status(201).json(await blobs.create(authOf(res), body));
  });

  router.put('/blobs/:blobId/data', auth, async (req, res) => {
    const { blobId } = parseInput(blobParams, req.params, 'params');
    const { offset } = parseInput(blobDataQuery, req.query, 'query');
    const length = req.headers['content-length'];
    const declared = length !== undefined && /^\d{1,16}$/.test(length) ? Number(length) : undefined;
    try {
      res.json(await blobs.write(authOf(res), blobId, offset, req, declared));
    } catch (err) {
      if (!(err instanceof UploadOffsetError)) throw err;
      const answer: BlobOffsetAnswer = {
        error: { code: 'upload_offset', message: err.message },
        blob: err.blob,
      };
      res.status(err.status).json(answer);
    }
  });

  router.get('/blobs/:blobId/status', auth, async (req, res) => {
    const { blobId } = parseInput(blobParams, req.params, 'params');
    res.json(await blobs.status(authOf(res), blobId));
  });

  router.get('/blobs/:blobId', auth, async (req, res) => {
    const { blobId } = parseInput(blobParams, req.params, 'params');
    const blob = await blobs.readable(blobId);
    const range = parseRange(req.headers.range, blob.size);
    if (range === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${blob.size}`);
      res.status(416).json({ error: { code: 'invalid_input', message: 'the range is outside the blob' } });
      return;
    }
    const { start, end } = range ?? { start: 0, end: blob.size - 1 };
    downloadHeaders(res, end - start + 1);
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${start}-${end}/${blob.size}`);
    }
    // A client that goes away mid-download ends the pipeline with an error; there is nobody left to answer.
    await pipeline(blobs.read(blobId, start, end), res).catch(() => res.destroy());
  });

  router.delete('/blobs/:blobId', auth, async (req, res) => {
    const { blobId } = parseInput(blobParams, req.params, 'params');
    await blobs.delete(authOf(res), blobId);
    res.status(204).end();
  });

  return router;
}
