// Sign up / sign in: one form, two modes. Argon2id runs in a worker, so the page stays responsive meanwhile.
import { useId, useState, type FormEvent } from 'react';
import type { BootProgress, ChatEngineApi, EngineBootApi } from '../../client/types';
import { Logo } from '../components/Logo';
import { ProgressNote, type Step } from '../components/ProgressNote';
import { FormError } from '../components/FormError';

const USERNAME = /^[A-Za-z0-9_]{3,32}$/;

export function AuthScreen({ boot, onSignedIn }: { boot: EngineBootApi; onSignedIn: (e: ChatEngineApi) => void }) {
  const [mode, setMode] = useState<'signup' | 'signin'>('signup');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [step, setStep] = useState<Step | null>(null);
  const hintId = useId();

  const busy = step !== null;
  const signup = mode === 'signup';

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    if (!USERNAME.test(username)) {
      setError('Usernames are 3–32 letters, digits or underscores.');
      return;
    }
    if (signup && password.length < 8) {
      setError('Choose a password of at least 8 characters.');
      return;
    }
    if (signup && password !== confirm) {
      setError('The passwords do not match. Type the same password twice.');
      return;
    }
    const progress: BootProgress = (s) => setStep(s);
    setStep('deriving');
    try {
      const engine = signup
        ? await boot.signUp(username, password, progress)
        : await boot.signIn(username, password, progress);
      onSignedIn(engine);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setStep(null);
    }
  }

  return (
    <main className="auth-page">
      <form className="auth-card" onSubmit={(e) => void submit(e)} aria-busy={busy}>
        <Logo />
        <h1 className="auth-title">{signup ? 'Create your account' : 'Welcome back'}</h1>
        <p className="muted auth-sub">
          Messages are encrypted on this device before they leave it. Your password never leaves this browser.
        </p>
        <label className="field">
          <span>Username</span>
          <input
            name="username"
            autoComplete="username"
            autoCapitalize="none"
            spellCheck={false}
            value={username}
            disabled={busy}
            aria-describedby={hintId}
            onChange={(e) => setUsername(e.target.value)}
            required
          />
        </label>
        <label className="field">
          <span>Password</span>
          <input
            name="password"
            type="password"
            autoComplete={signup ? 'new-password' : 'current-password'}
            value={password}
            disabled={busy}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        {signup ? (
          <label className="field">
            <span>Confirm password</span>
            <input
              name="confirm-password"
              type="password"
              autoComplete="new-password"
              value={confirm}
              disabled={busy}
              onChange={(e) => setConfirm(e.target.value)}
              required
            />
          </label>
        ) : null}
        <p id={hintId} className="hint">
          {signup ? 'Letters, digits and _ · at least 8 characters of password' : ' '}
        </p>
        {signup ? (
          <p className="auth-warning">
            There is no password reset. If you forget your password, your account and messages cannot be recovered.
          </p>
        ) : null}
        <FormError error={error} />
        {step ? <ProgressNote step={step} /> : null}
        <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
          {signup ? 'Create account' : 'Sign in'}
        </button>
        <p className="switch-mode">
          {signup ? 'Already have an account?' : 'New to WeConnect?'}{' '}
          <button
            type="button"
            className="link"
            disabled={busy}
            onClick={() => {
              setMode(signup ? 'signin' : 'signup');
              setError(null);
            }}
          >
            {signup ? 'Use an existing account' : 'Register a new account'}
          </button>
        </p>
      </form>
    </main>
  );
}
