// The bcrypt queue: every password hash and comparison runs through it, at most `concurrency` at a time, taken from
// the waiting addresses in turn. One address that floods sign-ins or sign-ups waits behind itself, and everyone
// else waits at most for the hashes already running plus one per other address in line.
import { RelayError } from '../errors.js';

export interface HashQueueOptions {
  /** Hashes running at once (bcrypt runs on libuv's thread pool; more than the cores only slows each one). */
  concurrency: number;
  /** Hashes one address may have running or waiting; more are refused at once. */
  perAddress: number;
  /** Hashes waiting in all; more are refused at once. */
  maxQueued: number;
}

interface Task {
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class HashQueue {
  private running = 0;
  private queued = 0;
  /** Waiting tasks per address; Map order is the turn order (an address that got a turn goes to the back). */
  private readonly waiting = new Map<string, Task[]>();
  /** Running plus waiting tasks per address. */
  private readonly held = new Map<string, number>();

  constructor(private readonly o: HashQueueOptions) {}

  /** Hashes waiting now (for metrics and tests). */
  get length(): number {
    return this.queued;
  }

  /**
   * Runs `fn` when its turn comes. Throws `rate_limited` at once when `address` already holds its share or the
   * queue is full: nothing of `fn` runs then.
   */
  run<T>(address: string, fn: () => Promise<T>): Promise<T> {
    const held = this.held.get(address) ?? 0;
    if (held >= this.o.perAddress || this.queued >= this.o.maxQueued) {
      return Promise.reject(
        new RelayError('rate_limited', 'too many sign-in or sign-up checks are waiting; try again shortly', {
          retryAfterSeconds: 1,
        }),
      );
    }
    this.held.set(address, held + 1);
    return new Promise<T>((resolve, reject) => {
      const task: Task = { run: fn, resolve: resolve as (value: unknown) => void, reject };
      const list = this.waiting.get(address);
      if (list) list.push(task);
      else this.waiting.set(address, [task]);
      this.queued++;
      this.next();
    });
  }

  private next(): void {
    while (this.running < this.o.concurrency) {
      const first = this.waiting.entries().next();
      if (first.done) return;
      const [address, list] = first.value;
      const task = list.shift();
      this.waiting.delete(address);
      if (list.length > 0) this.waiting.set(address, list); // to the back of the line
      if (!task) continue;
      this.queued--;
      this.running++;
      task
        .run()
        .then(task.resolve, task.reject)
        .finally(() => {
          this.running--;
          const left = (this.held.get(address) ?? 1) - 1;
          if (left > 0) this.held.set(address, left);
          else this.held.delete(address);
          this.next();
        });
    }
  }
}
