// Mailbox caps and the document ceiling on MongoDB: how full each recipient device's mailbox is (kept per node, see
// KeptUsage), which deliveries of a batch fit, and how big a send's message document gets.
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

/** How long a device's kept usage is trusted before it is read again. */
export const USAGE_FRESH_MS = 10_000;
/** Devices whose usage a node keeps at most; beyond, the oldest reads go first (between batches only). */
const MAX_USAGE_KEPT = 100_000;

interface Usage {
  n: number;
  bytes: number;
  /** When it was read (the batch's `now`). */
  readAt: number;
}

/**
 * Each recipient device's mailbox usage as this node last read it, plus what this node stored for it since. Reading
 * it for every batch cost each send every queued message document of each recipient (a group of offline devices:
 * members × queued documents, each with its whole `to` list), growing with every send. A figure is read again once
 * older than USAGE_FRESH_MS, after this node deleted entries of that device (an ack), and after the sweep. So on one
 * node the caps are exact; with several, another node's inserts show here only at the next read (a mailbox can pass
 * its cap by what the other nodes stored for it in that time), and another node's acks, or the TTL index, leave a
 * figure too high (refusing early) for as long.
 */
export class KeptUsage {
  private readonly kept = new Map<string, Usage>();
  /** Devices whose usage was read from the database (tests). */
  reads = 0;

  /** This node deleted entries of the device: read its usage again next time. */
  forget(deviceId: string): void {
    this.kept.delete(deviceId);
  }

  forgetAll(): void {
    this.kept.clear();
  }

  /** Sends stored without caps: what they store still counts in the kept figures. */
  add(planned: readonly Planned[]): void {
    for (const p of planned) {
      const size = sizeOf(p);
      for (const { to } of p.deliveries) {
        const used = this.kept.get(to);
        if (!used) continue;
        used.n += 1;
        used.bytes += size;
      }
    }
  }

  /** The usage of every device (kept objects: what the batch plans is added to them), reading the stale ones. */
  async of(m: Models, devices: string[], now: number): Promise<Map<string, Usage>> {
    for (const device of this.kept.keys()) {
      if (this.kept.size <= MAX_USAGE_KEPT) break;
      this.kept.delete(device); // oldest read first: re-reads are moved to the end below
    }
    const stale = devices.filter((d) => {
      const u = this.kept.get(d);
      return !u || now - u.readAt >= USAGE_FRESH_MS || now < u.readAt;
    });
    const read = new Map<string, Usage>();
    for (const d of stale) read.set(d, { n: 0, bytes: 0, readAt: now });
    for (let i = 0; i < stale.length; i += IN_CHUNK) {
      const docs = await m.messages
        .find({ to: { $in: stale.slice(i, i + IN_CHUNK) } }, { to: 1, size: 1 })
        .lean<Pick<MessageDoc, 'to' | 'size'>[]>();
      for (const doc of docs) {
        for (const to of doc.to) {
          const used = read.get(to);
          if (!used) continue;
          used.n += 1;
          used.bytes += doc.size ?? 0;
        }
      }
    }
    this.reads += stale.length;
    for (const [d, u] of read) {
      this.kept.delete(d);
      this.kept.set(d, u);
    }
    return new Map(devices.map((d) => [d, this.kept.get(d) ?? { n: 0, bytes: 0, readAt: now }]));
  }
}

/**
 * Drops the deliveries to devices whose mailbox is full (recorded in `refused`); a send left with none because of
 * that is `mailbox_full`. Usage comes from `usageKept` (see KeptUsage); what a send is planned to store is added to it.
 */
export async function withinCaps(
  m: Models,
  usageKept: KeptUsage,
  planned: Planned[],
  outcomes: (SendOutcome | undefined)[],
  caps: MailboxCaps,
  now: number,
): Promise<Planned[]> {
  const devices = new Set<string>();
  for (const p of planned) for (const d of p.deliveries) devices.add(d.to);
  const usage = await usageKept.of(m, [...devices], now);
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
