// KeyedSerialQueue: runs tasks one at a time per key (per peer), so two sends or receives never race on a session.

/**
 * Serializes async work per key. Owned by the object whose state it protects (one per engine), never global.
 * A failed task does not block the tasks queued after it.
 */
export class KeyedSerialQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(task, task);
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

  /** Number of keys with pending work (for tests and diagnostics). */
  get activeKeys(): number {
    return this.#tails.size;
  }
}
