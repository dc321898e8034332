// The bcrypt queue: every password hash and comparison runs through it, at most `concurrency` at a time, taken from
// the waiting addresses in turn, and one address never holds more than `concurrency - 1` of the running slots (one
// when concurrency is 1 or 2). So one address that floods sign-ins or sign-ups waits behind itself, and a sign-in
// from elsewhere starts at once, or after one hash per other address in line.
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
  /** Running tasks per address. */
  private readonly runningOf = new Map<string, number>();
  private readonly maxRunningPerAddress: number;

  constructor(private readonly o: HashQueueOptions) {
    this.maxRunningPerAddress = Math.max(1, o.concurrency - 1);
  }

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
      const address = this.nextAddress();
      if (address === undefined) return;
      const list = this.waiting.get(address);
      const task = list?.shift();
      this.waiting.delete(address);
      if (list && list.length > 0) this.waiting.set(address, list); // to the back of the line
      if (!task) continue;
      this.queued--;
      this.running++;
      this.runningOf.set(address, (this.runningOf.get(address) ?? 0) + 1);
      task
        .run()
        .then(task.resolve, task.reject)
        .finally(() => {
          this.running--;
          const running = (this.runningOf.get(address) ?? 1) - 1;
          if (running > 0) this.runningOf.set(address, running);
          else this.runningOf.delete(address);
          const left = (this.held.get(address) ?? 1) - 1;
          if (left > 0) this.held.set(address, left);
          else this.held.delete(address);
          this.next();
        });
    }
  }

  /** The first address in line that may start one more hash. */
  private nextAddress(): string | undefined {
    for (const address of this.waiting.keys()) {
      if ((this.runningOf.get(address) ?? 0) < this.maxRunningPerAddress) return address;
    }
    return undefined;
  }
}
