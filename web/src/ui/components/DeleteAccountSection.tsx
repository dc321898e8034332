// DeleteAccountSection: Settings → delete the account for good, confirmed with the password. The relay erases
// everything of it; this browser's data is wiped and the app returns to the first screen.
import { useState, type FormEvent } from 'react';
import type { ChatEngineApi } from '../../client/types';
import { FormError } from './FormError';

export function DeleteAccountSection({ engine, onDeleted }: { engine: ChatEngineApi; onDeleted: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await engine.deleteAccount(password);
      onDeleted();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="delete-account-title">
      <h3 id="delete-account-title" className="card-title">
        Delete account
      </h3>
      <p className="hint">
        Deletes your account, keys, devices and messages on the relay and in this browser. Your contacts will see that
        the account was deleted. This cannot be undone.
      </p>
      {confirming ? (
        <form onSubmit={(e) => void submit(e)} aria-busy={busy}>
          <label className="field">
            <span>Password</span>
            <input
              type="password"
              autoComplete="current-password"
              value={password}
              disabled={busy}
              onChange={(e) => setPassword(e.target.value)}
              required
            />
          </label>
          <FormError error={error} />
          <div className="row">
            <button type="submit" className="btn btn-danger" disabled={busy}>
              Delete my account
            </button>
            <button
              type="button"
              className="btn"
              disabled={busy}
              onClick={() => {
                setConfirming(false);
                setPassword('');
                setError(null);
              }}
            >
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <button type="button" className="btn btn-danger" onClick={() => setConfirming(true)}>
          Delete account
        </button>
      )}
    </section>
  );
}
