// The messages between the main thread and the SQLite writer worker (one structured-clone message per batch).
import type { RawOutcome } from './write-outcomes.js';
import type { Synchronous } from './writer.js';
import type { WriteBatch } from '../store.js';

export interface WriterWorkerData {
  file: string;
  synchronous: Synchronous;
}

export type ToWriter =
  /** `batch`'s bodies are views into one ArrayBuffer, transferred with the message. */
  | { type: 'batch'; id: number; batch: WriteBatch; now: number }
  | { type: 'forgetPruned' }
  | { type: 'forgetUsage' }
  /** Ends the worker's thread, as a crash would, when the next batch arrives: before it begins or after its COMMIT. */
  | { type: 'dangerousTestOnlyExit'; when: 'before-commit' | 'after-commit' }
  /** Closes the connection and ends the thread (after every batch sent before it). */
  | { type: 'close' };

export type FromWriter =
  | { type: 'done'; id: number; outcomes: RawOutcome[] }
  /** The transaction was rolled back. */
  | { type: 'failed'; id: number; message: string };
