// Which users someone blocks, in memory, so that a send costs no block read unless its sender is blocked by somebody
// (issue #18: the per-send `devicesBlocking` query was a store round trip on the hot path for every direct send).
//
// The index only ever answers "maybe blocked" or "certainly not blocked". It grows at once — before a block is
// stored, on the node that takes it, and on every other node from the cluster bus's `block` event — and it shrinks
// only when it is rebuilt from the store (at start, after a bus outage, and on every sweep), because one unblock
// does not tell whether somebody else still blocks that user. A "maybe" is settled by the store's exact query.
import type { ClusterBus } from '../cluster/bus.js';
import type { Store } from '../store/store.js';

export class BlockIndex {
  private blocked = new Set<string>();
  /** Per rebuild in progress, the users noted while it reads the store: it keeps them (its read may predate them). */
  private readonly rebuilding = new Set<Set<string>>();

  constructor(private readonly store: Pick<Store, 'blockedUsers'>) {}

  /** Follows the other nodes' blocks, and rebuilds after a bus outage (events of the gap may be lost). */
  follow(bus: ClusterBus, onError: (err: unknown) => void): void {
    bus.onEvent((event) => {
      if (event.type === 'block' && event.on) this.note(event.blocked);
    });
    bus.onResume(() => {
      this.rebuild().catch(onError);
    });
  }

  /** `userId` is, or is about to be, blocked by someone. */
  note(userId: string): void {
    this.blocked.add(userId);
    for (const noted of this.rebuilding) noted.add(userId);
  }

  /** False only when nobody blocks `userId` (as far as the store and the bus have said). */
  mayBeBlocked(userId: string): boolean {
    return this.blocked.has(userId);
  }

  /** Reads every blocked user from the store; users unblocked by everyone since the last rebuild drop out. */
  async rebuild(): Promise<void> {
    const noted = new Set<string>();
    this.rebuilding.add(noted);
    try {
      const fresh = new Set(await this.store.blockedUsers());
      for (const u of noted) fresh.add(u);
      this.blocked = fresh;
    } finally {
      this.rebuilding.delete(noted);
    }
  }

  get size(): number {
    return this.blocked.size;
  }
}
