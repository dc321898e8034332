// The MongoDB-store drain scenario, run on one relay node and on two: 1,000 messages queued for an offline device,
// drained when it connects (its acks arrive in batches of 100 and more), then sends both ways and a sign-up on the
// draining node. FerretDB 1.x stopped answering the first large ack batch (see relay/README.md, "MongoDB"); a stuck
// store shows here as a drain that times out, never as a hang: every wait is bounded.
import { expect } from 'vitest';
import { connectDevice, messageId, signUp, waitFor } from './helpers.js';
import type { TestAccount, TestDevice } from './helpers.js';

export const QUEUED = 1000;
/** Sender devices: each stays within the relay's default per-device burst of 200 events. */
const SENDERS = 8;
/** Concurrent sends per sender device. */
const WAVE = 25;
/** A drain of 1,000 takes a few seconds on FerretDB over PostgreSQL; a stuck store never finishes it. */
export const DRAIN_TIMEOUT_MS = 30_000;

const body = (id: string): Buffer => Buffer.from(`queued ${id}`);

/**
 * Queues QUEUED messages via `sendUrl` for a device that is offline, drains them on `drainUrl`, then checks that
 * the store still answers: sends both ways, the acks took effect (a reconnect gets nothing old), and a sign-up.
 * Answers how long queueing and the drain took.
 */
export async function drainQueuedMailbox(
  sendUrl: string,
  drainUrl: string,
): Promise<{ queueMs: number; drainMs: number }> {
  const devices: TestDevice[] = [];
  const connect = async (url: string, account: TestAccount): Promise<TestDevice> => {
    const device = await connectDevice(url, account.accessToken);
    devices.push(device);
    return device;
  };
  try {
    const bob = await signUp(drainUrl); // offline until the drain
    const senders = await Promise.all(Array.from({ length: SENDERS }, () => signUp(sendUrl)));
    const sockets = await Promise.all(senders.map((s) => connect(sendUrl, s)));
    const queued: string[] = [];
    const queueing = Date.now();
    await Promise.all(
      sockets.map(async (socket) => {
        // In waves, as a client's outbox would send: each send's ack stays well within its timeout under load.
        for (let wave = 0; wave < QUEUED / SENDERS / WAVE; wave++) {
          const ids = Array.from({ length: WAVE }, () => messageId());
          queued.push(...ids);
          const acks = await Promise.all(
            ids.map((id) => socket.send({ id, envelopes: [{ to: bob.deviceId, body: body(id) }] })),
          );
          for (const ack of acks) expect(ack).toMatchObject({ ok: true });
        }
      }),
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}: sends to the offline device went unanswered (the store stopped answering?)`);
    });
    const queueMs = Date.now() - queueing;

    const started = Date.now();
    const b = await connect(drainUrl, bob);
    await b.waitForMessages(QUEUED, DRAIN_TIMEOUT_MS).catch((err: unknown) => {
      throw new Error(`${String(err)}: ${b.messages.length} of ${QUEUED} arrived (the store stopped answering?)`);
    });
    const drainMs = Date.now() - started;
    expect(b.messages).toHaveLength(QUEUED);
    expect(new Set(b.messages.map((m) => m.id))).toEqual(new Set(queued));
    expect(Buffer.from(b.messages[0]?.body as Uint8Array)).toEqual(body(b.messages[0]?.id ?? ''));
    const seqs = b.messages.map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));

    // More sends both ways, each acknowledged by the store and delivered.
    const alice = sockets[0] as TestDevice;
    const aliceAccount = senders[0] as TestAccount;
    const toBob = Array.from({ length: 20 }, () => messageId());
    const toAlice = Array.from({ length: 20 }, () => messageId());
    const answers = await Promise.all([
      ...toBob.map((id) => alice.send({ id, envelopes: [{ to: bob.deviceId, body: body(id) }] })),
      ...toAlice.map((id) => b.send({ id, envelopes: [{ to: aliceAccount.deviceId, body: body(id) }] })),
    ]);
    for (const answer of answers) expect(answer).toMatchObject({ ok: true });
    const has = (device: TestDevice, ids: string[]) => () => {
      const seen = new Set(device.messages.map((m) => m.id));
      return ids.every((id) => seen.has(id));
    };
    await waitFor(has(b, toBob), 10_000, 'the sends to bob after the drain');
    await waitFor(has(alice, toAlice), 10_000, 'the sends to alice after the drain');

    // The acks were committed: a new connection of bob's gets only what is sent after it.
    b.close();
    const again = await connect(drainUrl, bob);
    const marker = messageId();
    expect(await alice.send({ id: marker, envelopes: [{ to: bob.deviceId, body: body(marker) }] })).toMatchObject({
      ok: true,
    });
    await waitFor(has(again, [marker]), 10_000, 'the marker on the new connection');
    expect(again.messages.map((m) => m.id)).toEqual([marker]);

    // Other requests to the draining node are answered too.
    expect((await signUp(drainUrl)).accessToken).toBeTruthy();
    return { queueMs, drainMs };
  } finally {
    for (const device of devices) device.close();
  }
}
