// SmallMap and SmallSet (src/socket-maps.ts) stand in for Socket.IO's per-connection Maps and its adapter's Sets, so
// they must answer as a Map and a Set do: random runs of writes, deletes, clears and reads (deleting while iterating
// included) are checked against a real Map and a real Set.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SmallMap, SmallSet } from '../src/socket-maps.js';

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

type SetOp =
  | { op: 'add'; item: number }
  | { op: 'delete'; item: number }
  | { op: 'clear' }
  | { op: 'deleteWhileIterating'; item: number };

const setOp: fc.Arbitrary<SetOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('add' as const), item: key }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), item: key }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteWhileIterating' as const), item: key }) },
);

function applyToSet(set: Set<number> | SmallSet<number>, step: SetOp): unknown {
  switch (step.op) {
    case 'add':
      return set.add(step.item) === set;
    case 'delete':
      return set.delete(step.item);
    case 'clear':
      return set.clear();
    case 'deleteWhileIterating': {
      // the adapter's clean-up: a socket leaving each room it is in, while it iterates them
      const seen: number[] = [];
      for (const item of set) {
        seen.push(item);
        set.delete(item === step.item ? item : step.item);
      }
      return seen;
    }
  }
}

function setState(set: Set<number> | SmallSet<number>): unknown {
  const forEach: [number, number][] = [];
  set.forEach((value, k) => forEach.push([k, value]));
  return {
    size: set.size,
    values: [...set.values()],
    keys: [...set.keys()],
    entries: [...set.entries()],
    spread: [...set],
    forEach,
    has: [0, 1, 2, 3, 4].map((k) => set.has(k)),
  };
}

describe('SmallSet', () => {
  it('answers every read, write and iteration as a Set does, from none to several items and back', () => {
    fc.assert(
      fc.property(fc.array(setOp, { maxLength: 40 }), (steps) => {
        const real = new Set<number>();
        const small = new SmallSet<number>();
        for (const step of steps) {
          expect(applyToSet(small, step)).toEqual(applyToSet(real, step));
          expect(setState(small)).toEqual(setState(real));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('starts with the items it is given, in their order, once each', () => {
    expect([...new SmallSet(['a', 'b', 'a'])]).toEqual(['a', 'b']);
    expect([...new SmallSet(['a', 'b', 'c'])]).toEqual(['a', 'b', 'c']);
    expect(new SmallSet().size).toBe(0);
  });
});
