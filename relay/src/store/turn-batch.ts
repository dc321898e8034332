// Device activity times, gathered: a reconnect storm (every device of a restarted relay connects again within
// seconds) would otherwise write one record per connection. The times of one turn of the event loop are written
// together, the latest per device, and each caller's promise settles with that write. One write at a time: what
// arrives while one is on its way is gathered for the next (a MongoDB server gets one request at a time from here).

/** Keyed times (the latest per key) gathered over one turn of the event loop, then written by `write` in one go. */
export class TurnBatch {
  private pending = new Map<string, number>();
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  /** The writes so far, one after the other. */
  private chain: Promise<void> = Promise.resolve();
  /** A write is queued and has not taken what is gathered yet. */
  private queued = false;
  private closed = false;

  constructor(private readonly write: (times: ReadonlyMap<string, number>) => void | Promise<void>) {}

  /** Adds a time for `key`; resolves once a write with it (or a later one) is done. Refused after close(). */
  add(key: string, at: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    const pending = this.pending.get(key);
    if (pending === undefined || pending < at) this.pending.set(key, at);
    if (!this.queued) {
      this.queued = true;
      setImmediate(() => {
        this.chain = this.chain.then(() => this.flush());
      });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Writes what is still gathered, after the writes on their way, and refuses any more (the store is closing). */
  close(): Promise<void> {
    this.closed = true;
    this.chain = this.chain.then(() => this.flush());
    return this.chain;
  }

  private async flush(): Promise<void> {
    this.queued = false;
    const times = this.pending;
    const waiters = this.waiters;
    if (waiters.length === 0) return;
    this.pending = new Map();
    this.waiters = [];
    try {
      await this.write(times);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      for (const waiter of waiters) waiter.reject(error);
      return;
    }
    for (const waiter of waiters) waiter.resolve();
  }
}
