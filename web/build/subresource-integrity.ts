// Subresource Integrity for the built page (issue #16): after Vite has written the build, every script and stylesheet
// that index.html loads gets an `integrity="sha256-…"` of the bytes on disk (SHA-256: the digest the signed release
// manifest lists, so the two can be compared), and every other JS chunk (those the app
// loads with a dynamic import()) is named by a `<link rel="modulepreload" integrity>`. The page then binds every
// script it runs to a hash: a dynamic import() request carries no integrity of its own, so under the relay's
// `Integrity-Policy: blocked-destinations=(script)` it is allowed only because the preload already put the verified
// module in the module map. Deterministic (sorted, from file bytes), so the build stays reproducible.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin } from 'vite';

/** `sha256-<base64>` of `bytes`, the form the `integrity` attribute takes. */
export function integrityOf(bytes: Uint8Array): string {
  return `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
}

const TAG = /<(script|link)\b[^>]*>/g;
const ATTR = (name: string) => new RegExp(`\\s${name}="([^"]*)"`);

/**
 * Adds integrity to the page's tags and modulepreload links for `lazyChunks` (paths relative to the site root, e.g.
 * `assets/boot-x.js`). `read(path)` gives a built file's bytes. Throws on a script or stylesheet it cannot bind.
 */
export function addIntegrity(html: string, lazyChunks: readonly string[], read: (path: string) => Uint8Array): string {
  const linked = new Set<string>();
  const withIntegrity = html.replace(TAG, (tag, kind: string) => {
    const rel = ATTR('rel').exec(tag)?.[1];
    const url = ATTR(kind === 'script' ? 'src' : 'href').exec(tag)?.[1];
    const binds = kind === 'script' || rel === 'stylesheet' || rel === 'modulepreload';
    if (!binds) return tag;
    if (!url) throw new Error(`an inline ${kind} cannot be served under the relay's CSP: ${tag}`);
    if (!url.startsWith('/') || url.startsWith('//'))
      throw new Error(`a ${kind} from elsewhere cannot be verified: ${url}`);
    if (ATTR('integrity').test(tag)) throw new Error(`integrity is already set: ${tag}`);
    const path = url.slice(1);
    linked.add(path);
    return tag.replace(/\s*\/?>$/, (end) => ` integrity="${integrityOf(read(path))}"${end}`);
  });
  const preloads = [...lazyChunks]
    .filter((path) => !linked.has(path))
    .sort()
    .map(
      (path) => `    <link rel="modulepreload" crossorigin href="/${path}" integrity="${integrityOf(read(path))}">\n`,
    )
    .join('');
  const end = /\n([ \t]*)<\/head>/;
  if (!end.test(withIntegrity)) throw new Error('index.html has no </head>');
  return withIntegrity.replace(end, (_, indent: string) => `\n${preloads}${indent}</head>`);
}

/**
 * Throws if the page holds inline code the relay's CSP would block (and WEBCAT refuses): a `<style>` element, a
 * `style` attribute, an event-handler attribute or a `javascript:` URL. Inline `<script>` is refused by addIntegrity.
 */
export function assertNoInlineCode(html: string): void {
  const found = /<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:/i.exec(html);
  if (found) throw new Error(`index.html holds inline code the CSP blocks: ${found[0].trim()}`);
}

/** The placeholder web/src/client/kdf.ts holds for its worker script's integrity (a Worker takes none itself). */
export const KDF_WORKER_PLACEHOLDER = '__WECONNECT_KDF_WORKER_INTEGRITY__';
const KDF_WORKER_FILE = /^assets\/kdf\.worker-[\w-]+\.js$/;

/**
 * Writes the key-derivation worker's integrity into the chunk that starts it (kdf.ts fetches the worker with it).
 * `chunks` maps JS chunk paths to their code; returns the chunks it changed. Throws unless exactly one worker file
 * exists and the placeholder is in exactly one chunk: a build whose worker would run unchecked must not ship.
 */
export function injectWorkerIntegrity(
  chunks: ReadonlyMap<string, string>,
  files: readonly string[],
  read: (path: string) => Uint8Array,
): Map<string, string> {
  const workers = files.filter((f) => KDF_WORKER_FILE.test(f));
  if (workers.length !== 1) throw new Error(`expected one key-derivation worker, found ${workers.length}`);
  const integrity = integrityOf(read(workers[0]!));
  const changed = new Map<string, string>();
  for (const [path, code] of chunks) {
    if (code.includes(KDF_WORKER_PLACEHOLDER)) changed.set(path, code.replaceAll(KDF_WORKER_PLACEHOLDER, integrity));
  }
  if (changed.size !== 1) throw new Error(`the worker integrity placeholder is in ${changed.size} chunks, not one`);
  return changed;
}

/** The Vite plugin: runs once the build is on disk (later hooks may still rewrite chunk code before that). */
export function subresourceIntegrity(): Plugin {
  let base = '/';
  return {
    name: 'weconnect:subresource-integrity',
    apply: 'build',
    configResolved(config) {
      base = config.base;
    },
    writeBundle(options, bundle) {
      if (base !== '/') throw new Error(`subresource integrity expects base '/', not ${base}`);
      const dir = options.dir;
      if (!dir) throw new Error('subresource integrity needs an output directory');
      const files = Object.values(bundle);
      const css = files.filter((f) => f.fileName.endsWith('.css')).map((f) => f.fileName);
      const lazyChunks = files.filter((f) => f.type === 'chunk').map((f) => f.fileName);
      // First the worker's hash into the chunk that starts it, so that chunk's own integrity below covers it.
      const chunkCode = new Map(lazyChunks.map((path) => [path, readFileSync(join(dir, path), 'utf8')] as const));
      const injected = injectWorkerIntegrity(
        chunkCode,
        files.map((f) => f.fileName),
        (path) => readFileSync(join(dir, path)),
      );
      for (const [path, code] of injected) writeFileSync(join(dir, path), code);
      const page = join(dir, 'index.html');
      assertNoInlineCode(readFileSync(page, 'utf8'));
      const html = addIntegrity(readFileSync(page, 'utf8'), lazyChunks, (path) => readFileSync(join(dir, path)));
      // A stylesheet the page does not link would be added at run time by Vite's loader, without integrity.
      for (const sheet of css) {
        if (!html.includes(`href="/${sheet}"`)) throw new Error(`${sheet} is not linked by index.html`);
      }
      writeFileSync(page, html);
    },
  };
}
