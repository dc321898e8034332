// KeyTransparencySection (Settings → Key transparency, issue #16): the relay log key this device checks every key
// and device list against, how it was pinned, and the newest log size it verified, with a copy button, so a user (or
// an auditor running `npm run kt-audit`) can compare it over another channel: a relay that shows different people
// different logs must also show them different keys or sizes that do not fit together.
import { useEffect, useId, useState } from 'react';
import type { ChatEngineApi, KeyTransparencyStatus } from '../../client/types';
import '../styles/client-version.css';
import { groups } from './ClientVersionSection';
import { CopyButton } from './CopyButton';
import { KeyTransparencyConfig } from './KeyTransparencyConfig';

export function KeyTransparencySection({ engine }: { engine: ChatEngineApi }) {
  const [status, setStatus] = useState<KeyTransparencyStatus | null | 'loading'>('loading');
  const [reads, setReads] = useState(0);
  const titleId = useId();

  useEffect(() => {
    let live = true;
    void engine.keyTransparencyStatus().then(
      (s) => live && setStatus(s),
      () => live && setStatus(null),
    );
    return () => {
      live = false;
    };
  }, [engine, reads]);

  return (
    <section className="card key-transparency" aria-labelledby={titleId}>
      <h3 id={titleId} className="card-title">
        Key transparency
      </h3>
      <p className="hint">
        Every security key and device list this app receives is checked against the relay&apos;s public, append-only
        log. Compare the log key with someone who uses the same relay: it must be the same for everyone.
      </p>
      {status === 'loading' ? (
        <p className="muted">Reading…</p>
      ) : status === null ? (
        <p className="muted">This device has not checked the relay&apos;s log yet.</p>
      ) : (
        <>
          <dl className="client-version-facts">
            <dt>Relay log key</dt>
            <dd>
              <code className="client-version-hash" data-key={status.verifierKey}>
                {groups(status.verifierKey).map((g, i) => (
                  <span key={i}>{g}</span>
                ))}
              </code>
            </dd>
            <dt>Pinned</dt>
            <dd>{status.pinned === 'configured' ? 'Configured (given to this app)' : 'On first use of this relay'}</dd>
            <dt>Log size checked</dt>
            <dd>{status.treeSize === null ? 'None yet' : `${status.treeSize.toLocaleString('en')} entries`}</dd>
            <dt>Witnesses required</dt>
            <dd>
              {witnessCount(status) === 0 ? (
                'None'
              ) : (
                <ul className="kt-witness-list" aria-label="Witnesses required">
                  {[...new Set([...status.deploymentWitnessKeys, ...status.witnessKeys])].map((w) => (
                    <li key={w}>{`${w.split('+')[0]} (key id ${w.split('+')[1]})`}</li>
                  ))}
                </ul>
              )}
            </dd>
          </dl>
          <CopyButton value={status.verifierKey} label="Copy log key" what="key" />
        </>
      )}
      {status === 'loading' ? null : (
        <KeyTransparencyConfig engine={engine} status={status} changed={() => setReads((n) => n + 1)} />
      )}
    </section>
  );
}

function witnessCount(s: KeyTransparencyStatus): number {
  return new Set([...s.deploymentWitnessKeys, ...s.witnessKeys]).size;
}
