// Blobs of the SQLite store (migration 012): metadata in the database, bytes in one file per blob under
// `dir`/<first two characters of the id>/<id>. A write streams its source into the file at `received`, fsyncs it,
// and only then records the new `received`: the database never counts a byte the file may lose. A failed write
// truncates the file back, so a blob's file holds exactly its `received` bytes whenever no write is running.
import { constants, createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type BetterSqlite3 from 'better-sqlite3';
import type { BlobRecord, BlobStore, NewBlob } from '../store.js';
import { immediate } from './statements.js';
import type { Prepare } from './statements.js';

interface BlobRow {
  blob_id: string;
  owner: string;
  size: number;
  received: number;
  sha256: string;
  created_at: number;
  completed_at: number | null;
  expires_at: number;
}

const toRecord = (r: BlobRow): BlobRecord => ({
  blobId: r.blob_id,
  owner: r.owner,
  size: r.size,
  received: r.received,
  sha256: r.sha256,
  createdAt: r.created_at,
  completedAt: r.completed_at,
  expiresAt: r.expires_at,
});

const marks = (n: number): string => new Array<string>(n).fill('?').join(',');
const CHUNK = 500;

export class SqliteBlobs implements BlobStore {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly prepare: Prepare,
    /** Where the files live (created on the first write). */
    readonly dir: string,
  ) {}

  /** The file of a blob. Ids are validated base64url (no separator), so the path stays inside `dir`. */
  pathOf(blobId: string): string {
    return join(this.dir, blobId.slice(0, 2), blobId);
  }

  create(blob: NewBlob, quota: number): Promise<'created' | 'quota_exceeded'> {
    return later(() =>
      immediate(this.db, (): 'created' | 'quota_exceeded' => {
        if (this.usageOf(blob.owner) + blob.size > quota) return 'quota_exceeded';
        this.prepare(
          `INSERT INTO blobs (blob_id, owner, size, received, sha256, created_at, expires_at)
           VALUES (?, ?, ?, 0, ?, ?, ?)`,
        ).run(blob.blobId, blob.owner, blob.size, blob.sha256, blob.now, blob.expiresAt);
        return 'created';
      })(),
    );
  }

  get(blobId: string): Promise<BlobRecord | null> {
    return later(() => {
      const row = this.prepare<[string], BlobRow>('SELECT * FROM blobs WHERE blob_id = ?').get(blobId);
      return row ? toRecord(row) : null;
    });
  }

  usage(owner: string): Promise<number> {
    return later(() => this.usageOf(owner));
  }

  async write(blobId: string, offset: number, source: AsyncIterable<Uint8Array>): Promise<number> {
    const path = this.pathOf(blobId);
    await mkdir(join(this.dir, blobId.slice(0, 2)), { recursive: true, mode: 0o700 });
    const file = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    let end = offset;
    try {
      await file.truncate(offset); // whatever a crashed write left past `received` goes
      try {
        for await (const chunk of source) {
          let done = 0;
          while (done < chunk.length) {
            const { bytesWritten } = await file.write(chunk, done, chunk.length - done, end + done);
            done += bytesWritten;
          }
          end += chunk.length;
        }
      } catch (err) {
        await file.truncate(offset);
        throw err;
      }
      await file.sync();
    } finally {
      await file.close();
    }
    const updated = this.prepare('UPDATE blobs SET received = ? WHERE blob_id = ? AND received = ?').run(
      end,
      blobId,
      offset,
    ).changes;
    if (updated === 0) {
      // Deleted (or expired) while the bytes were arriving: nothing may stay behind.
      await rm(path, { force: true });
      throw new Error('the blob went away during the write');
    }
    return end;
  }

  read(blobId: string, start: number, end: number): Readable {
    return createReadStream(this.pathOf(blobId), { start, end });
  }

  complete(blobId: string, now: number, expiresAt: number): Promise<void> {
    return later(() => {
      this.prepare('UPDATE blobs SET completed_at = ?, expires_at = ? WHERE blob_id = ? AND received = size').run(
        now,
        expiresAt,
        blobId,
      );
    });
  }

  async delete(blobIds: string[]): Promise<void> {
    this.deleteRows(blobIds);
    await this.removeFiles(blobIds);
  }

  link(owner: string, _senderDeviceId: string, blobIds: string[], messageId: string, ts: number): Promise<string[]> {
    return later(() =>
      immediate(this.db, () => {
        const ids = [...new Set(blobIds)];
        if (ids.length === 0) return [];
        const own = this.prepare<string[], { blob_id: string }>(
          `SELECT blob_id FROM blobs WHERE owner = ? AND completed_at IS NOT NULL AND blob_id IN (${marks(ids.length)})`,
        )
          .all(owner, ...ids)
          .map((r) => r.blob_id);
        const insert = this.prepare(
          'INSERT INTO blob_links (blob_id, message_id, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
        );
        for (const id of own) insert.run(id, messageId, ts);
        return own;
      })(),
    );
  }

  settleLinks(graceUntil: number): Promise<number> {
    return later(() =>
      immediate(this.db, () => {
        const done = this.prepare<[], { blob_id: string; message_id: string; ts: number }>(
          `SELECT blob_id, message_id, ts FROM blob_links l
           WHERE NOT EXISTS (SELECT 1 FROM mailbox m WHERE m.ts = l.ts AND m.message_id = l.message_id)`,
        ).all();
        if (done.length === 0) return 0;
        const drop = this.prepare('DELETE FROM blob_links WHERE blob_id = ? AND message_id = ? AND ts = ?');
        for (const l of done) drop.run(l.blob_id, l.message_id, l.ts);
        let shortened = 0;
        const shorten = this.prepare(
          `UPDATE blobs SET expires_at = ? WHERE blob_id = ? AND expires_at > ?
             AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.blob_id = blobs.blob_id)`,
        );
        for (const id of new Set(done.map((l) => l.blob_id))) {
          shortened += shorten.run(graceUntil, id, graceUntil).changes;
        }
        return shortened;
      })(),
    );
  }

  async sweep(now: number): Promise<number> {
    const ids = this.prepare<[number], { blob_id: string }>('SELECT blob_id FROM blobs WHERE expires_at <= ?')
      .all(now)
      .map((r) => r.blob_id);
    if (ids.length > 0) await this.delete(ids);
    await this.removeOrphans();
    return ids.length;
  }

  /**
   * Files without a row: a crash between deleting rows and their files leaves them (rows go first, so that no row
   * ever names a missing file of a complete blob). They take disk space no quota counts; the sweep removes them.
   */
  private async removeOrphans(): Promise<void> {
    let dirs: string[];
    try {
      dirs = await readdir(this.dir);
    } catch {
      return; // no blob was ever written
    }
    const known = this.prepare<[string], { n: number }>('SELECT 1 AS n FROM blobs WHERE blob_id = ?');
    for (const dir of dirs) {
      const names = await readdir(join(this.dir, dir)).catch(() => [] as string[]);
      for (const name of names) {
        if (!known.get(name)) await rm(join(this.dir, dir, name), { force: true });
      }
    }
  }

  /** The owner's blob ids (for deleteUser: the rows go by cascade, the files by removeFiles). */
  idsOf(owner: string): string[] {
    return this.prepare<[string], { blob_id: string }>('SELECT blob_id FROM blobs WHERE owner = ?')
      .all(owner)
      .map((r) => r.blob_id);
  }

  async removeFiles(blobIds: string[]): Promise<void> {
    for (const id of blobIds) await rm(this.pathOf(id), { force: true });
  }

  private deleteRows(blobIds: string[]): void {
    immediate(this.db, () => {
      for (let i = 0; i < blobIds.length; i += CHUNK) {
        const part = blobIds.slice(i, i + CHUNK);
        this.prepare(`DELETE FROM blobs WHERE blob_id IN (${marks(part.length)})`).run(...part);
      }
    })();
  }

  private usageOf(owner: string): number {
    return (
      this.prepare<[string], { n: number | null }>('SELECT SUM(size) AS n FROM blobs WHERE owner = ?').get(owner)?.n ??
      0
    );
  }
}

function later<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
