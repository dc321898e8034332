// TransparencyBanner: the conversation's banner when a contact's keys failed the key transparency check (issue #16),
// with "Check again": a fresh check of the relay's log that lifts the block only if everything now passes. A relay
// that showed this device a log that does not extend the one it had verified stays blocked (see transparency.ts).
import { useState } from 'react';
import type { ChatEngineApi } from '../../client/types';
import '../styles/key-transparency.css';

export function TransparencyBanner({
  engine,
  userId,
  username,
  reason,
}: {
  engine: ChatEngineApi;
  userId: string;
  username: string;
  reason: string;
}) {
  const [checking, setChecking] = useState(false);
  const [outcome, setOutcome] = useState<string>('');

  async function checkAgain() {
    setChecking(true);
    setOutcome('Checking the relay’s log again…');
    try {
      await engine.recheckContact(userId);
      setOutcome('');
    } catch (e) {
      // A check that fails again keeps the block; the reason above is the new one.
      setOutcome(
        e instanceof Error && 'code' in e && e.code === 'transparency_failed'
          ? 'Checked again: the check still fails, so sending stays stopped.'
          : `The check could not run: ${e instanceof Error ? e.message : String(e)}`,
      );
    } finally {
      setChecking(false);
    }
  }

  return (
    <div className="key-banner is-blocked" role="alert">
      <span className="icon icon-warn" aria-hidden="true" />
      <p>{`${reason} Sending to ${username} is stopped: the relay may not be showing you their real keys and devices.`}</p>
      <div className="row kt-recheck">
        <button
          type="button"
          className="btn"
          disabled={checking}
          aria-busy={checking}
          onClick={() => void checkAgain()}
        >
          Check again
        </button>
        <p className="hint" role="status">
          {outcome}
        </p>
      </div>
    </div>
  );
}
