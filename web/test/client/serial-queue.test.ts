// KeyedSerialQueue: per-key serialization of async work.
import { describe, expect, it } from 'vitest';
import { KeyedSerialQueue } from '../../src/client/serial-queue';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('KeyedSerialQueue', () => {
  it('runs tasks for one key one at a time, in order', async () => {
    const q = new KeyedSerialQueue();
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const task = (name: string, ms: number) => async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      log.push(`start ${name}`);
      await tick(ms);
      log.push(`end ${name}`);
      running--;
    };
    await Promise.all([q.run('bob', task('a', 20)), q.run('bob', task('b', 1)), q.run('bob', task('c', 5))]);
    expect(maxRunning).toBe(1);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('lets different keys run concurrently', async () => {
    const q = new KeyedSerialQueue();
    let running = 0;
    let maxRunning = 0;
    const task = async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await tick(10);
      running--;
    };
    await Promise.all([q.run('alice', task), q.run('bob', task)]);
    expect(maxRunning).toBe(2);
  });

  it('keeps going after a failed task and reports the failure to its caller', async () => {
    const q = new KeyedSerialQueue();
    const failed = q.run('bob', () => Promise.reject(new Error('boom')));
    const next = q.run('bob', async () => 'ok');
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ok');
    await tick(0);
    expect(q.activeKeys).toBe(0);
  });
  it('counts the tasks of a key that wait behind the running one', async () => {
    const q = new KeyedSerialQueue();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const first = q.run('a', () => gate);
    const second = q.run('a', async () => q.waiting('a'));
    const third = q.run('a', () => Promise.reject(new Error('boom')));
    void q.run('b', async () => undefined);
    await tick(0); // the first has started
    expect(q.waiting('a')).toBe(2);
    expect(q.waiting('b')).toBe(0);
    open();
    await first;
    expect(await second).toBe(1); // the third still waited while the second ran
    await expect(third).rejects.toThrow('boom');
    expect(q.waiting('a')).toBe(0);
  });
});
