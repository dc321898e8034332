// SmallMap (src/socket-maps.ts) stands in for Socket.IO's per-connection Maps, so it must answer as a Map does: random
// runs of set, delete, clear and reads (deleting while iterating included) are checked against a real Map.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SmallMap } from '../src/socket-maps.js';

type Op =
  | { op: 'set'; key: number; value: string }
  | { op: 'delete'; key: number }
  | { op: 'clear' }
  | { op: 'deleteWhileIterating'; key: number };

// few keys, so that runs hold none, one and several entries, and set and delete keys already there
const key = fc.integer({ min: 0, max: 4 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), key, value: fc.string({ maxLength: 3 }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteWhileIterating' as const), key }) },
);

/** Applies one step to either map, returning what it answered (and, for iteration, what it yielded). */
function apply(map: Map<number, string> | SmallMap<number, string>, step: Op): unknown {
  switch (step.op) {
    case 'set':
      return map.set(step.key, step.value) === map;
    case 'delete':
      return map.delete(step.key);
    case 'clear':
      return map.clear();
    case 'deleteWhileIterating': {
      // Socket.IO's clean-up: each socket it visits removes itself from the map it is iterating
      const seen: number[] = [];
      for (const [k] of map) {
        seen.push(k);
        map.delete(k === step.key ? k : step.key);
      }
      return seen;
    }
  }
}

function state(map: Map<number, string> | SmallMap<number, string>): unknown {
  const reads = [0, 1, 2, 3, 4].map((k) => [map.has(k), map.get(k)]);
  const forEach: [number, string][] = [];
  map.forEach((value, k) => forEach.push([k, value]));
  return {
    size: map.size,
    entries: [...map.entries()],
    keys: [...map.keys()],
    values: [...map.values()],
    forEach,
    reads,
  };
}

describe('SmallMap', () => {
  it('answers every read, write and iteration as a Map does, from none to several entries and back', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (steps) => {
        const real = new Map<number, string>();
        const small = new SmallMap<number, string>();
        for (const step of steps) {
          expect(apply(small, step)).toEqual(apply(real, step));
          expect(state(small)).toEqual(state(real));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('starts with the entries it is given, in their order', () => {
    expect([...new SmallMap([['a', 1]])]).toEqual([['a', 1]]);
    expect([
      ...new SmallMap([
        ['a', 1],
        ['b', 2],
        ['a', 3],
      ]),
    ]).toEqual([
      ['a', 3],
      ['b', 2],
    ]);
    expect(new SmallMap().size).toBe(0);
  });
});
