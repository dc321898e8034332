// The running build's version as a user can compare it (issue #16): the SHA-256 of the page's integrity set — every
// script and stylesheet index.html loads, with the Subresource Integrity hash the browser enforced for it. A hash of
// the build cannot be embedded in the build (it would change the build), but the integrity set is in the page and
// binds every script the page runs, so the same value comes from the DOM here and from index.html in
// `npm run verify-client`. Also reads the relay's release manifest and says whether it lists those same hashes.
import { z } from 'zod';

/** One script or stylesheet of the page: its path from the site root and its `integrity` value. */
export interface IntegrityEntry {
  path: string;
  integrity: string;
}

/** The exact text that is hashed: one `path integrity` line per entry, sorted by path. */
export function integritySetText(entries: readonly IntegrityEntry[]): string {
  return [...entries]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((e) => `${e.path} ${e.integrity}\n`)
    .join('');
}

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');

/** The build's version: SHA-256 (hex) of `integritySetText(entries)`. */
export async function clientVersionOf(entries: readonly IntegrityEntry[]): Promise<string> {
  if (entries.length === 0) throw new Error('the page names no script or stylesheet with integrity');
  return hex(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(integritySetText(entries))));
}

const BINDING_TAG = /<(script|link)\b[^>]*>/g;
const attr = (tag: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];

/**
 * The page's script and stylesheet tags (scripts, stylesheets, modulepreloads) from HTML text, with `integrity`
 * possibly missing. Paths are from the site root, without the leading slash.
 */
export function bindingTagsOf(html: string): { path: string; integrity?: string }[] {
  const out: { path: string; integrity?: string }[] = [];
  for (const match of html.matchAll(BINDING_TAG)) {
    const [tag, kind] = match;
    const rel = attr(tag, 'rel');
    if (kind === 'link' && rel !== 'stylesheet' && rel !== 'modulepreload') continue;
    const url = attr(tag, kind === 'script' ? 'src' : 'href') ?? '';
    const integrity = attr(tag, 'integrity');
    out.push({ path: url.replace(/^\//, ''), ...(integrity === undefined ? {} : { integrity }) });
  }
  return out;
}

/** The running page's integrity set, read from its DOM. */
export function pageIntegrityEntries(doc: Document): IntegrityEntry[] {
  const tags = doc.querySelectorAll<HTMLScriptElement | HTMLLinkElement>(
    'script[src][integrity], link[rel="stylesheet"][integrity], link[rel="modulepreload"][integrity]',
  );
  return [...tags].map((el) => {
    const url = new URL(el instanceof HTMLScriptElement ? el.src : el.href, doc.baseURI);
    return { path: url.pathname.replace(/^\//, ''), integrity: el.integrity };
  });
}

/** `sha256-<base64>` as the lowercase hex the release manifest uses, or null for another algorithm. */
export function sha256HexOfIntegrity(integrity: string): string | null {
  const m = /^sha256-([A-Za-z0-9+/]+=*)$/.exec(integrity.trim());
  return m ? hex(base64Bytes(m[1]!).buffer) : null;
}

/** Bytes of standard or URL-safe base64, padded or not. */
function base64Bytes(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '=')), (ch) => ch.charCodeAt(0));
}

const signedManifestSchema = z.object({ manifest: z.string(), signature: z.string(), keyId: z.string() });
const manifestSchema = z.object({ version: z.literal(1), files: z.record(z.string(), z.string()) });

export const MANIFEST_URL = '/.well-known/weconnect/manifest.json';

/** What the relay's release manifest says about this page (its signature is not checked here: see below). */
export type ManifestCheck =
  | { kind: 'none' }
  | { kind: 'matches'; manifestHash: string; keyId: string }
  | { kind: 'differs'; manifestHash: string; keyId: string; files: string[] };

/**
 * Compares the page's integrity set with the release manifest document `body` (the exact bytes served). The page
 * cannot check the manifest's signature without a pinned release key (the relay serves both), so this only says
 * whether the manifest describes the code that runs; the manifest's hash is what a user compares with a published
 * one, and `npm run verify-client -- <relay> --manifest-key <key>` checks the signature.
 */
export async function checkManifest(
  entries: readonly IntegrityEntry[],
  body: Uint8Array<ArrayBuffer>,
): Promise<ManifestCheck> {
  const doc = signedManifestSchema.parse(JSON.parse(new TextDecoder().decode(body)));
  const manifest = manifestSchema.parse(JSON.parse(new TextDecoder().decode(base64Bytes(doc.manifest))));
  const manifestHash = hex(await crypto.subtle.digest('SHA-256', body));
  const files = entries.filter((e) => sha256HexOfIntegrity(e.integrity) !== manifest.files[e.path]).map((e) => e.path);
  return files.length === 0
    ? { kind: 'matches', manifestHash, keyId: doc.keyId }
    : { kind: 'differs', manifestHash, keyId: doc.keyId, files };
}
