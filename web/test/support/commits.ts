// Helpers for tests of races between an engine's writers: hold one IndexedDB commit back while others go on, list
// what the engine shows its page, and read raw (sealed) records outside the engine.
import { openDB } from 'idb';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient } from './engine';

/** A raw IndexedDB record (its sealed form), read outside the engine. */
export async function rawRecord(dbName: string, store: 'messages' | 'conversations', key: string): Promise<unknown> {
  const db = await openDB(dbName);
  try {
    return await db.get(store, key);
  } finally {
    db.close();
  }
}

/**
 * Holds the engine's next IndexedDB commit that writes messages (after it read and sealed them), and also every store
 * in `alsoWrites`, until `release`, which resolves once that commit is done; other commits go on meanwhile.
 */
export function holdNextMessagesCommit(
  engine: ChatEngineApi,
  alsoWrites: readonly ('conversations' | 'outbox')[] = [],
): {
  holding: Promise<void>;
  release: () => Promise<void>;
  stop: () => void;
} {
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  let open!: () => void;
  const released = new Promise<void>((resolve) => (open = resolve));
  let committed!: () => void;
  const done = new Promise<void>((resolve) => (committed = resolve));
  let armed = true;
  asClient(engine).dangerousTestOnlyAroundCommit(async (batch, commit) => {
    if (!armed || !batch.stores.has('messages') || alsoWrites.some((s) => !batch.stores.has(s))) return commit();
    armed = false;
    held();
    await released;
    try {
      await commit();
    } finally {
      committed();
    }
  });
  return {
    holding,
    release: async () => {
      open();
      await done;
    },
    stop: () => {
      open();
      asClient(engine).dangerousTestOnlyAroundCommit(null);
    },
  };
}

/** The ids of the messages the engine tells its page about (new or changed), until `offShown`. */
export function watchShown(engine: ChatEngineApi): { shown: string[]; offShown: () => void } {
  const shown: string[] = [];
  const offShown = engine.onMessages((_conv, messages) => shown.push(...messages.map((m) => m.id)));
  return { shown, offShown };
}
