// SessionEnded: the relay ended this device's session. Signing in again (the password, on this same device) keeps
// history, contacts, verification and keys: nothing local is erased.
import { useState } from 'react';
import type { ChatEngineApi } from '../../client/types';

interface Props {
  engine: ChatEngineApi;
  onSignedOut: () => void;
}

export function SessionEnded({ engine, onSignedOut }: Props) {
  const [busy, setBusy] = useState(false);

  async function again() {
    setBusy(true);
    // Keeps everything local; the relay's refusal to end an already-ended session is only logged.
    await engine.signOut(true).catch(() => undefined);
    onSignedOut();
  }

  return (
    <div className="notice notice-error session-ended" role="alert">
      <span>
        Your session on the relay ended. Sign in again with your password: your messages, contacts and keys stay on this
        device.
      </span>
      <button type="button" className="btn btn-primary" disabled={busy} onClick={() => void again()}>
        Sign in again
      </button>
    </div>
  );
}
