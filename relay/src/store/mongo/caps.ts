// Mailbox caps and the document ceiling on MongoDB: how full each recipient device's mailbox is (read once per
// batch), which deliveries of a batch fit, and how big a send's message document gets.
import type { MailboxCaps, SendOutcome } from '../store.js';
import type { MessageDoc, Models } from './models.js';

/** A send that passed every check and will be inserted. */
export interface Planned {
  index: number;
  key: string;
  group: string | null;
  deliveries: { to: string; body: Uint8Array }[];
  /** Recipient devices left out because their mailbox is full. */
  refused?: string[];
}

/**
 * A message document stays well below MongoDB's 16 MiB ceiling: a send whose document would pass this is refused
 * alone (`too_large`). Bodies are bounded by the protocol (100 envelopes of 64 KiB, one group body), so only a group
 * with very many keyed devices (members × DEVICES_PER_ACCOUNT) gets near it.
 */
export const MAX_DOCUMENT_BYTES = 15 * 1024 * 1024;
/** BSON bytes per recipient, over-estimated: its `to` element and its `entries.<deviceId>` sub-document. */
export const BYTES_PER_RECIPIENT = 96;
/** Device ids per `$in` query. */
const IN_CHUNK = 500;
/** What each entry of a planned send counts against its device's byte cap (see MessageDoc.size). */
export const sizeOf = (p: Planned): number => p.deliveries.reduce((max, d) => Math.max(max, d.body.length), 0);

/** An over-estimate of a planned send's document in BSON. */
export function documentBytes(p: Planned): number {
  const bodies = p.group !== null ? sizeOf(p) : p.deliveries.reduce((sum, d) => sum + d.body.length, 0);
  return 1024 + bodies + p.deliveries.length * BYTES_PER_RECIPIENT;
}

/**
 * Drops the deliveries to devices whose mailbox is full (recorded in `refused`); a send left with none because of
 * that is `mailbox_full`. Usage is read once per batch: one query per IN_CHUNK recipient devices, counting each message
 * document that still lists the device, with its `size`.
 */
export async function withinCaps(
  m: Models,
  planned: Planned[],
  outcomes: (SendOutcome | undefined)[],
  caps: MailboxCaps,
): Promise<Planned[]> {
  const usage = new Map<string, { n: number; bytes: number }>();
  for (const p of planned) for (const d of p.deliveries) usage.set(d.to, { n: 0, bytes: 0 });
  const devices = [...usage.keys()];
  for (let i = 0; i < devices.length; i += IN_CHUNK) {
    const docs = await m.messages
      .find({ to: { $in: devices.slice(i, i + IN_CHUNK) } }, { to: 1, size: 1 })
      .lean<Pick<MessageDoc, 'to' | 'size'>[]>();
    for (const doc of docs) {
      for (const to of doc.to) {
        const used = usage.get(to);
        if (!used) continue;
        used.n += 1;
        used.bytes += doc.size ?? 0;
      }
    }
  }
  const kept: Planned[] = [];
  for (const p of planned) {
    const refused: string[] = [];
    const size = sizeOf(p);
    const deliveries = p.deliveries.filter(({ to }) => {
      const used = usage.get(to) ?? { n: 0, bytes: 0 };
      if (used.n + 1 > caps.maxEntries || used.bytes + size > caps.maxBytes) {
        refused.push(to);
        return false;
      }
      used.n += 1;
      used.bytes += size;
      return true;
    });
    // A send that names no device at all (every envelope went to users who block its sender) is stored with no
    // entries, exactly as on SQLite: answering mailbox_full would tell the sender it is blocked.
    if (deliveries.length === 0 && refused.length > 0) {
      outcomes[p.index] = { status: 'mailbox_full' };
      continue;
    }
    kept.push(refused.length > 0 ? { ...p, deliveries, refused } : p);
  }
  return kept;
}
