// BlockedPeople: the Settings card that lists the people this account blocks, each with "Unblock".
import { useId, useState } from 'react';
import type { ChatEngineApi, Person } from '../../client/types';
import { FormError } from './FormError';

interface Props {
  engine: ChatEngineApi;
  blocked: readonly Person[];
}

export function BlockedPeople({ engine, blocked }: Props) {
  const [error, setError] = useState<string | null>(null);
  const id = useId();

  async function unblock(userId: string) {
    setError(null);
    try {
      await engine.unblock(userId);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }

  return (
    <fieldset className="card">
      <legend>Blocked people</legend>
      <FormError error={error} />
      {blocked.length === 0 ? (
        <p className="hint">You have not blocked anyone.</p>
      ) : (
        <ul className="blocked-list" aria-label="Blocked people">
          {blocked.map((p) => (
            <li key={p.userId}>
              <span id={`${id}-${p.userId}`}>{p.username}</span>
              <button
                type="button"
                className="btn"
                aria-describedby={`${id}-${p.userId}`}
                onClick={() => void unblock(p.userId)}
              >
                Unblock
              </button>
            </li>
          ))}
        </ul>
      )}
      <p className="hint">
        People you block cannot send you messages or add you to groups, and do not see when you are online. They are not
        told.
      </p>
    </fieldset>
  );
}
