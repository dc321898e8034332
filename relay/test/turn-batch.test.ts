// TurnBatch, the gathering of device activity times both stores use: one write per turn, the latest time per device,
// one write at a time (a MongoDB server behind FerretDB deadlocked on concurrent bulk writes of them), and a close
// that writes what waits. The stores' own tests check the records on real SQLite and FerretDB.
import { describe, expect, it } from 'vitest';
import { TurnBatch } from '../src/store/turn-batch.js';

/** A write that the test ends by hand, recording what it got and how many ran at once. */
function heldWrites() {
  const writes: { times: Map<string, number>; end: (err?: Error) => void }[] = [];
  let running = 0;
  let most = 0;
  const write = (times: ReadonlyMap<string, number>) =>
    new Promise<void>((resolve, reject) => {
      running++;
      most = Math.max(most, running);
      writes.push({
        times: new Map(times),
        end: (err) => {
          running--;
          if (err) reject(err);
          else resolve();
        },
      });
    });
  const started = async (n: number) => {
    while (writes.length < n) await new Promise((r) => setImmediate(r));
    return writes[n - 1]!;
  };
  return { write, writes, started, most: () => most };
}

const settled = (p: Promise<void>) =>
  p.then(
    () => 'resolved',
    (e: Error) => `rejected: ${e.message}`,
  );

describe('TurnBatch', () => {
  it('writes the times of one turn together, the latest per key, and one write at a time', async () => {
    const held = heldWrites();
    const batch = new TurnBatch(held.write);
    const first = [batch.add('a', 5), batch.add('b', 1), batch.add('a', 9), batch.add('a', 7)];
    const one = await held.started(1);
    expect(one.times).toEqual(
      new Map([
        ['a', 9],
        ['b', 1],
      ]),
    );
    // While it is on its way, later turns gather for the next write, which waits for it.
    const second = [batch.add('b', 2)];
    await new Promise((r) => setImmediate(r));
    second.push(batch.add('c', 3));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(held.writes).toHaveLength(1);
    one.end();
    expect(await Promise.all(first.map(settled))).toEqual(Array(4).fill('resolved'));
    const two = await held.started(2);
    expect(two.times).toEqual(
      new Map([
        ['b', 2],
        ['c', 3],
      ]),
    );
    two.end();
    expect(await Promise.all(second.map(settled))).toEqual(['resolved', 'resolved']);
    expect(held.most()).toBe(1);
  });

  it('rejects the callers of a failed write only; the next write goes on', async () => {
    const held = heldWrites();
    const batch = new TurnBatch(held.write);
    const failing = batch.add('a', 1);
    (await held.started(1)).end(new Error('disk full'));
    expect(await settled(failing)).toBe('rejected: disk full');
    const next = batch.add('a', 2);
    (await held.started(2)).end();
    expect(await settled(next)).toBe('resolved');
  });

  it('writes what waits when closed, after the write on its way, and refuses any more', async () => {
    const held = heldWrites();
    const batch = new TurnBatch(held.write);
    const early = batch.add('a', 1);
    const one = await held.started(1);
    const late = batch.add('b', 2);
    const closing = batch.close();
    await expect(batch.add('c', 3)).rejects.toThrow('the store is closed');
    one.end();
    const two = await held.started(2);
    expect(two.times).toEqual(new Map([['b', 2]]));
    two.end();
    await closing;
    expect(await Promise.all([early, late].map(settled))).toEqual(['resolved', 'resolved']);
    expect(held.writes).toHaveLength(2);
  });
});
