// A verifiable web client (issue #16), first step: the web app's build is reproducible. Two checkouts of the same
// commit in different directories (different absolute paths, different depths) build to byte-identical files, so
// anyone can rebuild a commit and compare what a relay serves with what the source says. A third checkout with one
// changed byte of source builds to different files: the comparison can fail.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'weconnect-repro-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The tracked files of this checkout, copied to `dir`, with node_modules hard-linked (no install). */
function checkout(dir: string): string {
  const files = spawnSync('git', ['ls-files', '-z'], { cwd: REPO, encoding: 'utf8' });
  if (files.status !== 0) throw new Error(`git ls-files failed: ${files.stderr}`);
  for (const file of files.stdout.split('\0').filter(Boolean)) {
    if (!existsSync(join(REPO, file))) continue; // deleted in the working tree
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(REPO, file), join(dir, file));
  }
  for (const modules of ['node_modules', 'web/node_modules', 'crypto/node_modules', 'relay/node_modules']) {
    if (!existsSync(join(REPO, modules))) continue;
    const linked = spawnSync('cp', ['-al', join(REPO, modules), join(dir, modules)]);
    if (linked.status !== 0) throw new Error(`linking ${modules} failed: ${linked.stderr.toString()}`);
  }
  return dir;
}

/** Builds the web app of a checkout as `npm run build -w web` does; returns path → SHA-256 of every built file. */
function build(root: string): Map<string, string> {
  const out = join(root, 'web', 'dist');
  const result = spawnSync('npx', ['vite', 'build', '--logLevel', 'error'], {
    cwd: join(root, 'web'),
    encoding: 'utf8',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  if (result.status !== 0) throw new Error(`vite build failed:\n${result.stdout}\n${result.stderr}`);
  const hashes = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else hashes.set(relative(out, path), createHash('sha256').update(readFileSync(path)).digest('hex'));
    }
  };
  walk(out);
  return new Map([...hashes].sort(([a], [b]) => a.localeCompare(b)));
}

describe('the web build', () => {
  it('is byte-identical from two checkouts of the same commit in different directories, and differs when one source byte does', () => {
    const first = build(checkout(join(scratch, 'a', 'weconnect')));
    const second = build(checkout(join(scratch, 'b', 'some', 'deeper', 'clone-of-it')));
    // Baseline: a real build, with the page and content-hashed scripts.
    expect(first.has('index.html')).toBe(true);
    expect([...first.keys()].filter((f) => /^assets\/.+-[A-Za-z0-9_-]{8}\.js$/.test(f)).length).toBeGreaterThan(1);
    expect(second).toEqual(first);

    const changed = checkout(join(scratch, 'c', 'weconnect'));
    const screen = join(changed, 'web', 'src', 'ui', 'screens', 'AuthScreen.tsx');
    const text = readFileSync(screen, 'utf8');
    expect(text).toContain('There is no password reset.');
    writeFileSync(screen, text.replace('There is no password reset.', 'There is no password reset!'));
    const third = build(changed);
    expect(third).not.toEqual(first);
  }, 240_000);
});
