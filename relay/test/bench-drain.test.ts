// The bench's end-of-phase drain (bench/workloads.ts): it waits while messages keep arriving, so a slow store on a
// busy machine is not reported as lost, and still reports a message the server dropped; a copy of a given-up message
// that arrives in a later phase is counted as late, not as a stray. Driven through a stand-in transport whose
// server delivers every message after a set delay (or never, for the ones it drops).
import { describe, expect, it } from 'vitest';
import { LoadDriver } from '../bench/workloads.js';
import type { Transport } from '../bench/workloads.js';

/** A server that acks each send at once and pushes it to the recipient `delayMs` later; `drop(id)` loses it. */
class SlowServer implements Transport {
  private handler: (device: number, id: string) => void = () => {};
  readonly sent: string[] = [];
  constructor(
    private readonly delayMs: (n: number) => number,
    private readonly drop: (n: number) => boolean = () => false,
  ) {}
  send(_sender: number, recipient: number, id: string, _body: Buffer, onAck: (ok: boolean) => void): void {
    const n = this.sent.push(id) - 1;
    onAck(true);
    if (!this.drop(n)) setTimeout(() => this.handler(recipient, id), this.delayMs(n));
  }
  sendGroup(): void {
    throw new Error('not used');
  }
  onPush(handler: (device: number, id: string) => void): void {
    this.handler = handler;
  }
}

const hooks = { onWindowStart: () => undefined, onWindowEnd: () => undefined };
const openTask = (drainMs: number) =>
  ({ kind: 'open', ratePerSec: 200, maxInFlight: 10_000, warmupMs: 0, durationMs: 200, drainMs }) as const;

describe('the bench drain after a phase', () => {
  it('keeps waiting while a slow server is still delivering, so nothing slow is counted as lost', async () => {
    // About 40 messages, the n-th delivered 150 + 15n ms after it was sent (one every ~20 ms): the last ones land
    // ~750 ms after the window, long after a fixed 250 ms drain would have given up, but never 250 ms apart.
    const server = new SlowServer((n) => 150 + 15 * n);
    const driver = new LoadDriver(server, 4, 10, 8);
    const result = await driver.run(openTask(250), hooks);
    expect(server.sent.length).toBeGreaterThan(20);
    expect({ lost: result.lost, strays: result.strays, late: result.late }).toEqual({ lost: 0, strays: 0, late: 0 });
    expect(result.drainWaitMs).toBeGreaterThan(500);
  });

  it('reports a message the server dropped as lost once nothing arrived for the drain time', async () => {
    const server = new SlowServer(
      () => 5,
      (n) => n === 3,
    );
    const driver = new LoadDriver(server, 4, 10, 8);
    const result = await driver.run(openTask(200), hooks);
    // Acked by the server but never received: one missing receipt.
    expect(result.lost).toBe(1);
    expect(result.drainWaitMs).toBeGreaterThanOrEqual(200);
    expect(result.drainWaitMs).toBeLessThan(800);
  });

  it('counts a given-up message that arrives in a later phase as late, not as a stray', async () => {
    // The first message of the first phase arrives 1.5 s late, after the first phase's capped drain (4 x 100 ms)
    // gave it up, while the next phase is running.
    const server = new SlowServer((n) => (n === 0 ? 1500 : 5));
    const driver = new LoadDriver(server, 2, 10, 4);
    const first = await driver.run({ ...openTask(100), durationMs: 100 }, hooks);
    expect(first.lost).toBe(1);
    const second = await driver.run({ ...openTask(100), durationMs: 1500 }, hooks);
    expect({ late: second.late, strays: second.strays, lost: second.lost }).toEqual({ late: 1, strays: 0, lost: 0 });
  });
});
