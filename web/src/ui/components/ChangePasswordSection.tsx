// ChangePasswordSection: Settings → change the password (current, new, confirm). The engine re-keys the relay's
// key backup and replaces the auth key in one relay call; other devices stay signed in.
import { useState, type FormEvent } from 'react';
import type { ChatEngineApi } from '../../client/types';
import { FormError } from './FormError';

const STEP_TEXT = {
  checking: 'Checking your current password…',
  deriving: 'Deriving keys from the new password…',
  saving: 'Saving on the relay…',
} as const;

export function ChangePasswordSection({ engine }: { engine: ChatEngineApi }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [step, setStep] = useState<keyof typeof STEP_TEXT | null>(null);
  const [done, setDone] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setDone(false);
    if (next.length < 8) {
      setError('Choose a new password of at least 8 characters.');
      return;
    }
    if (next !== confirm) {
      setError('The new passwords do not match.');
      return;
    }
    setStep('checking');
    try {
      await engine.changePassword(current, next, setStep);
      setCurrent('');
      setNext('');
      setConfirm('');
      setDone(true);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setStep(null);
    }
  }

  const busy = step !== null;
  return (
    <form className="card" aria-labelledby="change-password-title" onSubmit={(e) => void submit(e)} aria-busy={busy}>
      <h3 id="change-password-title" className="card-title">
        Change password
      </h3>
      <p className="hint">
        Your other devices stay signed in. The next time one of them asks for your password, use the new one.
      </p>
      <label className="field">
        <span>Current password</span>
        <input
          type="password"
          autoComplete="current-password"
          value={current}
          disabled={busy}
          onChange={(e) => setCurrent(e.target.value)}
          required
        />
      </label>
      <label className="field">
        <span>New password</span>
        <input
          type="password"
          autoComplete="new-password"
          value={next}
          disabled={busy}
          onChange={(e) => setNext(e.target.value)}
          required
        />
      </label>
      <label className="field">
        <span>Confirm new password</span>
        <input
          type="password"
          autoComplete="new-password"
          value={confirm}
          disabled={busy}
          onChange={(e) => setConfirm(e.target.value)}
          required
        />
      </label>
      <FormError error={error} />
      <p className="hint" role="status">
        {step ? STEP_TEXT[step] : done ? 'Your password was changed.' : ''}
      </p>
      <button type="submit" className="btn btn-primary" disabled={busy}>
        Change password
      </button>
    </form>
  );
}
