// KeyedSerialQueue: runs tasks one at a time per key (per peer), so two sends or receives never race on a session.

/**
 * Serializes async work per key. Owned by the object whose state it protects (one per engine), never global.
 * A failed task does not block the tasks queued after it.
 */
export class KeyedSerialQueue {
  readonly #tails = new Map<string, Promise<unknown>>();
  readonly #waiting = new Map<string, number>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    this.#waiting.set(key, (this.#waiting.get(key) ?? 0) + 1);
    const start = (): Promise<T> => {
      const left = (this.#waiting.get(key) ?? 1) - 1;
      if (left > 0) this.#waiting.set(key, left);
      else this.#waiting.delete(key);
      return task();
    };
    const next = previous.then(start, start);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }

  /** Tasks of `key` queued behind the running one, not started yet (for tests and diagnostics). */
  waiting(key: string): number {
    return this.#waiting.get(key) ?? 0;
  }

  /** Number of keys with pending work (for tests and diagnostics). */
  get activeKeys(): number {
    return this.#tails.size;
  }
}
