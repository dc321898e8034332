// What the SQLite writer answers for each send of a batch, compactly (so that a worker thread posts back a few numbers
// and no bodies), and how the main thread turns it into the Store's SendOutcome with the bodies it still holds.
import type { MailboxEntry, SendOutcome, SendRequest } from '../store.js';

/**
 * One send's outcome as the writer reports it. A stored send's entries took the consecutive seqs from `firstSeq`:
 * for a direct send one per envelope, or per envelope index in `kept` when some mailboxes were full; for a group
 * send one per device of `to`.
 */
export type RawOutcome =
  | { status: 'stored'; ts: number; firstSeq: number; kept?: number[]; to?: string[]; refused?: string[] }
  | { status: 'duplicate'; ts: number }
  | { status: 'unknown_recipient' | 'not_found' | 'forbidden' | 'mailbox_full' };

/** Builds the outcomes of `sends` (the requests the batch held, in order) from the writer's raw outcomes. */
export function toOutcomes(sends: readonly SendRequest[], raw: readonly RawOutcome[]): SendOutcome[] {
  if (raw.length !== sends.length) throw new Error('the writer answered a different number of outcomes than sends');
  const outcomes: SendOutcome[] = new Array<SendOutcome>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i] as RawOutcome;
    if (r.status !== 'stored') {
      outcomes[i] = r;
      continue;
    }
    const send = sends[i] as SendRequest;
    const entries: MailboxEntry[] = [];
    let seq = r.firstSeq;
    if (send.target.kind === 'direct') {
      const envelopes = send.target.envelopes;
      if (r.kept) {
        for (const k of r.kept) {
          const env = envelopes[k];
          if (env) entries.push({ deviceId: env.to, seq: seq++, id: send.id, ts: r.ts, body: env.body });
        }
      } else {
        for (const env of envelopes)
          entries.push({ deviceId: env.to, seq: seq++, id: send.id, ts: r.ts, body: env.body });
      }
    } else {
      const { groupId, body } = send.target;
      for (const to of r.to ?? [])
        entries.push({ deviceId: to, seq: seq++, id: send.id, ts: r.ts, body, group: groupId });
    }
    outcomes[i] = r.refused
      ? { status: 'stored', ts: r.ts, entries, refused: r.refused }
      : { status: 'stored', ts: r.ts, entries };
  }
  return outcomes;
}
