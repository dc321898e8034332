// compactListenerTables: an emitter whose listener table was copied into a ListenerTable behaves as before, for every
// EventEmitter operation the connection's libraries use (on, once, prepend, emit, remove, count, names, symbols).
// unwrapOnceListeners: the listeners it unwraps run and are removed as before, and nothing else is touched.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  compactListenerTables,
  hasCompactListeners,
  onceWrapperCount,
  unwrapOnceListeners,
} from '../src/listener-tables.js';

describe('a compacted listener table', () => {
  it('keeps every listener, in order, with once wrappers and symbol names, and goes on working', () => {
    const calls: string[] = [];
    const tick = Symbol('tick');
    const emitter = new EventEmitter();
    const first = (x: unknown) => calls.push(`first ${String(x)}`);
    emitter.on('message', first);
    emitter.on('message', (x) => calls.push(`second ${String(x)}`));
    emitter.once('close', () => calls.push('close once'));
    emitter.on(tick, () => calls.push('tick'));
    emitter.on('error', () => calls.push('error'));
    const names = emitter.eventNames();
    expect(hasCompactListeners(emitter)).toBe(false);

    compactListenerTables(emitter, null, undefined, 42, {});
    expect(hasCompactListeners(emitter)).toBe(true);
    expect(emitter.eventNames()).toEqual(names);
    expect(emitter.listenerCount('message')).toBe(2);
    expect(Object.getPrototypeOf(Object.getPrototypeOf((emitter as unknown as { _events: object })._events))).toBe(
      null,
    );
    expect('toString' in (emitter as unknown as { _events: object })._events).toBe(false);

    emitter.emit('message', 1);
    emitter.emit('close');
    emitter.emit('close');
    emitter.emit(tick);
    emitter.prependListener('message', (x) => calls.push(`prepended ${String(x)}`));
    emitter.once('drain', () => calls.push('drain once'));
    emitter.emit('drain');
    emitter.removeListener('message', first);
    emitter.emit('message', 2);
    expect(emitter.emit('toString')).toBe(false); // no inherited names: nothing listens to 'toString'
    emitter.emit('error', new Error('handled'));
    expect(calls).toEqual([
      'first 1',
      'second 1',
      'close once',
      'tick',
      'drain once',
      'prepended 2',
      'second 2',
      'error',
    ]);
    expect(emitter.listenerCount('close')).toBe(0);
    expect(emitter.listenerCount('drain')).toBe(0);

    // compacting again leaves the table alone
    const table = (emitter as unknown as { _events: object })._events;
    compactListenerTables(emitter);
    expect((emitter as unknown as { _events: object })._events).toBe(table);
    emitter.removeAllListeners();
    expect(emitter.eventNames()).toEqual([]);
  });
});

describe('unwrapping once listeners', () => {
  it('replaces the wrappers of the named events by their listeners, which run and are removed as before', () => {
    const calls: string[] = [];
    const emitter = new EventEmitter();
    const onClose = (): void => void calls.push('close');
    const onError = (): void => void calls.push('error');
    const alsoOnClose = (): void => void calls.push('close too');
    emitter.once('close', onClose);
    emitter.on('close', alsoOnClose);
    emitter.once('error', onError);
    emitter.once('drain', () => calls.push('drain once'));
    // a function that only looks like Node's wrapper is not Node's
    const lookalike = Object.assign(() => calls.push('lookalike'), { listener: () => calls.push('inner') });
    emitter.on('error', lookalike);
    expect(onceWrapperCount(emitter)).toBe(3);

    unwrapOnceListeners(emitter, 'close', 'error');
    unwrapOnceListeners(null, 'close');
    unwrapOnceListeners({}, 'close');
    expect(onceWrapperCount(emitter)).toBe(1); // drain's: not named
    expect(emitter.rawListeners('close')).toEqual([onClose, alsoOnClose]);
    expect(emitter.rawListeners('error')).toEqual([onError, lookalike]);

    emitter.emit('close');
    emitter.emit('drain');
    emitter.emit('drain');
    // what removes a once listener by its own function still finds it
    emitter.removeListener('close', onClose);
    emitter.removeListener('error', onError);
    emitter.emit('close');
    emitter.emit('error', new Error('handled'));
    expect(calls).toEqual(['close', 'close too', 'drain once', 'close too', 'lookalike']);
    expect(emitter.listenerCount('close')).toBe(1);
    expect(emitter.listenerCount('error')).toBe(1);

    // one listener alone for its event, not in an array
    const single = new EventEmitter();
    single.once('close', onClose);
    unwrapOnceListeners(single, 'close');
    expect(single.rawListeners('close')).toEqual([onClose]);
    single.removeListener('close', onClose);
    expect(single.listenerCount('close')).toBe(0);
  });
});
