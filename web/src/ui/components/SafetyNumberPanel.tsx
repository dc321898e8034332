// SafetyNumberPanel: the 60-digit safety number and its QR code for one contact; "Mark as verified" records it.
import { useEffect, useState } from 'react';
import type { ChatEngineApi, ContactTrust, SafetyNumberView } from '../../client/types';
import { QrCode } from './QrCode';
import { FormError } from './FormError';
import { PanelHeader } from './PanelHeader';

interface Props {
  engine: ChatEngineApi;
  conv: string;
  username: string;
  trust: ContactTrust | undefined;
  onClose: () => void;
}

export function SafetyNumberPanel({ engine, conv, username, trust, onClose }: Props) {
  const [sn, setSn] = useState<SafetyNumberView | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    engine.safetyNumber(conv).then(
      (v) => !cancelled && setSn(v),
      (e: unknown) => !cancelled && setError(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [engine, conv, trust?.blocked]);

  async function verify() {
    if (!sn) return;
    setError(null);
    try {
      await engine.markVerified(conv, sn.identityKey);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }

  return (
    <section className="safety" aria-labelledby="safety-title">
      <PanelHeader
        titleId="safety-title"
        title={`Safety number with ${username}`}
        closeLabel="Back to the conversation"
        onClose={onClose}
      />
      <div className="settings-body">
        <FormError error={error} />
        <div className="card safety-card">
          <p className="hint">
            Compare these numbers with {username}, in person or on a call, or scan the code on their screen. If they
            match, your conversation is end-to-end encrypted with no one in between.
          </p>
          {sn ? (
            <>
              <QrCode text={toBase64Url(sn.qr)} label={`QR code of the safety number with ${username}`} />
              <p className="safety-digits" aria-label="Safety number" data-digits={sn.digits}>
                {sn.groups.map((g, i) => (
                  <span key={i}>{g}</span>
                ))}
              </p>
            </>
          ) : (
            <p className="muted">Computing…</p>
          )}
          {trust?.verified ? (
            <p className="verified-note">
              <span className="icon icon-check" aria-hidden="true" /> You verified {username}.
            </p>
          ) : (
            <button type="button" className="btn btn-primary" disabled={!sn} onClick={() => void verify()}>
              Mark as verified
            </button>
          )}
        </div>
      </div>
    </section>
  );
}

function toBase64Url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
