// Unlock: after a reload the keys are sealed under the password; this screen asks for it once.
import { useEffect, useState, type FormEvent } from 'react';
import type { BootProgress, ChatEngineApi, EngineBootApi } from '../../client/types';
import { Avatar } from '../components/Avatar';
import { Logo } from '../components/Logo';
import { ProgressNote, type Step } from '../components/ProgressNote';
import { FormError } from '../components/FormError';

interface Props {
  boot: EngineBootApi;
  username: string;
  onUnlocked: (engine: ChatEngineApi) => void;
  onForgotten: () => void;
}

export function UnlockScreen({ boot, username, onUnlocked, onForgotten }: Props) {
  const [password, setPassword] = useState('');
  const [keep, setKeep] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [step, setStep] = useState<Step | null>(null);
  const [confirmForget, setConfirmForget] = useState(false);
  const [elsewhere, setElsewhere] = useState(false);
  const busy = step !== null;

  // Another tab holds the one-writer lock: say so now rather than after the password was typed.
  useEffect(() => {
    let cancelled = false;
    const check = () =>
      void boot.openElsewhere().then(
        (held) => !cancelled && setElsewhere(held),
        () => undefined,
      );
    check();
    window.addEventListener('focus', check);
    return () => {
      cancelled = true;
      window.removeEventListener('focus', check);
    };
  }, [boot]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const progress: BootProgress = (s) => setStep(s);
    setStep('deriving');
    try {
      onUnlocked(await boot.unlock(password, keep, progress));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setStep(null);
    }
  }

  async function forget() {
    await boot.forgetLocalAccount();
    onForgotten();
  }

  return (
    <main className="auth-page">
      <form className="auth-card" onSubmit={(e) => void submit(e)} aria-busy={busy}>
        <Logo />
        <div className="unlock-who">
          <Avatar name={username} />
          <div>
            <h1 className="auth-title">Unlock WeConnect</h1>
            <p className="muted">Signed in as {username}</p>
          </div>
        </div>
        <label className="field">
          <span>Password</span>
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            disabled={busy}
            onChange={(e) => setPassword(e.target.value)}
            required
            autoFocus
          />
        </label>
        <label className="check">
          <input type="checkbox" checked={keep} disabled={busy} onChange={(e) => setKeep(e.target.checked)} />
          <span>Keep unlocked on this device</span>
        </label>
        {elsewhere && !error ? (
          <p role="alert" className="form-error">
            WeConnect is open in another tab. Close it there to use it here.
          </p>
        ) : null}
        <FormError error={error} />
        {step ? <ProgressNote step={step} /> : null}
        <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
          Unlock
        </button>
        {confirmForget ? (
          <div className="danger-zone" role="group" aria-label="Remove this account from the device">
            <p>This deletes the keys and message history stored in this browser. Continue?</p>
            <div className="row">
              <button type="button" className="btn btn-danger" onClick={() => void forget()}>
                Delete local data
              </button>
              <button type="button" className="btn" onClick={() => setConfirmForget(false)}>
                Keep
              </button>
            </div>
          </div>
        ) : (
          <p className="switch-mode">
            <button type="button" className="link" disabled={busy} onClick={() => setConfirmForget(true)}>
              Use a different account
            </button>
          </p>
        )}
      </form>
    </main>
  );
}
