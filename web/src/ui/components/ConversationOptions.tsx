// The conversation header's Mute / Unmute button and its "Disappearing messages" timer (issue #15). In a group the
// timer is shown to admins only (the engine and every member's device refuse it from anyone else).
import { useState } from 'react';
import { timerLabel } from '../../client/disappearing';
import { DISAPPEARING_TIMERS } from '../../client/schemas';
import type { ChatEngineApi, Conversation } from '../../client/types';

interface Props {
  engine: ChatEngineApi;
  conversation: Conversation;
  me: string;
  muted: boolean;
}

export function ConversationOptions({ engine, conversation, me, muted }: Props) {
  const { conv, group } = conversation;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const canSetTimer = !group || (!group.left && group.admins.includes(me));
  const timer = conversation.expireSeconds ?? 0;

  async function run(task: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await task();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      {canSetTimer ? (
        <label className="timer-select" title="Disappearing messages">
          <span className="icon icon-timer" aria-hidden="true" />
          <select
            aria-label="Disappearing messages"
            value={timer}
            disabled={busy}
            onChange={(e) => void run(() => engine.setDisappearing(conv, Number(e.target.value)))}
          >
            {DISAPPEARING_TIMERS.map((s) => (
              <option key={s} value={s}>
                {s === 0 ? 'Off' : timerLabel(s)}
              </option>
            ))}
          </select>
        </label>
      ) : timer > 0 ? (
        <span className="timer-pill" title="Disappearing messages">
          <span className="icon icon-timer" aria-hidden="true" />
          {timerLabel(timer)}
        </span>
      ) : null}
      <button
        type="button"
        className="btn btn-ghost head-btn"
        disabled={busy}
        onClick={() => void run(() => engine.setMuted(conv, !muted))}
      >
        {muted ? 'Unmute' : 'Mute'}
      </button>
      {error ? (
        <span className="head-error" role="alert">
          {error}
        </span>
      ) : null}
    </>
  );
}
