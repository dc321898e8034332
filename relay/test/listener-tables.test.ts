// compactListenerTables: an emitter whose listener table was copied into a ListenerTable behaves as before, for every
// EventEmitter operation the connection's libraries use (on, once, prepend, emit, remove, count, names, symbols).
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { compactListenerTables, hasCompactListeners } from '../src/listener-tables.js';

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
