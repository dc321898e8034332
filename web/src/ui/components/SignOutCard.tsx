// SignOutCard: "Sign out" keeps this device's encrypted history and keys (sign in again with the password to see
// them); erasing them is a separate, confirmed choice.
import { useId, useState } from 'react';
import type { ChatEngineApi } from '../../client/types';
import { FormError } from './FormError';

interface Props {
  engine: ChatEngineApi;
  onSignedOut: () => void;
}

export function SignOutCard({ engine, onSignedOut }: Props) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const id = useId();

  async function signOut(keepLocalData: boolean) {
    setBusy(true);
    setError(null);
    try {
      await engine.signOut(keepLocalData);
      onSignedOut();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  }

  return (
    <fieldset className="card">
      <legend>Sign out</legend>
      <FormError error={error} />
      <p className="hint">
        Your messages, contacts and keys stay on this device, encrypted. Sign in again with your password to see them.
      </p>
      <div className="row">
        <button type="button" className="btn" disabled={busy} onClick={() => void signOut(true)}>
          Sign out
        </button>
        <button type="button" className="btn btn-danger" disabled={busy} onClick={() => setConfirming(true)}>
          Sign out and erase this device
        </button>
      </div>
      {confirming ? (
        <div className="confirm" role="alertdialog" aria-labelledby={`${id}-title`} aria-describedby={`${id}-text`}>
          <h3 id={`${id}-title`}>Erase this device?</h3>
          <p id={`${id}-text`}>
            Your message history and keys are deleted from this browser. History is kept nowhere else, so it cannot be
            brought back. Your account stays: signing in again restores your contacts, not your messages.
          </p>
          <div className="row">
            <button type="button" className="btn" autoFocus disabled={busy} onClick={() => setConfirming(false)}>
              Cancel
            </button>
            <button type="button" className="btn btn-danger" disabled={busy} onClick={() => void signOut(false)}>
              Erase and sign out
            </button>
          </div>
        </div>
      ) : null}
    </fieldset>
  );
}
