// The page checks its own release in the relay's public log (issue #16): it fetches the release manifest the relay
// serves and asks KeyTransparency whether those exact bytes are logged. This defends against a relay that serves
// consistent code but lies about the log (a manifest it never published), and gives the user a log entry to compare
// with what others see. It is no defence against hostile code: code that checks itself can lie about the result.
import { MANIFEST_URL } from './client-version';
import { ClientError, describeError } from './errors';
import type { KeyTransparency } from './transparency';
import type { ReleaseLogCheck } from './types';

/** Checks the manifest document `bytes` (exactly as served) against the log. */
export async function checkReleaseBytes(kt: KeyTransparency, bytes: Uint8Array): Promise<ReleaseLogCheck> {
  try {
    const { index, treeSize } = await kt.verifyRelease(bytes);
    return { kind: 'logged', index, treeSize };
  } catch (e) {
    if (e instanceof ClientError && e.code === 'transparency_failed') return { kind: 'failed', reason: e.message };
    return { kind: 'unavailable', reason: describeError(e) };
  }
}

/** Fetches the release manifest from the relay at `relayUrl` and checks it against the log. */
export async function checkRelease(kt: KeyTransparency, relayUrl: string): Promise<ReleaseLogCheck> {
  let res: Response;
  try {
    res = await fetch(new URL(MANIFEST_URL, relayUrl), { cache: 'no-store' });
  } catch (e) {
    return { kind: 'unavailable', reason: describeError(e) };
  }
  if (res.status === 404) return { kind: 'none' };
  if (!res.ok) return { kind: 'unavailable', reason: `the relay answered ${res.status} for its release manifest` };
  return checkReleaseBytes(kt, new Uint8Array(await res.arrayBuffer()));
}
