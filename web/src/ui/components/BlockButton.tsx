// BlockButton: "Block" / "Unblock" for a one-to-one conversation's header. Blocking is undone with the same button.
import { useState } from 'react';
import type { ChatEngineApi, Person } from '../../client/types';

interface Props {
  engine: ChatEngineApi;
  person: Person;
  blocked: boolean;
}

export function BlockButton({ engine, person, blocked }: Props) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function toggle() {
    setBusy(true);
    setError(null);
    try {
      if (blocked) await engine.unblock(person.userId);
      else await engine.block(person);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <button
        type="button"
        className={`btn btn-ghost head-btn${blocked ? '' : ' block-btn'}`}
        disabled={busy}
        onClick={() => void toggle()}
      >
        {blocked ? 'Unblock' : 'Block'}
      </button>
      {error ? (
        <span className="sr-only" role="alert">
          {error}
        </span>
      ) : null}
    </>
  );
}
