// The bytes of the cluster bus on Redis: msgpack (binary bodies inline), and on the way in a zod schema of every
// event, so a message on the channel that is not one of ours (another program, an older or newer relay, a forged
// publish by anyone who can reach Redis) is dropped instead of being taken for relay state.
import { z } from 'zod';
import { assertPlainData, msgpack } from '../socket-parser.js';
import type { ClusterEvent } from './bus.js';

export { msgpack };

/** What one node publishes: the event and the publishing node (a node ignores its own). */
export interface Envelope {
  from: string;
  event: ClusterEvent;
}

const MAX_IDS = 100_000;
const id = z.string().min(1).max(64);
const time = z.number().int().nonnegative();
const bytes = z.custom<Buffer>((v) => Buffer.isBuffer(v), 'must be binary');

const entry = z.strictObject({
  deviceId: id,
  seq: time,
  id,
  ts: time,
  body: bytes,
  group: id.optional(),
});
const message = z.strictObject({ id, seq: time, ts: time, body: bytes, group: id.optional() });
const presence = z.strictObject({ userId: id, online: z.boolean(), lastSeen: time.nullable() });

const eventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('entries'), entries: z.array(entry).max(MAX_IDS) }),
  z.strictObject({ type: z.literal('ephemeral'), deviceIds: z.array(id).max(MAX_IDS), message }),
  z.strictObject({ type: z.literal('resync'), deviceIds: z.array(id).max(MAX_IDS) }),
  z.strictObject({ type: z.literal('presence'), update: presence }),
  z.strictObject({ type: z.literal('sharing'), userId: id, share: z.boolean() }),
  z.strictObject({ type: z.literal('block'), blocker: id, blocked: id, on: z.boolean() }),
  z.strictObject({
    type: z.literal('revoked'),
    familyIds: z.array(id).max(MAX_IDS),
    removed: z.boolean().optional(),
  }),
  z.strictObject({ type: z.literal('resume') }),
]);
const envelopeSchema = z.strictObject({ from: id, event: eventSchema });

/** A Buffer over the same memory (msgpack writes a Buffer as binary; a bare Uint8Array would become a map). */
function asBuffer(body: Uint8Array | ArrayBuffer): Buffer {
  if (Buffer.isBuffer(body)) return body;
  return body instanceof ArrayBuffer ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

export function encodeEnvelope(envelope: Envelope): Buffer {
  const { event } = envelope;
  if (event.type === 'entries') {
    return msgpack.encode({
      ...envelope,
      event: { ...event, entries: event.entries.map((e) => ({ ...e, body: asBuffer(e.body) })) },
    });
  }
  if (event.type === 'ephemeral') {
    return msgpack.encode({
      ...envelope,
      event: { ...event, message: { ...event.message, body: asBuffer(event.message.body) } },
    });
  }
  return msgpack.encode(envelope);
}

/** The envelope in `message`, or null when it is not a well-formed one. */
export function decodeEnvelope(message: Buffer): Envelope | null {
  let data: unknown;
  try {
    data = msgpack.decode(message);
    assertPlainData(data);
  } catch {
    return null;
  }
  const parsed = envelopeSchema.safeParse(data);
  return parsed.success ? (parsed.data as Envelope) : null;
}
