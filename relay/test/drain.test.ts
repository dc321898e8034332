// Draining a large mailbox: a device that connects with 10,000 stored 300-byte messages gets each exactly once, in
// seq order, and acknowledging them empties its mailbox. The time limit is generous (a shared 2-core machine);
// DRAIN_REPORT=1 prints the measured time.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SendRequest } from '../src/store/store.js';
import { connectDevice, messageId, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';

const COUNT = 10_000;

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
beforeAll(async () => {
  t = await startRelay();
  alice = await signUp(t.url);
  bob = await signUp(t.url);
});
afterAll(() => t.close());

describe('draining a mailbox of 10,000 messages', () => {
  it('delivers every entry exactly once and in order, then the mailbox is empty', async () => {
    const ids = Array.from({ length: COUNT }, () => messageId());
    for (let i = 0; i < COUNT; i += 1000) {
      const sends = ids.slice(i, i + 1000).map((id): SendRequest => ({
        senderUserId: alice.userId,
        senderDeviceId: alice.deviceId,
        id,
        target: { kind: 'direct', envelopes: [{ to: bob.deviceId, body: randomBytes(300) }] },
      }));
      await t.relay.store.applyWrites({ sends, acks: [], lastSeen: [] }, Date.now());
    }
    expect(await t.relay.store.countMailbox(bob.deviceId)).toBe(COUNT);

    const started = performance.now();
    const device = await connectDevice(t.url, bob.accessToken);
    await device.waitForMessages(COUNT, 30_000);
    const received = performance.now() - started;
    let empty = false;
    while (!empty) {
      empty = (await t.relay.store.countMailbox(bob.deviceId)) === 0;
      if (!empty) await new Promise((resolve) => setTimeout(resolve, 5));
      if (performance.now() - started > 30_000) throw new Error('the mailbox did not empty');
    }
    const drained = performance.now() - started;
    if (process.env.DRAIN_REPORT === '1') {
      console.log(`received ${COUNT} in ${received.toFixed(0)} ms, mailbox empty after ${drained.toFixed(0)} ms`);
    }

    expect(device.messages.map((m) => m.id)).toEqual(ids);
    const seqs = device.messages.map((m) => m.seq);
    expect(seqs.every((seq, i) => i === 0 || seq > (seqs[i - 1] ?? 0))).toBe(true);
    expect(device.messages.every((m) => Buffer.from(m.body as Uint8Array).length === 300)).toBe(true);
    expect(drained).toBeLessThan(10_000);
    device.close();
  }, 60_000);
});
