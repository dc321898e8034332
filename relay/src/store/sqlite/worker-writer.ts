// The main thread's side of the SQLite writer worker: hands each write batch to the worker in one message (bodies
// packed into one transferred buffer), and answers the batch when the worker reports its COMMIT. The main thread
// keeps framing and routing while the worker commits; the write batcher gathers the next batch meanwhile.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { toOutcomes } from './write-outcomes.js';
import type { SqliteWriter } from './writer.js';
import type { FromWriter, ToWriter, WriterWorkerData } from './writer-messages.js';
import { WriterLostError } from '../store.js';
import type { SendOutcome, SendRequest, WriteBatch } from '../store.js';

interface InFlight {
  sends: SendRequest[];
  resolve: (outcomes: SendOutcome[]) => void;
  reject: (err: Error) => void;
}

/**
 * Starts the worker. From the TypeScript sources (tests, `tsx`), the worker registers tsx's loader before it imports
 * writer-worker.ts (a worker thread does not inherit the loader hooks of its parent on Node 20); from dist, it is
 * writer-worker.js.
 */
function startWorker(data: WriterWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./writer-worker.js', import.meta.url), { workerData: data });
  const require = createRequire(import.meta.url);
  const tsxApi = pathToFileURL(join(dirname(require.resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
  const entry = new URL('./writer-worker.ts', import.meta.url).href;
  const code = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true, workerData: data });
}

/**
 * Copies every body of the batch into one ArrayBuffer and returns the batch with views into it: structured clone
 * would otherwise copy the whole buffer behind each body (often a larger socket frame), once per distinct buffer.
 */
function pack(batch: WriteBatch): { batch: WriteBatch; buffer: ArrayBuffer } {
  let total = 0;
  for (const send of batch.sends) {
    if (send.target.kind === 'group') total += send.target.body.length;
    else for (const env of send.target.envelopes) total += env.body.length;
  }
  const buffer = new ArrayBuffer(total);
  const bytes = new Uint8Array(buffer);
  let offset = 0;
  const view = (body: Uint8Array): Uint8Array => {
    bytes.set(body, offset);
    const copy = new Uint8Array(buffer, offset, body.length);
    offset += body.length;
    return copy;
  };
  const sends: SendRequest[] = new Array<SendRequest>(batch.sends.length);
  for (let i = 0; i < batch.sends.length; i++) {
    const send = batch.sends[i] as SendRequest;
    const t = send.target;
    sends[i] = {
      senderUserId: send.senderUserId,
      senderDeviceId: send.senderDeviceId,
      id: send.id,
      target:
        t.kind === 'group'
          ? { kind: 'group', groupId: t.groupId, body: view(t.body) }
          : { kind: 'direct', envelopes: t.envelopes.map((env) => ({ to: env.to, body: view(env.body) })) },
    };
  }
  const packed: WriteBatch = { sends, acks: batch.acks, lastSeen: batch.lastSeen };
  if (batch.caps) packed.caps = batch.caps;
  return { batch: packed, buffer };
}

export class WorkerWriter implements SqliteWriter {
  private worker: Worker | null = null;
  private readonly inFlight = new Map<number, InFlight>();
  private nextId = 1;
  private closed = false;
  /** Times the worker stopped without being asked to (for tests and logs). */
  exits = 0;

  constructor(private readonly data: WriterWorkerData) {
    this.worker = this.start();
  }

  apply(batch: WriteBatch, now: number): Promise<SendOutcome[]> {
    if (this.closed) return Promise.reject(new WriterLostError('the SQLite writer is closed'));
    const worker = this.worker ?? (this.worker = this.start());
    const id = this.nextId++;
    const { batch: packed, buffer } = pack(batch);
    return new Promise<SendOutcome[]>((resolve, reject) => {
      this.inFlight.set(id, { sends: batch.sends, resolve, reject });
      if (this.inFlight.size === 1) worker.ref();
      const message: ToWriter = { type: 'batch', id, batch: packed, now };
      worker.postMessage(message, [buffer]);
    });
  }

  forgetDevices(): void {
    // Nothing to do: the worker's device cache starts over when PRAGMA data_version shows another connection's commit.
  }

  forgetPruned(): void {
    this.post({ type: 'forgetPruned' });
  }

  forgetUsage(): void {
    // Batches posted before this one may still count the deleted entries: too high a figure, so the caps hold.
    this.post({ type: 'forgetUsage' });
  }

  /**
   * The worker's thread ends, as a crash would, when the next batch reaches it: before its transaction begins, or
   * after its COMMIT and before the outcomes are posted. That batch fails with WriterLostError. Tests only.
   */
  dangerousTestOnlyExitOnNextBatch(when: 'before-commit' | 'after-commit'): void {
    if (process.env.VITEST === undefined) throw new Error('dangerousTestOnlyExitOnNextBatch is for tests only');
    (this.worker ?? (this.worker = this.start())).postMessage({
      type: 'dangerousTestOnlyExit',
      when,
    } satisfies ToWriter);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    // The worker handles messages in order: every batch already sent commits before the close.
    this.post({ type: 'close' });
    worker.ref();
    await exited;
  }

  private post(message: ToWriter): void {
    this.worker?.postMessage(message);
  }

  private start(): Worker {
    const worker = startWorker(this.data);
    // Idle, the worker does not keep the process alive; a batch in flight does (ref() in apply).
    worker.unref();
    let failure: Error | undefined;
    worker.on('message', (message: FromWriter) => this.settle(worker, message));
    worker.on('error', (err) => {
      failure = err;
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = null;
      if (!this.closed || this.inFlight.size > 0) this.exits++;
      const reason = failure ? `: ${failure.message}` : '';
      const lost = new WriterLostError(`the SQLite writer stopped (exit code ${code})${reason}`);
      for (const f of this.inFlight.values()) f.reject(lost);
      this.inFlight.clear();
    });
    return worker;
  }

  private settle(worker: Worker, message: FromWriter): void {
    const f = this.inFlight.get(message.id);
    if (!f) return;
    this.inFlight.delete(message.id);
    if (this.inFlight.size === 0) worker.unref();
    if (message.type === 'failed') {
      f.reject(new Error(message.message));
      return;
    }
    try {
      f.resolve(toOutcomes(f.sends, message.outcomes));
    } catch (err) {
      f.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
