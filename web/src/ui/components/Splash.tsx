// Splash: the neutral first paint while the engine module loads, or a plain fatal error.
import { Logo } from './Logo';

export function Splash({ error }: { error?: string }) {
  return (
    <main className="auth-page">
      <div className="auth-card splash">
        <Logo />
        {error ? (
          <p role="alert" className="form-error">
            WeConnect could not start: {error}
          </p>
        ) : (
          <p className="muted" aria-live="polite">
            Loading…
          </p>
        )}
      </div>
    </main>
  );
}
