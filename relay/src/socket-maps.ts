// Socket.IO gives every connection three Maps: the client's sockets by id and by namespace, and the socket's
// callbacks for the acks it awaits. A Map holds a hash table of about 200 bytes even when empty or holding one entry.
// An idle relay connection has one namespace and awaits no ack (or one), so socket.ts swaps them for `SmallMap`.

/** `SmallMap.key` when it holds nothing. */
const NONE: unique symbol = Symbol('none');
/** `SmallMap.key` when `value` is a Map of all its entries. */
const MANY: unique symbol = Symbol('many');

/**
 * A Map that holds its one entry in two fields, and builds a real Map only while it holds two or more (40 bytes, where
 * a Map is about 250). Keys compare with `===` (a Map's SameValueZero differs only for NaN, which Socket.IO never uses
 * as an id or a namespace). Entries iterate in insertion order, as a Map's do, and may be deleted while iterating.
 */
export class SmallMap<K, V> implements Iterable<[K, V]> {
  // TypeScript-private, not `#`: a class with `#` methods stores a brand on each instance (8 bytes more).
  private key: K | typeof NONE | typeof MANY = NONE;
  private value: V | Map<K, V> | undefined;

  constructor(entries: Iterable<[K, V]> = []) {
    for (const [key, value] of entries) this.set(key, value);
  }

  get size(): number {
    return this.key === MANY ? this.many().size : this.key === NONE ? 0 : 1;
  }

  has(key: K): boolean {
    return this.key === MANY ? this.many().has(key) : this.key === key;
  }

  get(key: K): V | undefined {
    if (this.key === MANY) return this.many().get(key);
    return this.key === key ? (this.value as V) : undefined;
  }

  set(key: K, value: V): this {
    if (this.key === MANY) {
      this.many().set(key, value);
    } else if (this.key === NONE || this.key === key) {
      this.key = key;
      this.value = value;
    } else {
      this.value = new Map<K, V>().set(this.key, this.value as V).set(key, value);
      this.key = MANY;
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.key === MANY) {
      const many = this.many();
      const deleted = many.delete(key);
      if (many.size === 0) this.clear();
      return deleted;
    }
    if (this.key !== key) return false;
    this.clear();
    return true;
  }

  clear(): void {
    this.key = NONE;
    this.value = undefined;
  }

  *entries(): IterableIterator<[K, V]> {
    const key = this.key;
    if (key === MANY) yield* this.many().entries();
    else if (key !== NONE) yield [key, this.value as V];
  }

  *keys(): IterableIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  forEach(callback: (value: V, key: K, map: this) => void): void {
    for (const [key, value] of this.entries()) callback(value, key, this);
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  private many(): Map<K, V> {
    return this.value as Map<K, V>;
  }
}
