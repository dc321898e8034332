// SessionStates: where the engine keeps its Double Ratchet session states — one sealed record per peer device under
// the IndexedDB array key [userId, deviceId], holding a few states, newest first (Sesame). Loading filters by the
// exact peer id; the trust rule that decides which state may be used is in sessions.ts.

import type { Session } from '@weconnect/crypto';
import { z } from 'zod';
import type { Crypto } from './crypto-loader';
import { ClientError } from './errors';
import { isRelayId } from './schemas';
import { WriteBatch, type LocalStore } from './store';

/** How many session states a peer device keeps (the newest first); older ones are dropped. */
export const MAX_STATES_PER_DEVICE = 5;

const anyValue = z.unknown();
const deviceRecordSchema = z.object({
  v: z.literal(2),
  states: z.array(z.unknown()).min(1).max(MAX_STATES_PER_DEVICE),
});

export class SessionStates {
  readonly #c: Crypto;
  readonly #store: LocalStore;

  constructor(c: Crypto, store: LocalStore) {
    this.#c = c;
    this.#store = store;
  }

  /** The states of one peer device, newest first (none: []). A record whose states name another peer is refused. */
  async device(peerUserId: string, deviceId: string): Promise<Session[]> {
    const rec = await this.#store.read('sessions', [peerUserId, deviceId], deviceRecordSchema);
    if (!rec) return [];
    const states = rec.states.map((raw) => this.#c.deserializeSession(raw));
    if (states.some((s) => s.peerUserId !== peerUserId || s.peerDeviceId !== deviceId)) {
      throw new ClientError('corrupt_store', 'A stored session does not belong to the device it is filed under');
    }
    return states;
  }

  /** Every device of the peer we hold states for: deviceId → states, newest first. Filtered by exact peer id. */
  async user(peerUserId: string): Promise<Map<string, Session[]>> {
    const out = new Map<string, Session[]>();
    for (const key of await this.#store.keysUnder('sessions', [peerUserId])) {
      const deviceId = key[1]!;
      const states = await this.device(peerUserId, deviceId);
      if (states.length > 0) out.set(deviceId, states);
    }
    return out;
  }

  /** Stages a device's states (at most MAX_STATES_PER_DEVICE kept); none deletes its record. */
  async stage(batch: WriteBatch, peerUserId: string, deviceId: string, states: Session[]): Promise<void> {
    if (states.length === 0) {
      this.#store.stageDelete(batch, 'sessions', [peerUserId, deviceId]);
      return;
    }
    const kept = states.slice(0, MAX_STATES_PER_DEVICE).map((s) => this.#c.serializeSession(s));
    await this.#store.stage(batch, 'sessions', [peerUserId, deviceId], { v: 2, states: kept });
  }

  async has(peerUserId: string): Promise<boolean> {
    return (await this.#store.keysUnder('sessions', [peerUserId])).length > 0;
  }

  /** Stages the deletion of every state held with a peer. */
  async stageForget(batch: WriteBatch, peerUserId: string): Promise<void> {
    for (const key of await this.#store.keysUnder('sessions', [peerUserId])) {
      this.#store.stageDelete(batch, 'sessions', key);
    }
  }

  /**
   * Moves records of the old layout (string keys `${userId}/${deviceId}`) to array keys, once, at start. A record is
   * moved only when both ids have the relay's format and the session inside names exactly that peer; others are
   * dropped (a later send starts a fresh session).
   */
  async migrateLegacy(): Promise<void> {
    const legacy = await this.#store.keys('sessions', '');
    if (legacy.length === 0) return;
    const batch = new WriteBatch();
    for (const key of legacy) {
      this.#store.stageDelete(batch, 'sessions', key);
      const [userId, deviceId, ...rest] = key.split('/');
      if (rest.length > 0 || !isRelayId(userId) || !isRelayId(deviceId)) continue;
      try {
        const raw = await this.#store.read('sessions', key, anyValue);
        const s = raw === null ? null : this.#c.deserializeSession(raw);
        if (s && s.peerUserId === userId && s.peerDeviceId === deviceId) {
          const kept = await this.device(userId, deviceId);
          await this.stage(batch, userId, deviceId, [...kept, s]);
        }
      } catch {
        // unreadable: dropped
      }
    }
    await this.#store.commit(batch);
  }
}
