// Socket.IO gives every connection three Maps: the client's sockets by id and by namespace, and the socket's
// callbacks for the acks it awaits. A Map holds a hash table of about 200 bytes even when empty or holding one entry.
// An idle relay connection has one namespace and awaits no ack (or one), so socket.ts swaps them for `SmallMap`.
// Its adapter gives it Sets too: the rooms it is in (the relay's two), and each room's sockets (one or two devices
// of a session or an account, mostly): socket.ts swaps those of one or two items for `SmallSet`.

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

/** `SmallSet`'s slots when they hold nothing. */
const EMPTY: unique symbol = Symbol('empty');

/**
 * A Set that holds up to two items in two fields, and builds a real Set only for a third (about 40 bytes, where a
 * Set of one or two is about 200). Once it has built one it keeps it until `clear()`. Items compare with `===` (a
 * Set's SameValueZero differs only for NaN, never a room or a socket id). Items iterate in insertion order and may be
 * deleted while iterating, as a Set's; unlike a Set's, an iteration over the two fields does not visit items added
 * during it (Socket.IO's adapter adds none while it iterates).
 */
export class SmallSet<T> implements Iterable<T> {
  private a: T | typeof EMPTY = EMPTY;
  private b: T | typeof EMPTY = EMPTY;
  private many: Set<T> | null = null;

  constructor(items: Iterable<T> = []) {
    for (const item of items) this.add(item);
  }

  get size(): number {
    if (this.many) return this.many.size;
    return (this.a === EMPTY ? 0 : 1) + (this.b === EMPTY ? 0 : 1);
  }

  has(item: T): boolean {
    if (this.many) return this.many.has(item);
    return item === this.a || item === this.b;
  }

  add(item: T): this {
    if (this.many) this.many.add(item);
    else if (item === this.a || item === this.b) return this;
    else if (this.a === EMPTY) this.a = item;
    else if (this.b === EMPTY) this.b = item;
    else {
      this.many = new Set<T>([this.a, this.b, item]);
      this.a = this.b = EMPTY;
    }
    return this;
  }

  delete(item: T): boolean {
    if (this.many) return this.many.delete(item);
    if (item === this.a && this.a !== EMPTY) {
      this.a = this.b; // the second moves up: insertion order holds
      this.b = EMPTY;
      return true;
    }
    if (item === this.b && this.b !== EMPTY) {
      this.b = EMPTY;
      return true;
    }
    return false;
  }

  clear(): void {
    this.a = this.b = EMPTY;
    this.many = null;
  }

  *values(): IterableIterator<T> {
    if (this.many) {
      yield* this.many;
      return;
    }
    const held: (T | typeof EMPTY)[] = [this.a, this.b];
    for (const item of held) if (item !== EMPTY && this.has(item)) yield item;
  }

  keys(): IterableIterator<T> {
    return this.values();
  }

  *entries(): IterableIterator<[T, T]> {
    for (const item of this.values()) yield [item, item];
  }

  forEach(callback: (value: T, key: T, set: this) => void): void {
    for (const item of this.values()) callback(item, item, this);
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.values();
  }
}
