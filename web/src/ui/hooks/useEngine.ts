// React bindings for the engine: the snapshot via useSyncExternalStore, one conversation's messages, a clock.
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { ChatEngineApi, ChatMessage, EngineSnapshot } from '../../client/types';

export function useSnapshot(engine: ChatEngineApi): EngineSnapshot {
  return useSyncExternalStore(
    (l) => engine.subscribe(l),
    () => engine.getSnapshot(),
  );
}

const PAGE = 50;

export interface ConversationMessages {
  messages: ChatMessage[];
  hasOlder: boolean;
  loadOlder: () => Promise<void>;
  error: string | null;
}

/** Messages of one conversation: the newest page first, older pages on demand, live arrivals and ticks. */
export function useConversationMessages(engine: ChatEngineApi, conv: string): ConversationMessages {
  const [byId, setById] = useState<Map<string, ChatMessage>>(new Map());
  const [cursor, setCursor] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loading = useRef(false);

  useEffect(() => {
    let cancelled = false;
    setById(new Map());
    setCursor(null);
    setError(null);
    const off = engine.onMessages((c, changed) => {
      if (c !== conv) return;
      setById((prev) => {
        const next = new Map(prev);
        for (const m of changed) next.set(m.id, m);
        return next;
      });
    });
    // Disappearing messages whose time ran out are gone from the database: drop them from view too.
    const offRemoved = engine.onMessagesRemoved((c, ids) => {
      if (c !== conv) return;
      setById((prev) => {
        const next = new Map(prev);
        for (const id of ids) next.delete(id);
        return next;
      });
    });
    engine
      .loadHistory(conv, null, PAGE)
      .then((page) => {
        if (cancelled) return;
        setById((prev) => {
          const next = new Map(prev);
          for (const m of page.messages) if (!next.has(m.id)) next.set(m.id, m);
          return next;
        });
        setCursor(page.cursor);
      })
      .catch((e: unknown) => !cancelled && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      cancelled = true;
      off();
      offRemoved();
    };
  }, [engine, conv]);

  const loadOlder = useCallback(async () => {
    if (cursor === null || loading.current) return;
    loading.current = true;
    try {
      const page = await engine.loadHistory(conv, cursor, PAGE);
      setById((prev) => {
        const next = new Map(prev);
        for (const m of page.messages) if (!next.has(m.id)) next.set(m.id, m);
        return next;
      });
      setCursor(page.cursor);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      loading.current = false;
    }
  }, [engine, conv, cursor]);

  const messages = [...byId.values()].sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1));
  return { messages, hasOlder: cursor !== null, loadOlder, error };
}

/** Re-renders every `ms` (for "is typing…" expiry and relative times). */
export function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
