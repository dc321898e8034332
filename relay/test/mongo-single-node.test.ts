// One relay node on the MongoDB store without Redis (MONGODB_URI alone): the in-process fan-out over the
// MongoDB backend delivers concurrent sends, each exactly once and in seq order, and drains a large mailbox.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, messageId, signUp, startRelay, type TestRelay } from './helpers.js';
import { DRAIN_TIMEOUT_MS, QUEUED, drainQueuedMailbox } from './mongo-drain.js';
import { startMongo, withDatabase, type Service } from './services.js';

const started = await startMongo();
const mongo: Service | null = 'service' in started ? started.service : null;
if (!mongo) console.warn(`[mongo-single-node] skipped: ${'skip' in started ? started.skip : ''}`);

describe.skipIf(!mongo)('one relay node on MongoDB', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    if (!mongo) return;
    relay = await startRelay({ MONGODB_URI: withDatabase(mongo.url, `single_${Date.now()}`) });
  }, 60_000);
  afterAll(async () => {
    await relay?.close();
    await mongo?.stop();
  });

  it('delivers 200 concurrent sends to an online device, each once and in seq order', async () => {
    const a = await signUp(relay.url);
    const b = await signUp(relay.url);
    const sender = await connectDevice(relay.url, a.accessToken);
    const recipient = await connectDevice(relay.url, b.accessToken);
    const ids = Array.from({ length: 200 }, () => messageId());
    const acks = await Promise.all(
      ids.map((id, i) => sender.send({ id, envelopes: [{ to: b.deviceId, body: new Uint8Array([i % 256]) }] })),
    );
    for (const ack of acks) expect(ack).toMatchObject({ ok: true });
    await recipient.waitForMessages(200);
    expect(new Set(recipient.messages.map((m) => m.id))).toEqual(new Set(ids));
    expect(recipient.messages).toHaveLength(200);
    const seqs = recipient.messages.map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    sender.close();
    recipient.close();
  }, 60_000);

  it(
    'drains 1,000 messages queued for an offline device, then answers sends both ways and a sign-up',
    async () => {
      const { queueMs, drainMs } = await drainQueuedMailbox(relay.url, relay.url);
      console.info(`[mongo-single-node] queued ${QUEUED} messages in ${queueMs} ms, drained them in ${drainMs} ms`);
    },
    DRAIN_TIMEOUT_MS + 60_000,
  );
});
