// Blobs of the MongoDB store (issue #15): not yet implemented.
import type { Readable } from 'node:stream';
import type { BlobRecord, BlobStore, NewBlob } from '../store.js';

const missing = (): Error => new Error('attachment blobs are not implemented on the MongoDB store yet');

export class MongoBlobs implements BlobStore {
  create(_blob: NewBlob, _quota: number): Promise<'created' | 'quota_exceeded'> {
    return Promise.reject(missing());
  }
  get(_blobId: string): Promise<BlobRecord | null> {
    return Promise.resolve(null);
  }
  write(_blobId: string, _offset: number, _source: AsyncIterable<Uint8Array>): Promise<number> {
    return Promise.reject(missing());
  }
  read(_blobId: string, _start: number, _end: number): Readable {
    throw missing();
  }
  complete(): Promise<void> {
    return Promise.reject(missing());
  }
  delete(): Promise<void> {
    return Promise.resolve();
  }
  link(): Promise<string[]> {
    return Promise.resolve([]);
  }
  settleLinks(): Promise<number> {
    return Promise.resolve(0);
  }
  sweep(): Promise<number> {
    return Promise.resolve(0);
  }
  usage(): Promise<number> {
    return Promise.resolve(0);
  }
}
