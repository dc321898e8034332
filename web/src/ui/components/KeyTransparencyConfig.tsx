// KeyTransparencyConfig (Settings → Key transparency, issue #16): the user gives the relay's log key (instead of
// trusting the first one the relay names) and the witness keys whose cosignatures every checkpoint must carry. A log
// key that does not sign the checkpoint this device already verified is never taken silently: a loud warning, and
// only an explicit "Use this key anyway" replaces it.
import { useEffect, useId, useState, type FormEvent } from 'react';
import type { ChatEngineApi, KeyTransparencyStatus } from '../../client/types';
import '../styles/key-transparency.css';

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export function KeyTransparencyConfig({
  engine,
  status,
  changed,
}: {
  engine: ChatEngineApi;
  status: KeyTransparencyStatus | null;
  /** Read the status again (after a save). */
  changed: () => void;
}) {
  const keyId = useId();
  const keyHelp = useId();
  const keyError = useId();
  const witnessId = useId();
  const witnessHelp = useId();
  const witnessError = useId();
  const [key, setKey] = useState('');
  const [keyProblem, setKeyProblem] = useState<string | null>(null);
  const [mismatch, setMismatch] = useState<string | null>(null);
  const [keyDone, setKeyDone] = useState('');
  const [witnesses, setWitnesses] = useState('');
  const [witnessProblem, setWitnessProblem] = useState<string | null>(null);
  const [witnessDone, setWitnessDone] = useState('');
  const [busy, setBusy] = useState(false);
  const configured = status?.witnessKeys.join('\n') ?? '';

  useEffect(() => setWitnesses(configured), [configured]);

  async function saveKey(replace: boolean) {
    setBusy(true);
    setKeyProblem(null);
    setKeyDone('');
    try {
      const outcome = await engine.configureLogKey(key, replace);
      if (outcome === 'mismatch') {
        setMismatch(key.trim());
        return;
      }
      setMismatch(null);
      setKeyDone('Log key saved. Every check now uses it.');
      changed();
    } catch (e) {
      setKeyProblem(message(e));
    } finally {
      setBusy(false);
    }
  }

  async function saveWitnesses(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setWitnessProblem(null);
    setWitnessDone('');
    try {
      await engine.configureWitnesses(witnesses.split('\n'));
      setWitnessDone('Witnesses saved. Every checkpoint must now carry their cosignatures.');
      changed();
    } catch (e) {
      setWitnessProblem(message(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="kt-config">
      <form
        className="kt-config-form"
        onSubmit={(e) => {
          e.preventDefault();
          void saveKey(false);
        }}
      >
        <label className="field" htmlFor={keyId}>
          <span>Log key</span>
        </label>
        <input
          id={keyId}
          className="kt-input"
          type="text"
          spellCheck={false}
          autoComplete="off"
          value={key}
          disabled={busy}
          aria-describedby={`${keyHelp}${keyProblem ? ` ${keyError}` : ''}`}
          aria-invalid={keyProblem !== null}
          onChange={(e) => {
            setKey(e.target.value);
            setMismatch(null);
          }}
          required
        />
        <p id={keyHelp} className="hint">
          The relay operator&apos;s log key (<code>name+keyid+key</code>), obtained over a channel you trust.
        </p>
        {keyProblem ? (
          <p id={keyError} role="alert" className="form-error">
            {keyProblem}
          </p>
        ) : null}
        <button type="submit" className="btn" disabled={busy}>
          Save log key
        </button>
        <p className="hint" role="status">
          {keyDone}
        </p>
      </form>
      {mismatch !== null ? (
        <div className="confirm" role="alert">
          <h4 className="kt-warning-title">This key does not sign the log this device has checked</h4>
          <p>
            Nothing was changed. The log checkpoint this device verified is not signed by this key, so either the key is
            wrong, or the relay changed its key, or someone is trying to make this device forget the log it saw. Compare
            the key with the relay&apos;s operator over another channel before you use it. Using it starts the checks
            over under the new key.
          </p>
          <div className="row">
            <button type="button" className="btn btn-danger" disabled={busy} onClick={() => void saveKey(true)}>
              Use this key anyway
            </button>
            <button type="button" className="btn" disabled={busy} onClick={() => setMismatch(null)}>
              Keep the current key
            </button>
          </div>
        </div>
      ) : null}
      <form className="kt-config-form" onSubmit={(e) => void saveWitnesses(e)}>
        <label className="field" htmlFor={witnessId}>
          <span>Witness keys</span>
        </label>
        <textarea
          id={witnessId}
          className="kt-input kt-witnesses"
          rows={3}
          spellCheck={false}
          value={witnesses}
          disabled={busy}
          aria-describedby={`${witnessHelp}${witnessProblem ? ` ${witnessError}` : ''}`}
          aria-invalid={witnessProblem !== null}
          onChange={(e) => setWitnesses(e.target.value)}
        />
        <p id={witnessHelp} className="hint">
          One witness cosignature key per line. Every log checkpoint must carry a cosignature of each; leave empty to
          require none.
        </p>
        {witnessProblem ? (
          <p id={witnessError} role="alert" className="form-error">
            {witnessProblem}
          </p>
        ) : null}
        <button type="submit" className="btn" disabled={busy}>
          Save witnesses
        </button>
        <p className="hint" role="status">
          {witnessDone}
        </p>
      </form>
    </div>
  );
}
