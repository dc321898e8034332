// Presence: who is online on this relay, who watches whom, and the `presence` updates watchers are owed.
// A user who does not share presence always appears as {online: false, lastSeen: null}.
import type { PresenceUpdate } from '../protocol.js';
import type { Store } from '../store/store.js';

/** A connection that watches users (the socket layer implements it). */
export interface PresenceWatcher {
  send(update: PresenceUpdate): void;
}

/** Where last-seen times are persisted (the WriteBatcher). */
export interface LastSeenSink {
  seen(userId: string, ts: number): void;
}

interface Online {
  connections: number;
  /** While online: when the user came online; afterwards: when the last connection closed. */
  lastSeen: number;
}

export class PresenceService {
  /** Users seen by this process: connection count and last-seen time. */
  private readonly users = new Map<string, Online>();
  private readonly watchersOf = new Map<string, Set<PresenceWatcher>>();
  private readonly watching = new Map<PresenceWatcher, Set<string>>();
  /** The sharePresence setting of every watched user. */
  private readonly sharing = new Map<string, boolean>();

  constructor(
    private readonly store: Store,
    private readonly lastSeen: LastSeenSink,
    private readonly now: () => number,
  ) {}

  connected(userId: string): void {
    const state = this.users.get(userId);
    if (state && state.connections > 0) {
      state.connections++;
      return;
    }
    const ts = this.now();
    this.users.set(userId, { connections: 1, lastSeen: ts });
    this.lastSeen.seen(userId, ts);
    this.notify(userId);
  }

  disconnected(userId: string): void {
    const state = this.users.get(userId);
    if (!state || state.connections === 0) return;
    state.connections--;
    if (state.connections > 0) return;
    state.lastSeen = this.now();
    this.lastSeen.seen(userId, state.lastSeen);
    this.notify(userId);
  }

  /**
   * Replaces what `watcher` watches. Returns the current state of each watched user that exists, for the caller
   * to send after its ack; later changes are sent to the watcher directly.
   */
  async watch(watcher: PresenceWatcher, userIds: string[]): Promise<PresenceUpdate[]> {
    const wanted = [...new Set(userIds)];
    this.unwatch(watcher);
    this.watching.set(watcher, new Set(wanted));
    for (const id of wanted) {
      let set = this.watchersOf.get(id);
      if (!set) {
        set = new Set();
        this.watchersOf.set(id, set);
      }
      set.add(watcher);
    }
    const records = await this.store.getPresence(wanted);
    const updates: PresenceUpdate[] = [];
    for (const r of records) {
      if (this.watchersOf.has(r.userId)) this.sharing.set(r.userId, r.sharePresence);
      if (!this.watching.get(watcher)?.has(r.userId)) continue; // replaced by a newer watch meanwhile
      updates.push(this.stateOf(r.userId, r.lastSeen));
    }
    return updates;
  }

  /** Stops every watch of `watcher` (on disconnect). */
  unwatch(watcher: PresenceWatcher): void {
    for (const id of this.watching.get(watcher) ?? []) {
      const set = this.watchersOf.get(id);
      set?.delete(watcher);
      if (set?.size === 0) {
        this.watchersOf.delete(id);
        this.sharing.delete(id);
      }
    }
    this.watching.delete(watcher);
  }

  /** After a user changed sharePresence: watchers see the real state again, or the hidden one. */
  async sharingChanged(userId: string, share: boolean): Promise<void> {
    if (!this.watchersOf.has(userId)) return;
    const stored = share && !this.users.has(userId) ? await this.store.getPresence([userId]) : [];
    if (!this.watchersOf.has(userId)) return;
    this.sharing.set(userId, share);
    const update = this.stateOf(userId, stored[0]?.lastSeen ?? null);
    for (const w of this.watchersOf.get(userId) ?? []) w.send(update);
  }

  private notify(userId: string): void {
    const watchers = this.watchersOf.get(userId);
    if (!watchers || this.sharing.get(userId) !== true) return;
    const update = this.stateOf(userId, null);
    for (const w of watchers) w.send(update);
  }

  /** What watchers may see of a user; `storedLastSeen` is used when this process has not seen the user. */
  private stateOf(userId: string, storedLastSeen: number | null): PresenceUpdate {
    if (this.sharing.get(userId) !== true) return { userId, online: false, lastSeen: null };
    const state = this.users.get(userId);
    if (!state) return { userId, online: false, lastSeen: storedLastSeen };
    return { userId, online: state.connections > 0, lastSeen: state.lastSeen };
  }
}
