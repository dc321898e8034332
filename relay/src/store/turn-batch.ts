// Device activity times, gathered: a reconnect storm (every device of a restarted relay connects again within
// seconds) would otherwise write one record per connection. The times of one turn of the event loop are written
// together, the latest per device, and each caller's promise settles with that write.

/** Keyed times (the latest per key) gathered over one turn of the event loop, then written by `write` in one go. */
export class TurnBatch {
  private pending = new Map<string, number>();
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private closed = false;

  constructor(private readonly write: (times: ReadonlyMap<string, number>) => void | Promise<void>) {}

  /** Adds a time for `key`; resolves once a write with it (or a later one) is done. Refused after close(). */
  add(key: string, at: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    const pending = this.pending.get(key);
    if (pending === undefined || pending < at) this.pending.set(key, at);
    return new Promise((resolve, reject) => {
      if (this.waiters.length === 0) setImmediate(() => void this.flush());
      this.waiters.push({ resolve, reject });
    });
  }

  /** Writes what is still gathered and refuses any more (the store is closing). */
  close(): Promise<void> {
    this.closed = true;
    return this.flush();
  }

  private async flush(): Promise<void> {
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
