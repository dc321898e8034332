// ClientVersionSection (Settings → Client version, issue #16): the running build's hash — the SHA-256 of the scripts
// and stylesheets this tab loaded, each enforced by the browser's Subresource Integrity check — with a copy button, so
// a user can compare it with a published one, whether the relay's release manifest lists exactly those files, and
// whether that manifest is in the relay's public log (the page looks up its entry and checks the proof itself).
import { useEffect, useId, useState } from 'react';
import {
  checkManifest,
  clientVersionOf,
  MANIFEST_URL,
  pageIntegrityEntries,
  type ManifestCheck,
} from '../../client/client-version';
import type { ChatEngineApi, ReleaseLogCheck } from '../../client/types';
import '../styles/client-version.css';
import { CopyButton } from './CopyButton';

type State =
  | { kind: 'loading' }
  | { kind: 'unbound' }
  | { kind: 'ready'; version: string; manifest: ManifestCheck | 'unreadable'; log: ReleaseLogCheck };

async function readState(engine: ChatEngineApi): Promise<State> {
  const entries = pageIntegrityEntries(document);
  if (entries.length === 0) return { kind: 'unbound' };
  const version = await clientVersionOf(entries);
  const none: ReleaseLogCheck = { kind: 'none' };
  try {
    const res = await fetch(MANIFEST_URL, { cache: 'no-store' });
    if (res.status === 404) return { kind: 'ready', version, manifest: { kind: 'none' }, log: none };
    if (!res.ok) return { kind: 'ready', version, manifest: 'unreadable', log: none };
    // The same bytes are compared with the page and looked up in the log.
    const bytes = new Uint8Array(await res.arrayBuffer());
    const [manifest, log] = await Promise.all([checkManifest(entries, bytes), engine.verifyRelease(bytes)]);
    return { kind: 'ready', version, manifest, log };
  } catch {
    return { kind: 'ready', version, manifest: 'unreadable', log: none };
  }
}

/** The hash in eight groups of eight hex digits, easier to read aloud and compare. */
export const groups = (hash: string) => hash.match(/.{1,8}/g) ?? [];

function ManifestLine({ manifest }: { manifest: ManifestCheck | 'unreadable' }) {
  if (manifest === 'unreadable') return <>The relay's release manifest could not be read.</>;
  if (manifest.kind === 'none') return <>This relay serves no signed release manifest.</>;
  const hash = (
    <>
      {' '}
      Manifest SHA-256 <code>{manifest.manifestHash.slice(0, 16)}…</code>
    </>
  );
  if (manifest.kind === 'matches') {
    return (
      <>
        <span className="client-version-ok">Matches the loaded code.</span>
        {hash}
      </>
    );
  }
  return (
    <>
      <span className="client-version-bad">Does not match the loaded code</span> ({manifest.files.join(', ')}).
      {hash}
    </>
  );
}

/** Whether the manifest is in the relay's public log: the entry to compare, or a loud failure. */
function LogLine({ log }: { log: ReleaseLogCheck }) {
  if (log.kind === 'logged') {
    return (
      <span className="client-version-ok">
        This release is in the relay's public log (entry {log.index.toLocaleString('en-US')}).
      </span>
    );
  }
  if (log.kind === 'failed') {
    return (
      <span role="alert" className="client-version-bad">
        Not in the relay's public log. {log.reason} Do not trust this relay's release manifest.
      </span>
    );
  }
  if (log.kind === 'unavailable') return <>The relay's public log could not be checked ({log.reason}).</>;
  return <>No release manifest to look up.</>;
}

export function ClientVersionSection({ engine }: { engine: ChatEngineApi }) {
  const [state, setState] = useState<State>({ kind: 'loading' });
  const titleId = useId();

  useEffect(() => {
    let live = true;
    void readState(engine).then((s) => live && setState(s));
    return () => {
      live = false;
    };
  }, [engine]);

  return (
    <section className="card client-version" aria-labelledby={titleId}>
      <h3 id={titleId} className="card-title">
        Client version
      </h3>
      <p className="hint">
        The fingerprint of the code running in this tab: every script and stylesheet it loaded, each checked by your
        browser against its hash. Compare it with the one published for your relay's release.
      </p>
      {state.kind === 'loading' ? (
        <p className="muted">Computing…</p>
      ) : state.kind === 'unbound' ? (
        <p className="muted">
          This build carries no integrity hashes (a development build): there is nothing to compare.
        </p>
      ) : (
        <>
          <dl className="client-version-facts">
            <dt>Build hash</dt>
            <dd>
              <code className="client-version-hash" data-hash={state.version}>
                {groups(state.version).map((g, i) => (
                  <span key={i}>{g}</span>
                ))}
              </code>
            </dd>
            <dt>Release manifest</dt>
            <dd className="client-version-manifest">
              <ManifestLine manifest={state.manifest} />
            </dd>
            {state.manifest !== 'unreadable' && state.manifest.kind !== 'none' ? (
              <>
                <dt>Public log</dt>
                <dd className="client-version-log">
                  <LogLine log={state.log} />
                </dd>
              </>
            ) : null}
          </dl>
          <p className="hint">
            This tab looks up the manifest in the relay's public log and checks the proof itself. That catches a relay
            that serves a release it never published; it cannot catch hostile code, which could fake this check. Compare
            the entry number with what others see.
          </p>
          <CopyButton value={state.version} label="Copy build hash" what="hash" />
        </>
      )}
    </section>
  );
}
