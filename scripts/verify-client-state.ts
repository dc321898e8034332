// What `npm run verify-client` remembers between runs (issue #16): per relay origin, the log verifier key and the
// release key it pinned, and the newest log checkpoint it verified. The next run proves the relay's current
// checkpoint consistent with that one (GET /api/kt/consistency), so a relay that rewrites or truncates its log's
// history between two runs is caught even when each run alone looks fine.
//
// The file: `--state <file>`, else $XDG_CONFIG_HOME/weconnect/verify-client.json (~/.config/... without it);
// `--state none` keeps nothing. Written only after a run that passed, owner-only (0600), replaced atomically.
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import * as kt from '../crypto/src/kt/index';
import { ktConsistencyAnswerSchema } from '../relay/src/protocol';

const relayStateSchema = z.object({
  /** The transparency log's C2SP verifier key, pinned on the first run (given with --kt-key, or the relay's). */
  ktKey: z.string().max(512),
  /** The release public key the manifest signature was checked with, when one was given. */
  manifestKey: z.string().max(512).optional(),
  /** The newest checkpoint note this tool verified for this relay. */
  checkpoint: z.string().max(8192),
  /** When it was recorded (ISO 8601), for people reading the file. */
  seenAt: z.string(),
});
export type RelayState = z.infer<typeof relayStateSchema>;

const stateSchema = z.object({ version: z.literal(1), relays: z.record(z.string(), relayStateSchema) });
export type VerifyClientState = z.infer<typeof stateSchema>;

/** The default state file (see the top of this file). */
export function defaultStatePath(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'weconnect', 'verify-client.json');
}

/** The state in `file` (empty when it does not exist). A file that does not parse throws: it is never overwritten. */
export function readState(file: string): VerifyClientState {
  if (!existsSync(file)) return { version: 1, relays: {} };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`the state file ${file} is not JSON (${(e as Error).message}): fix or remove it`);
  }
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) throw new Error(`the state file ${file} is not a verify-client state file: fix or remove it`);
  return parsed.data;
}

export function writeState(file: string, state: VerifyClientState): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

/** The key state is kept under: the relay's origin (scheme, host and port). */
export const relayKeyOf = (relayUrl: string): string => new URL(relayUrl).origin;

/**
 * Proves the checkpoint `newNote` (verified with `key` by the caller) consistent with `oldNote`, the newest one seen
 * before: same log, and the new tree extends the old one. Resolves to null, or to the problem: a smaller tree
 * (truncated history), another root at the same size or a consistency proof that fails (rewritten history), or a
 * relay that cannot prove it.
 */
export async function checkAgainstState(
  relayUrl: string,
  key: kt.VerifierKey,
  oldNote: string,
  newNote: string,
): Promise<string | null> {
  let old: kt.Checkpoint;
  try {
    old = kt.openCheckpoint(oldNote, key);
  } catch (e) {
    return `the checkpoint kept from an earlier run does not verify with the pinned log key (${(e as Error).message})`;
  }
  const now = kt.openCheckpoint(newNote, key);
  if (now.origin !== old.origin) return `the log is now ${now.origin}, not ${old.origin} as in an earlier run`;
  if (now.size < old.size) {
    return `the log's history was truncated: an earlier run saw ${old.size} entries, the relay now signs ${now.size}`;
  }
  let proof: Uint8Array[] = [];
  if (now.size > old.size) {
    const res = await fetch(new URL(`/api/kt/consistency?from=${old.size}&to=${now.size}`, relayUrl), {
      redirect: 'error',
      cache: 'no-store',
    });
    const answer = ktConsistencyAnswerSchema.safeParse(await res.json().catch(() => null));
    if (res.status !== 200 || !answer.success) {
      return `the relay cannot prove that its log of ${now.size} entries extends the ${old.size} an earlier run saw (${res.status})`;
    }
    proof = answer.data.proof.map((h) => new Uint8Array(Buffer.from(h, 'base64url')));
  }
  if (!kt.verifyConsistency(old.size, now.size, old.root, now.root, proof)) {
    return `the log's history was rewritten: its tree of ${now.size} entries does not extend the ${old.size} an earlier run saw`;
  }
  return null;
}
