// Node's EventEmitter keeps its listeners in `_events`, an object made as `{ __proto__: null }`. V8 keeps such an
// object in dictionary mode: a hash table of about 290 bytes for a handful of event names. A connection holds four
// of them for its lifetime (the Socket.IO socket, the engine.io socket, its WebSocket transport and the `ws`
// WebSocket; Node's own streams preset theirs with fixed names, which V8 keeps compact). The same listeners in an
// object made by a constructor are held in fast mode: about 70 bytes, its layout shared by every connection that
// added the same names in the same order.
// A listener added with `once` is held in a wrapper that lasts as long as the listener: `unwrapOnceListeners` below
// drops the wrapper where the caller knows the event reaches the listener at most once anyway.

/** A listener table in fast mode. Its prototype has no properties, as `{ __proto__: null }` has none. */
function ListenerTable(): void {}
ListenerTable.prototype = Object.create(null) as object;

interface Emitter {
  _events?: unknown;
}

/**
 * Copies each emitter's listener table, names in the same order, into a ListenerTable; its listeners and their
 * count are unchanged. A table already compacted, or not a plain `{ __proto__: null }` one, is left alone. An event
 * name deleted later (the last listener of a name removed) turns that table back into a hash table; adding names
 * does not.
 */
export function compactListenerTables(...emitters: unknown[]): void {
  for (const emitter of emitters) {
    if (typeof emitter !== 'object' || emitter === null) continue;
    const holder = emitter as Emitter;
    const table = holder._events;
    if (typeof table !== 'object' || table === null || Object.getPrototypeOf(table) !== null) continue;
    const compact = new (ListenerTable as unknown as new () => Record<string, unknown>)();
    // Reflect.ownKeys: event names may be symbols too; a dictionary enumerates in the order names were added.
    for (const name of Reflect.ownKeys(table)) {
      (compact as Record<string | symbol, unknown>)[name] = (table as Record<string | symbol, unknown>)[name];
    }
    holder._events = compact;
  }
}

/** Whether an emitter's listeners are held in a ListenerTable (for tests). */
export function hasCompactListeners(emitter: unknown): boolean {
  const table = (emitter as Emitter | null)?._events;
  return typeof table === 'object' && table !== null && Object.getPrototypeOf(table) === ListenerTable.prototype;
}

/** Node's `once` wrapper: `onceWrapper` bound to its state, with the listener it wraps as `listener`. */
function wrappedByOnce(listener: unknown): ((...args: unknown[]) => unknown) | undefined {
  if (typeof listener !== 'function' || listener.name !== 'bound onceWrapper') return undefined;
  const inner = (listener as { listener?: unknown }).listener;
  return typeof inner === 'function' && Object.hasOwn(listener, 'listener')
    ? (inner as (...args: unknown[]) => unknown)
    : undefined;
}

/**
 * Replaces each `once` wrapper among an emitter's listeners of these events with the listener it wraps. A wrapper
 * costs about 150 bytes (a bound function, its state object and a property array) for the connection's lifetime.
 * Only for events the caller knows reach each of these listeners at most once: the emitter emits the event at most
 * once, or the listener's first call removes it. `removeListener` with the listener finds it either way; only
 * `rawListeners` now returns the listener rather than its wrapper.
 */
export function unwrapOnceListeners(emitter: unknown, ...events: string[]): void {
  if (typeof emitter !== 'object' || emitter === null) return;
  const table = (emitter as Emitter)._events;
  if (typeof table !== 'object' || table === null) return;
  const listeners = table as Record<string, unknown>;
  for (const event of events) {
    const entry = listeners[event];
    if (Array.isArray(entry)) {
      for (let i = 0; i < entry.length; i++) entry[i] = wrappedByOnce(entry[i]) ?? entry[i];
    } else {
      const inner = wrappedByOnce(entry);
      if (inner) listeners[event] = inner;
    }
  }
}

/** How many `once` wrappers an emitter holds among its listeners, of every event (for tests). */
export function onceWrapperCount(emitter: {
  eventNames(): (string | symbol)[];
  rawListeners(event: string | symbol): unknown[];
}): number {
  return emitter
    .eventNames()
    .reduce((n, event) => n + emitter.rawListeners(event).filter((l) => wrappedByOnce(l)).length, 0);
}
