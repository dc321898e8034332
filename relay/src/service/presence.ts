// Presence: who is online (a registry: this process alone, or shared by every node through Redis), who watches
// whom on this node, and the `presence` updates watchers are owed. Changes seen on other nodes arrive over the
// cluster bus. A user who does not share presence always appears as {online: false, lastSeen: null}; that check is
// made here, on the watcher's node, in the order events arrive, so no interleaving of nodes can reveal such a user.
// A user's presence is shared only with the users they have written to (a stored direct or group message; the
// store's contacts): anyone else who watches them sees the hidden state, until that user writes to them.
import type { ClusterBus } from '../cluster/bus.js';
import type { PresenceUpdate } from '../protocol.js';
import type { Store } from '../store/store.js';

/** A connection that watches users (the socket layer implements it). */
export interface PresenceWatcher {
  /** The user who watches (presence is shared along the store's contacts of this user). */
  readonly userId: string;
  send(update: PresenceUpdate): void;
}

/** Where last-seen times are persisted (the WriteBatcher). */
export interface LastSeenSink {
  seen(userId: string, ts: number): void;
}

/** A user's state as the registry knows it; `lastSeen` is when they came online, or when they went offline. */
export interface RegistryState {
  online: boolean;
  lastSeen: number;
}

/** Counts connections per user; reports transitions. Every connected() is followed by one disconnected(). */
export interface PresenceRegistry {
  /** Resolves to the time the user came online when this connection did that, else null. */
  connected(userId: string, now: number): Promise<number | null>;
  /** Resolves to the time the user went offline when this was their last connection anywhere, else null. */
  disconnected(userId: string, now: number): Promise<number | null>;
  /** What the registry knows of these users (unknown users are left out). */
  states(userIds: string[]): Promise<Map<string, RegistryState>>;
}

/** One relay: the registry is this process's memory. */
export class LocalPresenceRegistry implements PresenceRegistry {
  private readonly users = new Map<string, { connections: number; lastSeen: number }>();

  connected(userId: string, now: number): Promise<number | null> {
    const state = this.users.get(userId);
    if (state && state.connections > 0) {
      state.connections++;
      return Promise.resolve(null);
    }
    this.users.set(userId, { connections: 1, lastSeen: now });
    return Promise.resolve(now);
  }

  disconnected(userId: string, now: number): Promise<number | null> {
    const state = this.users.get(userId);
    if (!state || state.connections === 0) return Promise.resolve(null);
    state.connections--;
    if (state.connections > 0) return Promise.resolve(null);
    state.lastSeen = now;
    return Promise.resolve(now);
  }

  states(userIds: string[]): Promise<Map<string, RegistryState>> {
    const out = new Map<string, RegistryState>();
    for (const id of userIds) {
      const state = this.users.get(id);
      if (state) out.set(id, { online: state.connections > 0, lastSeen: state.lastSeen });
    }
    return Promise.resolve(out);
  }
}

export interface PresenceServiceOptions {
  store: Store;
  registry: PresenceRegistry;
  bus: ClusterBus;
  lastSeen: LastSeenSink;
  now: () => number;
  onError: (err: unknown) => void;
}

export class PresenceService {
  private readonly watchersOf = new Map<string, Set<PresenceWatcher>>();
  private readonly watching = new Map<PresenceWatcher, Set<string>>();
  /** The sharePresence setting of every watched user. */
  private readonly sharing = new Map<string, boolean>();
  /** The real state of watched users as this node last heard it (from the registry or the bus). */
  private readonly known = new Map<string, RegistryState>();
  /** The last update this node sent about each watched user, so a resync sends only what changed. */
  private readonly sent = new Map<string, PresenceUpdate>();
  /** Users a watcher asked for but may not see (they have not written to it), by watched user. */
  private readonly deniedOf = new Map<string, Set<PresenceWatcher>>();
  private readonly denied = new Map<PresenceWatcher, Set<string>>();
  /** The latest watch() of each watcher: an older one that resolves later changes nothing. */
  private readonly watchCalls = new WeakMap<PresenceWatcher, number>();
  /** Per user, transitions are reported in the order connections opened and closed. */
  private readonly queues = new Map<string, Promise<void>>();

  constructor(private readonly o: PresenceServiceOptions) {
    o.bus.onEvent((event) => {
      if (event.type === 'presence') this.apply(event.update);
      else if (event.type === 'sharing') void this.applySharing(event.userId, event.share);
      else if (event.type === 'block') {
        if (event.on) this.applyHide(event.blocker, event.blocked);
        else this.applyUnhide(event.blocker, event.blocked);
      }
    });
    o.bus.onResume(() => {
      this.resync().catch(o.onError);
    });
  }

  connected(userId: string): void {
    this.serialize(userId, async () => {
      const since = await this.o.registry.connected(userId, this.o.now());
      if (since !== null) this.transition({ userId, online: true, lastSeen: since });
    });
  }

  disconnected(userId: string): void {
    this.serialize(userId, async () => {
      const at = await this.o.registry.disconnected(userId, this.o.now());
      if (at !== null) this.transition({ userId, online: false, lastSeen: at });
    });
  }

  /** A transition the registry found by itself: a node stopped answering, or came back after a Redis outage. */
  registryTransition(userId: string, online: boolean, at: number): void {
    this.transition({ userId, online, lastSeen: at });
  }

  /**
   * Replaces what `watcher` watches. Returns the current state of each watched user that exists, for the caller
   * to send after its ack; later changes are sent to the watcher directly.
   */
  async watch(watcher: PresenceWatcher, userIds: string[]): Promise<PresenceUpdate[]> {
    const call = (this.watchCalls.get(watcher) ?? 0) + 1;
    this.watchCalls.set(watcher, call);
    const wanted = [...new Set(userIds)];
    const others = wanted.filter((id) => id !== watcher.userId);
    const [writing, blocking] =
      others.length > 0
        ? await Promise.all([
            this.o.store.contactsWritingTo(watcher.userId, others),
            this.o.store.usersBlocking(watcher.userId, others),
          ])
        : [[], []];
    // A user who blocks the watcher is hidden from it, as one who never wrote to it is.
    const writers = new Set(writing.filter((id) => !blocking.includes(id)));
    if (this.watchCalls.get(watcher) !== call) return []; // replaced by a newer watch meanwhile
    const allowed = wanted.filter((id) => id === watcher.userId || writers.has(id));
    const hidden = wanted.filter((id) => id !== watcher.userId && !writers.has(id));
    this.unwatch(watcher);
    this.watching.set(watcher, new Set(allowed));
    for (const id of allowed) addTo(this.watchersOf, id, watcher);
    if (hidden.length > 0) this.denied.set(watcher, new Set(hidden));
    for (const id of hidden) addTo(this.deniedOf, id, watcher);
    const [records, states] = await Promise.all([this.o.store.getPresence(wanted), this.o.registry.states(allowed)]);
    const updates: PresenceUpdate[] = [];
    for (const r of records) {
      if (this.denied.get(watcher)?.has(r.userId)) {
        updates.push({ userId: r.userId, online: false, lastSeen: null });
        continue;
      }
      if (!this.watchersOf.has(r.userId)) continue; // unwatched meanwhile
      this.sharing.set(r.userId, r.sharePresence);
      const state = states.get(r.userId);
      if (state && !this.known.has(r.userId)) this.known.set(r.userId, state);
      if (!this.watching.get(watcher)?.has(r.userId)) continue; // replaced by a newer watch meanwhile
      const update = this.stateOf(r.userId, r.lastSeen);
      this.sent.set(r.userId, update);
      updates.push(update);
    }
    return updates;
  }

  /**
   * `fromUserId` has just written to these users: their watchers on this node that asked for `fromUserId` now see
   * its presence. (Watchers on other nodes see it at their next watch, which clients send on every reconnect.)
   */
  contactsAdded(fromUserId: string, toUserIds: string[]): void {
    const waiting = this.deniedOf.get(fromUserId);
    if (!waiting) return;
    const to = new Set(toUserIds);
    for (const watcher of [...waiting]) {
      if (!to.has(watcher.userId)) continue;
      removeFrom(this.deniedOf, fromUserId, watcher);
      this.denied.get(watcher)?.delete(fromUserId);
      this.watching.get(watcher)?.add(fromUserId);
      addTo(this.watchersOf, fromUserId, watcher);
      void this.admitted(watcher, fromUserId).catch(this.o.onError);
    }
  }

  /**
   * `blocker` has just blocked `blocked`: its watchers that are `blocked`, on every node, see the hidden state from
   * now on, the same as a user who never wrote to them.
   */
  hide(blocker: string, blocked: string): void {
    void this.o.bus.publish({ type: 'block', blocker, blocked, on: true });
    this.applyHide(blocker, blocked);
  }

  /** `blocker` has unblocked `blocked`: when it has written to them, their watchers (every node) may see it again. */
  unhide(blocker: string, blocked: string): void {
    void this.o.bus.publish({ type: 'block', blocker, blocked, on: false });
    this.applyUnhide(blocker, blocked);
  }

  private applyHide(blocker: string, blocked: string): void {
    for (const watcher of [...(this.watchersOf.get(blocker) ?? [])]) {
      if (watcher.userId !== blocked) continue;
      this.watching.get(watcher)?.delete(blocker);
      removeFrom(this.watchersOf, blocker, watcher);
      if (!this.watchersOf.has(blocker)) {
        this.sharing.delete(blocker);
        this.known.delete(blocker);
        this.sent.delete(blocker);
      }
      let denied = this.denied.get(watcher);
      if (!denied) this.denied.set(watcher, (denied = new Set()));
      denied.add(blocker);
      addTo(this.deniedOf, blocker, watcher);
      watcher.send({ userId: blocker, online: false, lastSeen: null });
    }
  }

  private applyUnhide(blocker: string, blocked: string): void {
    if (!this.deniedOf.has(blocker)) return;
    this.o.store.contactsWritingTo(blocked, [blocker]).then((writers) => {
      if (writers.includes(blocker)) this.contactsAdded(blocker, [blocked]);
    }, this.o.onError);
  }

  /** Sends a watcher the state of a user it was just allowed to see. */
  private async admitted(watcher: PresenceWatcher, userId: string): Promise<void> {
    const [records, states] = await Promise.all([this.o.store.getPresence([userId]), this.o.registry.states([userId])]);
    const r = records[0];
    if (!r || !this.watching.get(watcher)?.has(userId)) return;
    this.sharing.set(userId, r.sharePresence);
    const state = states.get(userId);
    if (state && !this.known.has(userId)) this.known.set(userId, state);
    const update = this.stateOf(userId, r.lastSeen);
    this.sent.set(userId, update);
    watcher.send(update);
  }

  /** Stops every watch of `watcher` (on disconnect). */
  unwatch(watcher: PresenceWatcher): void {
    for (const id of this.denied.get(watcher) ?? []) removeFrom(this.deniedOf, id, watcher);
    this.denied.delete(watcher);
    for (const id of this.watching.get(watcher) ?? []) {
      const set = this.watchersOf.get(id);
      set?.delete(watcher);
      if (set?.size === 0) {
        this.watchersOf.delete(id);
        this.sharing.delete(id);
        this.known.delete(id);
        this.sent.delete(id);
      }
    }
    this.watching.delete(watcher);
  }

  /** After a user changed sharePresence on this node: every node's watchers see the real state, or the hidden one. */
  async sharingChanged(userId: string, share: boolean): Promise<void> {
    void this.o.bus.publish({ type: 'sharing', userId, share });
    await this.applySharing(userId, share);
  }

  /** After the bus was cut off: the registry and the store say what watchers should see now. */
  async resync(): Promise<void> {
    const ids = [...this.watchersOf.keys()];
    if (ids.length === 0) return;
    const [records, states] = await Promise.all([this.o.store.getPresence(ids), this.o.registry.states(ids)]);
    for (const r of records) {
      if (!this.watchersOf.has(r.userId)) continue;
      this.sharing.set(r.userId, r.sharePresence);
      const state = states.get(r.userId);
      if (state) this.known.set(r.userId, state);
      else if (this.known.get(r.userId)?.online) this.known.set(r.userId, { online: false, lastSeen: r.lastSeen ?? 0 });
      this.sendIfChanged(r.userId, this.stateOf(r.userId, r.lastSeen));
    }
  }

  /** Resolves when every connect and disconnect reported so far has reached the registry (before closing it). */
  async idle(): Promise<void> {
    while (this.queues.size > 0) await Promise.all(this.queues.values());
  }

  private serialize(userId: string, step: () => Promise<void>): void {
    const previous = this.queues.get(userId) ?? Promise.resolve();
    const next = previous.then(step).catch(this.o.onError);
    this.queues.set(userId, next);
    void next.then(() => {
      if (this.queues.get(userId) === next) this.queues.delete(userId);
    });
  }

  /** A transition seen on this node: persisted, told to the other nodes, applied here. */
  private transition(update: PresenceUpdate & { lastSeen: number }): void {
    this.o.lastSeen.seen(update.userId, update.lastSeen);
    void this.o.bus.publish({ type: 'presence', update });
    this.apply(update);
  }

  private apply(update: PresenceUpdate): void {
    if (!this.watchersOf.has(update.userId)) return;
    this.known.set(update.userId, { online: update.online, lastSeen: update.lastSeen ?? 0 });
    if (this.sharing.get(update.userId) !== true) return;
    this.sendIfChanged(update.userId, this.stateOf(update.userId, null));
  }

  private async applySharing(userId: string, share: boolean): Promise<void> {
    if (!this.watchersOf.has(userId)) return;
    const stored = share && !this.known.has(userId) ? await this.o.store.getPresence([userId]) : [];
    if (!this.watchersOf.has(userId)) return;
    this.sharing.set(userId, share);
    this.send(userId, this.stateOf(userId, stored[0]?.lastSeen ?? null));
  }

  private sendIfChanged(userId: string, update: PresenceUpdate): void {
    const last = this.sent.get(userId);
    if (last && last.online === update.online && last.lastSeen === update.lastSeen) return;
    this.send(userId, update);
  }

  private send(userId: string, update: PresenceUpdate): void {
    this.sent.set(userId, update);
    for (const w of this.watchersOf.get(userId) ?? []) w.send(update);
  }

  /** What watchers may see of a user; `storedLastSeen` is used when no node has reported the user. */
  private stateOf(userId: string, storedLastSeen: number | null): PresenceUpdate {
    if (this.sharing.get(userId) !== true) return { userId, online: false, lastSeen: null };
    const state = this.known.get(userId);
    if (!state) return { userId, online: false, lastSeen: storedLastSeen };
    return { userId, online: state.online, lastSeen: state.lastSeen };
  }
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  set?.delete(value);
  if (set?.size === 0) map.delete(key);
}
