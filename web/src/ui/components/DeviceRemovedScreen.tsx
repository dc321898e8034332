// DeviceRemovedScreen (issue #14): shown when another device of the account removed this one; the engine has already
// erased this browser's keys and history.
import { Logo } from './Logo';

export function DeviceRemovedScreen({ onContinue }: { onContinue: () => void }) {
  return (
    <main className="auth-page">
      <div className="auth-card" role="alert">
        <Logo />
        <h1 className="auth-title">This device was removed</h1>
        <p className="muted">
          Another device of your account removed this one. Its keys and message history were erased from this browser.
          Sign in again to use it as a new device.
        </p>
        <button type="button" className="btn btn-primary btn-block" onClick={onContinue}>
          Continue
        </button>
      </div>
    </main>
  );
}
