// ClientVersionSection (Settings → Client version, issue #16): the running build's hash — the SHA-256 of the scripts
// and stylesheets this tab loaded, each enforced by the browser's Subresource Integrity check — with a copy button, so
// a user can compare it with a published one, and whether the relay's release manifest lists exactly those files.
import { useEffect, useId, useState } from 'react';
import {
  checkManifest,
  clientVersionOf,
  MANIFEST_URL,
  pageIntegrityEntries,
  type ManifestCheck,
} from '../../client/client-version';
import '../styles/client-version.css';
import { CopyButton } from './CopyButton';

type State =
  | { kind: 'loading' }
  | { kind: 'unbound' }
  | { kind: 'ready'; version: string; manifest: ManifestCheck | 'unreadable' };

async function readState(): Promise<State> {
  const entries = pageIntegrityEntries(document);
  if (entries.length === 0) return { kind: 'unbound' };
  const version = await clientVersionOf(entries);
  try {
    const res = await fetch(MANIFEST_URL, { cache: 'no-store' });
    if (res.status === 404) return { kind: 'ready', version, manifest: { kind: 'none' } };
    if (!res.ok) return { kind: 'ready', version, manifest: 'unreadable' };
    return { kind: 'ready', version, manifest: await checkManifest(entries, new Uint8Array(await res.arrayBuffer())) };
  } catch {
    return { kind: 'ready', version, manifest: 'unreadable' };
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

export function ClientVersionSection() {
  const [state, setState] = useState<State>({ kind: 'loading' });
  const titleId = useId();

  useEffect(() => {
    let live = true;
    void readState().then((s) => live && setState(s));
    return () => {
      live = false;
    };
  }, []);

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
          </dl>
          <CopyButton value={state.version} label="Copy build hash" what="hash" />
        </>
      )}
    </section>
  );
}
