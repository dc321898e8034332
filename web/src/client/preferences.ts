// Preferences (issue #15): this device's notification and privacy choices — what a desktop notification shows,
// the sound, read receipts and typing indicators (reciprocal, as in Signal), and which conversations are muted.
// Kept sealed in IndexedDB (secrets 'preferences'); they stay on this device (not synced to our other devices).
// Also the "a message arrived" event the UI's notifications listen to (new messages only, never ticks or edits).

import { z } from 'zod';
import type { EngineContext } from './context';
import { ClientError } from './errors';
import type { ChatMessage } from './types';

export const preferencesSchema = z.object({
  /** What a desktop notification shows: name and text, the name only, or nothing but "New message". */
  notifyContent: z.enum(['full', 'name', 'none']),
  /** A short tone with each notification. */
  sound: z.boolean(),
  /** Off: no read receipts go out, and others' "read" shows as delivered. */
  readReceipts: z.boolean(),
  /** Off: no typing indicators go out, and none show. */
  typingIndicators: z.boolean(),
  /** Conversations that never notify and do not count in the title. */
  muted: z.array(z.string().max(64)).max(10_000),
});
export type Preferences = z.infer<typeof preferencesSchema>;

export const DEFAULT_PREFERENCES: Preferences = {
  notifyContent: 'name',
  sound: false,
  readReceipts: true,
  typingIndicators: true,
  muted: [],
};

const KEY = 'preferences';

export type ArrivalListener = (conv: string, message: ChatMessage) => void;

export class PreferenceStore {
  readonly #ctx: EngineContext;
  readonly #arrivals = new Set<ArrivalListener>();

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  get current(): Preferences {
    return this.#ctx.snapshot.preferences;
  }

  async load(): Promise<void> {
    // A record this version cannot read (a newer or damaged one) falls back to the defaults rather than lock the user out.
    const stored = await this.#ctx.store.read('secrets', KEY, preferencesSchema.partial()).catch(() => null);
    this.#ctx.set({ preferences: { ...DEFAULT_PREFERENCES, ...stored } }, false);
  }

  /**
   * Changes settings (`patch`, or a function of the settings as they are then). One change at a time, each from the
   * settings the one before stored: two switched at once (read receipts off, then typing off) each started from the
   * settings without the other, and the later one switched the first back on.
   */
  set(patch: Partial<Preferences> | ((now: Preferences) => Partial<Preferences>)): Promise<void> {
    return this.#ctx.queue.run(`settings:${KEY}`, async () => {
      const now = this.current;
      const parsed = preferencesSchema.safeParse({ ...now, ...(typeof patch === 'function' ? patch(now) : patch) });
      if (!parsed.success) throw new ClientError('invalid_input', 'These settings are not valid.');
      await this.#ctx.store.write('secrets', KEY, parsed.data);
      this.#ctx.set({ preferences: parsed.data });
    });
  }

  setMuted(conv: string, muted: boolean): Promise<void> {
    return this.set((now) => {
      const others = now.muted.filter((c) => c !== conv);
      return { muted: muted ? [...others, conv] : others };
    });
  }

  onArrival(listener: ArrivalListener): () => void {
    this.#arrivals.add(listener);
    return () => this.#arrivals.delete(listener);
  }

  /** A message from someone else was stored (the engine calls it once per new message). */
  arrived(conv: string, message: ChatMessage): void {
    for (const l of this.#arrivals) l(conv, message);
  }
}
