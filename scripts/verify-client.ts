// Checks the web client a relay serves (issue #16): fetches the signed release manifest and every file the relay
// serves — the page, each script and stylesheet it names, and every file the manifest lists — and compares each with
// the manifest, and each `integrity` attribute of the page with the bytes served. Prints PASS or FAIL per file and the
// client version (the build hash Settings → Client version shows); exits 1 on any mismatch.
//
//   npm run verify-client -- <relay url> [--manifest-key <release public key, or a file holding it>]
//                                         [--kt-key <the relay's transparency verifier key, or a file holding it>]
//                                         [--state <file> | --state none]
//
// Without --manifest-key the manifest's signature is not checked (the relay serves the manifest too): the run then
// only shows that the relay's files agree with the relay's own manifest, and says so. The manifest must be in the
// relay's key transparency log (relay/PROTOCOL.md "Release manifests in the transparency log"): the checkpoint is
// verified with --kt-key, or without it with the key the relay itself gives (trust on first use, with a warning).
// Between runs it keeps, per relay origin, the pinned keys and the newest checkpoint it verified (--state, default
// $XDG_CONFIG_HOME/weconnect/verify-client.json; scripts/verify-client-state.ts), and proves the relay's log
// consistent with that checkpoint: a relay that rewrites or truncates the log's history between two runs fails.

import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { bindingTagsOf, clientVersionOf, type IntegrityEntry } from '../web/src/client/client-version';
import * as kt from '../crypto/src/kt/index';
import { ready } from '../crypto/src/sodium';
import { ktCheckpointAnswerSchema, ktReleaseAnswerSchema } from '../relay/src/protocol';
import { MANIFEST_PATH, openManifest, type Manifest } from './release';
import { checkAgainstState, defaultStatePath, readState, relayKeyOf, writeState } from './verify-client-state';

/**
 * HOOK for the key transparency log (issue #16, "entered in the transparency log"; the log itself is built on branch
 * h-kt). Given the manifest document exactly as served, it answers whether the log holds that manifest for this
 * release key, with a proof checked against a checkpoint consistent with the last one seen. Until the log exists
 * nothing is passed and the report says the manifest was not checked against a log: a relay that serves different
 * manifests to different users is then only caught by comparing manifest hashes out of band.
 */
export type TransparencyLogCheck = (entry: {
  manifestBytes: Uint8Array;
  manifestHash: string;
  keyId: string | null;
}) => Promise<{ included: true } | { included: false; reason: string }>;

export interface FileResult {
  path: string;
  ok: boolean;
  detail: string;
}

export interface ClientReport {
  /** False when any file failed, the manifest is missing or its signature did not verify. */
  ok: boolean;
  /** Whether the manifest's signature was checked against a release key given by the caller. */
  signatureChecked: boolean;
  keyId: string | null;
  /** SHA-256 of the manifest document as served. */
  manifestHash: string | null;
  /** The page's build hash (web/src/client/client-version.ts), or null when the page names no integrity. */
  clientVersion: string | null;
  files: FileResult[];
  /** Problems that are not about one file (no manifest, bad signature, headers, not in the log). */
  problems: string[];
  /** Whether the manifest was checked against the transparency log (see TransparencyLogCheck). */
  logChecked: boolean;
  /** Set when the log's verifier key was not pinned (no --kt-key): the one the relay gave was trusted. */
  logKeyWarning?: string;
  /** What the run found against the state kept from earlier runs (--state), printed before the verdict. */
  stateNotes?: string[];
}

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const sha256Sri = (bytes: Uint8Array) => `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
const ED25519_SPKI_PREFIX = '302a300506032b6570032100';

/** A release public key as 32-byte base64url: given as such, as a file holding it, or as a PEM public key. */
export function readReleaseKey(arg: string): string {
  const text = existsSync(arg) ? readFileSync(arg, 'utf8').trim() : arg.trim();
  if (!text.startsWith('-----BEGIN')) return text;
  const der = createPublicKey(text).export({ format: 'der', type: 'spki' });
  if (!der.subarray(0, 12).equals(Buffer.from(ED25519_SPKI_PREFIX, 'hex'))) throw new Error('not an Ed25519 key');
  return der.subarray(12).toString('base64url');
}

const fromB64u = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64url'));

/** A transparency verifier key given as such or as a file holding it. */
export function readKtKey(arg: string): string {
  return (existsSync(arg) ? readFileSync(arg, 'utf8') : arg).trim();
}

/**
 * The TransparencyLogCheck against the relay's own log: the release entry of the manifest's hash with its inclusion
 * proof, under a checkpoint signed by `verifierKey` (the pinned key; without it, the key the relay's checkpoint
 * route gives, and `onTofu` is told). Passes only when the signature verifies, the entry is the canonical release
 * entry of exactly these bytes and this release key id, and the proof puts it in the signed tree.
 */
export function relayLogCheck(
  relayUrl: string,
  verifierKey?: string,
  onTofu?: (warning: string) => void,
  /** Told the checkpoint note (and the key it was verified with) once the manifest's entry is proved in it. */
  onCheckpoint?: (note: string, verifierKey: string) => void,
): TransparencyLogCheck {
  return async ({ manifestBytes, keyId }) => {
    await ready();
    const fail = (reason: string) => ({ included: false as const, reason });
    let keyText = verifierKey;
    if (keyText === undefined) {
      const res = await get(relayUrl, 'api/kt/checkpoint');
      const answer = ktCheckpointAnswerSchema.safeParse(parseJson(res.bytes));
      if (res.status !== 200 || !answer.success) return fail(`the relay gives no checkpoint (${res.status})`);
      keyText = answer.data.verifierKey;
      onTofu?.(
        `no --kt-key given: the log's verifier key was taken from the relay itself (${keyText}); ` +
          'pin it with --kt-key to detect a relay that forks its log for you',
      );
    }
    let key: kt.VerifierKey;
    try {
      key = kt.parseVerifierKey(keyText);
    } catch (e) {
      return fail(`the verifier key is malformed: ${(e as Error).message}`);
    }
    const hash = new Uint8Array(createHash('sha256').update(manifestBytes).digest());
    const res = await get(relayUrl, `api/kt/releases/${Buffer.from(hash).toString('hex')}`);
    if (res.status === 404) return fail('the relay has no log entry for the manifest it serves');
    const answer = ktReleaseAnswerSchema.safeParse(parseJson(res.bytes));
    if (res.status !== 200 || !answer.success) return fail(`the relay answers ${res.status} for the log entry`);
    try {
      const checkpoint = kt.openCheckpoint(answer.data.checkpoint, key);
      if (checkpoint.origin !== key.name) return fail('the checkpoint is of another log');
      const entry = fromB64u(answer.data.leaf.entry);
      const expected = kt.encodeReleaseEntry({ kind: 'release', keyId: keyId ?? '-', manifestHash: hash });
      if (entry.length !== expected.length || !entry.every((b, i) => b === expected[i])) {
        return fail('the log entry is not the one of the manifest served');
      }
      const proof = answer.data.leaf.proof.map(fromB64u);
      if (!kt.verifyInclusion(answer.data.leaf.index, checkpoint.size, kt.leafHash(entry), proof, checkpoint.root)) {
        return fail('the inclusion proof does not verify against the signed checkpoint');
      }
    } catch (e) {
      return fail((e as Error).message);
    }
    onCheckpoint?.(answer.data.checkpoint, keyText);
    return { included: true };
  };
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return null;
  }
}

async function get(base: string, path: string): Promise<{ status: number; bytes: Uint8Array; headers: Headers }> {
  const res = await fetch(new URL(`/${path}`, base), { redirect: 'error', cache: 'no-store' });
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()), headers: res.headers };
}

/** Verifies what the relay at `relayUrl` serves; `publicKey` (base64url) checks the manifest's signature. */
export async function verifyClient(
  relayUrl: string,
  publicKey?: string,
  transparencyLog?: TransparencyLogCheck,
): Promise<ClientReport> {
  const report: ClientReport = {
    logChecked: false,
    ok: false,
    signatureChecked: false,
    keyId: null,
    manifestHash: null,
    clientVersion: null,
    files: [],
    problems: [],
  };
  const served = await get(relayUrl, MANIFEST_PATH);
  if (served.status !== 200) {
    report.problems.push(`the relay serves no release manifest (${served.status})`);
    return report;
  }
  report.manifestHash = sha256Hex(served.bytes);
  let manifest: Manifest;
  try {
    const doc = JSON.parse(Buffer.from(served.bytes).toString('utf8')) as { keyId?: unknown; manifest?: unknown };
    report.keyId = typeof doc.keyId === 'string' ? doc.keyId : null;
    if (publicKey) {
      manifest = openManifest(doc, publicKey);
      report.signatureChecked = true;
    } else {
      if (typeof doc.manifest !== 'string') throw new Error('the manifest document is malformed');
      manifest = JSON.parse(Buffer.from(doc.manifest, 'base64url').toString('utf8')) as Manifest;
      if (typeof manifest.files !== 'object' || manifest.files === null) throw new Error('unknown manifest version');
    }
  } catch (e) {
    report.problems.push((e as Error).message);
    return report;
  }

  const checked = new Map<string, Uint8Array>();
  const check = async (path: string): Promise<Uint8Array | null> => {
    const known = checked.get(path);
    if (known) return known;
    const file = await get(relayUrl, path);
    const expected = manifest.files[path];
    const result = (ok: boolean, detail: string) => report.files.push({ path, ok, detail });
    if (file.status !== 200) result(false, `the relay answers ${file.status}`);
    else if (expected === undefined) result(false, 'served, but not in the signed manifest');
    else if (sha256Hex(file.bytes) !== expected) result(false, 'served bytes differ from the signed manifest');
    else result(true, `sha256 ${expected}`);
    checked.set(path, file.bytes);
    return file.status === 200 ? file.bytes : null;
  };

  // The page first, as a browser gets it for any client-side route; then everything it binds; then the rest.
  const page = await get(relayUrl, '');
  const html = Buffer.from(page.bytes).toString('utf8');
  const expectedPage = manifest.files['index.html'];
  const pageOk = page.status === 200 && expectedPage !== undefined && sha256Hex(page.bytes) === expectedPage;
  report.files.push({
    path: 'index.html (as served at /)',
    ok: pageOk,
    detail: pageOk ? `sha256 ${expectedPage}` : 'served page differs from the signed index.html',
  });
  if (!page.headers.get('integrity-policy')?.includes('script')) {
    report.problems.push(
      'the page is served without Integrity-Policy for scripts: scripts without integrity would run',
    );
  }
  const entries: IntegrityEntry[] = [];
  for (const tag of bindingTagsOf(html)) {
    const bytes = await check(tag.path);
    if (tag.integrity === undefined) {
      report.files.push({ path: tag.path, ok: false, detail: 'the page loads it without an integrity attribute' });
      continue;
    }
    entries.push({ path: tag.path, integrity: tag.integrity });
    if (bytes && sha256Sri(bytes) !== tag.integrity) {
      report.files.push({
        path: tag.path,
        ok: false,
        detail: 'its integrity attribute does not match the bytes served',
      });
    }
  }
  if (entries.length > 0) report.clientVersion = await clientVersionOf(entries);
  for (const path of Object.keys(manifest.files)) await check(path);
  if (transparencyLog) {
    const entry = { manifestBytes: served.bytes, manifestHash: report.manifestHash, keyId: report.keyId };
    const logged = await transparencyLog(entry);
    report.logChecked = true;
    if (!logged.included) report.problems.push(`the manifest is not in the transparency log: ${logged.reason}`);
  }

  report.ok = report.problems.length === 0 && report.files.every((f) => f.ok);
  return report;
}

/** The report as printed: one line per file, then the verdict. */
export function formatReport(url: string, r: ClientReport): string {
  const lines = r.files.map((f) => `${f.ok ? 'PASS' : 'FAIL'} ${f.path}: ${f.detail}`);
  for (const p of r.problems) lines.push(`FAIL ${p}`);
  if (r.manifestHash) lines.push(`manifest sha256 ${r.manifestHash} (release key id ${r.keyId ?? 'unknown'})`);
  if (!r.signatureChecked && r.manifestHash) {
    lines.push(
      'WARNING: no --manifest-key given: the manifest signature was NOT checked; this only shows that the relay ' +
        'agrees with itself. Pass the published release key to check the signature.',
    );
  }
  if (r.logKeyWarning) lines.push(`WARNING: ${r.logKeyWarning}`);
  if (r.manifestHash && r.logChecked && !r.problems.some((p) => p.includes('transparency log'))) {
    lines.push("PASS the manifest is in the relay's transparency log (inclusion proof under a signed checkpoint)");
  }
  if (r.manifestHash && !r.logChecked) {
    lines.push('NOTE: the manifest was not checked against a transparency log.');
  }
  for (const note of r.stateNotes ?? []) lines.push(note);
  if (r.clientVersion) lines.push(`client version (Settings → Client version): ${r.clientVersion}`);
  const failed = r.files.filter((f) => !f.ok).length + r.problems.length;
  lines.push(r.ok ? `OK: ${url} serves exactly the signed build` : `FAILED: ${failed} problem(s) at ${url}`);
  return `${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const option = (name: string, what: string): string | undefined => {
    const at = argv.indexOf(name);
    if (at < 0) return undefined;
    const value = argv[at + 1];
    if (!value || value.startsWith('--')) throw new Error(`${name} needs ${what}`);
    return value;
  };
  const keyArg = option('--manifest-key', 'a release public key or a file holding it');
  const ktArg = option('--kt-key', "the relay's transparency verifier key or a file holding it");
  const stateArg = option('--state', 'a file, or none');
  const values = new Set(
    ['--manifest-key', '--kt-key', '--state']
      .map((n) => argv.indexOf(n))
      .filter((at) => at >= 0)
      .map((at) => at + 1),
  );
  const url = argv.find((a, i) => !a.startsWith('--') && !values.has(i));
  if (!url) {
    throw new Error(
      'usage: npm run verify-client -- <relay url> [--manifest-key <public key or file>] [--kt-key <key or file>] ' +
        '[--state <file> | --state none]',
    );
  }
  const stateFile = stateArg === 'none' ? null : (stateArg ?? defaultStatePath());
  const state = stateFile ? readState(stateFile) : null;
  const origin = relayKeyOf(url);
  const kept = state?.relays[origin];
  const early: string[] = [];
  const givenKt = ktArg ? readKtKey(ktArg) : undefined;
  const givenManifest = keyArg ? readReleaseKey(keyArg) : undefined;
  if (kept && givenKt && givenKt !== kept.ktKey) {
    early.push(`the --kt-key given is not the log key pinned for ${origin} in ${stateFile} (${kept.ktKey})`);
  }
  if (kept?.manifestKey && givenManifest && givenManifest !== kept.manifestKey) {
    early.push(
      `the --manifest-key given is not the release key pinned for ${origin} in ${stateFile}; if the release key ` +
        'was rotated, remove that entry from the file',
    );
  }
  let tofu: string | undefined;
  let seen: { note: string; key: string } | undefined;
  const log = relayLogCheck(
    url,
    givenKt ?? kept?.ktKey,
    (w) => (tofu = w),
    (note, key) => (seen = { note, key }),
  );
  const manifestKey = givenManifest ?? kept?.manifestKey;
  const report = await verifyClient(url, manifestKey, log);
  if (tofu) report.logKeyWarning = tofu;
  report.problems.unshift(...early);
  report.stateNotes = [];
  if (kept && seen) {
    const problem = await checkAgainstState(url, kt.parseVerifierKey(seen.key), kept.checkpoint, seen.note);
    const keptSize = kt.parseCheckpointBody(kt.noteBody(kept.checkpoint)).size;
    if (problem) report.problems.push(`the log is not the one an earlier run saw: ${problem}`);
    else {
      report.stateNotes.push(
        `PASS the log extends the checkpoint of ${keptSize} entries an earlier run kept (${stateFile})`,
      );
    }
  }
  report.ok = report.problems.length === 0 && report.files.every((f) => f.ok);
  if (report.ok && stateFile && state && seen) {
    const newSize = kt.parseCheckpointBody(kt.noteBody(seen.note)).size;
    const keep =
      kept && kt.parseCheckpointBody(kt.noteBody(kept.checkpoint)).size >= newSize ? kept.checkpoint : seen.note;
    state.relays[origin] = {
      ktKey: seen.key,
      ...(manifestKey ? { manifestKey } : {}),
      checkpoint: keep,
      seenAt: new Date().toISOString(),
    };
    writeState(stateFile, state);
    if (!kept) {
      report.stateNotes.push(
        `NOTE: first run for ${origin}: its log key and a checkpoint of ${newSize} entries are kept in ${stateFile}; ` +
          'later runs prove the log extends it',
      );
    }
  }
  process.stdout.write(formatReport(url, report));
  return report.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error((err as Error).message);
      process.exit(2);
    },
  );
}
