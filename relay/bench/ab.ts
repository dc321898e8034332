// Before and after: runs the bench on two builds of the relay on this machine, alternating, and prints each pair's
// figures with their ratio, the median ratio, in how many pairs the new build was lower, and an exact sign test.
// One run of a few seconds moves by ±10–20% with the machine; a change of a few percent shows only over many
// alternating pairs, and the sign test says how often a split at least as lopsided comes by chance.
//
//   npx tsx --conditions=source relay/bench/ab.ts --base <git ref> [--pairs N] -- <bench options>
//
// "head" is this checkout (with its uncommitted changes); "base" is <git ref>, checked out into a temporary git
// worktree that uses this checkout's node_modules (so its package-lock.json must be the same). Each side runs
// `relay/bench/run.ts --reps 1 <bench options>` of its own tree; pair 1 runs base first, pair 2 head first, and so on.
// Example (the closed loop and 5,000/s, 8-second windows, six pairs):
//   npx tsx --conditions=source relay/bench/ab.ts --base HEAD~1 --pairs 6 -- --quick --servers weconnect \
//     --no-groups --no-idle --no-drain --no-signin --no-client-cost --no-blobs --rates 5000 --duration 8
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './stats.js';

/** One phase of one run, from the report's "Every run" table. NaN where the table has none ("–"). */
export interface PhaseFigures {
  server: string;
  task: string;
  perS: number;
  p50Ms: number;
  p99Ms: number;
  cpuUs: number;
  mainUs: number;
  perCommit: number;
  diskKb: number;
}

const COLUMNS = {
  perS: 'per s',
  p50Ms: 'p50 ms',
  p99Ms: 'p99 ms',
  cpuUs: 'server CPU µs/unit',
  mainUs: 'main µs/unit',
  perCommit: 'per commit',
  diskKb: 'disk KB/unit',
} as const;

type Metric = keyof typeof COLUMNS;

const cells = (line: string): string[] =>
  line
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim());

const number = (cell: string | undefined): number =>
  cell === undefined || cell === '' || cell === '–' ? Number.NaN : Number(cell.replace(/,/g, ''));

/**
 * The phases of a bench report (run.ts's stdout): the "Every run" table, its columns found by their headers, so a
 * report of an older build with other columns still reads.
 */
export function parseEveryRun(markdown: string): PhaseFigures[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^\|\s*task\s*\|\s*server\s*\|\s*rep\s*\|/.test(l));
  if (start < 0) return [];
  const header = cells(lines[start] ?? '');
  const at = (name: string): number => header.indexOf(name);
  const phases: PhaseFigures[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const row = cells(line);
    const figure = (metric: Metric): number => number(row[at(COLUMNS[metric])]);
    phases.push({
      task: row[at('task')] ?? '',
      server: row[at('server')] ?? '',
      perS: figure('perS'),
      p50Ms: figure('p50Ms'),
      p99Ms: figure('p99Ms'),
      cpuUs: figure('cpuUs'),
      mainUs: figure('mainUs'),
      perCommit: figure('perCommit'),
      diskKb: figure('diskKb'),
    });
  }
  return phases;
}

/** Two-sided exact sign test: the chance of a split at least this lopsided among n pairs that differ, by luck. */
export function signTestP(lower: number, n: number): number {
  if (n === 0) return 1;
  const k = Math.min(lower, n - lower);
  let tail = 0;
  let choose = 1; // C(n, i)
  for (let i = 0; i <= k; i++) {
    tail += choose;
    choose = (choose * (n - i)) / (i + 1);
  }
  return Math.min(1, (2 * tail) / 2 ** n);
}

export interface PairSummary {
  pairs: [number, number][];
  /** head ÷ base per pair (NaN pairs left out), and their median, min and max. */
  ratios: number[];
  median: number;
  min: number;
  max: number;
  /** Pairs where head was lower, and pairs that differ at all. */
  headLower: number;
  differing: number;
  p: number;
}

export function summarizePairs(pairs: [number, number][]): PairSummary {
  const valid = pairs.filter(([b, h]) => Number.isFinite(b) && Number.isFinite(h) && b > 0);
  const ratios = valid.map(([b, h]) => h / b);
  const headLower = valid.filter(([b, h]) => h < b).length;
  const differing = valid.filter(([b, h]) => h !== b).length;
  return {
    pairs,
    ratios,
    median: median(ratios),
    min: ratios.length > 0 ? Math.min(...ratios) : Number.NaN,
    max: ratios.length > 0 ? Math.max(...ratios) : Number.NaN,
    headLower,
    differing,
    p: signTestP(headLower, differing),
  };
}

const METRICS: { metric: Metric; label: string; digits: number }[] = [
  { metric: 'cpuUs', label: 'server CPU µs/unit', digits: 1 },
  { metric: 'perS', label: 'per s', digits: 0 },
  { metric: 'p50Ms', label: 'p50 ms', digits: 1 },
  { metric: 'p99Ms', label: 'p99 ms', digits: 1 },
  { metric: 'diskKb', label: 'disk KB/unit', digits: 1 },
];

/** Without figures.ts's thousands separators: a row lists its pairs joined by commas (`5001 → 4987, 4998 → 5010`). */
const fmt = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');

/** The summary table: one row per phase and metric, over the pairs in which both sides measured that phase. */
export function renderAb(runs: { base: PhaseFigures[]; head: PhaseFigures[] }[]): string {
  const keys = [...new Set(runs.flatMap((r) => [...r.base, ...r.head].map((p) => `${p.server}\t${p.task}`)))];
  const rows: string[] = [];
  for (const key of keys) {
    const [server = '', task = ''] = key.split('\t');
    const find = (list: PhaseFigures[]): PhaseFigures | undefined =>
      list.find((p) => p.server === server && p.task === task);
    for (const { metric, label, digits } of METRICS) {
      const pairs: [number, number][] = [];
      for (const r of runs) {
        const b = find(r.base);
        const h = find(r.head);
        if (b && h) pairs.push([b[metric], h[metric]]);
      }
      const s = summarizePairs(pairs);
      if (s.ratios.length === 0) continue;
      rows.push(
        `| ${task} | ${server} | ${label} | ${pairs.map(([b, h]) => `${fmt(b, digits)} → ${fmt(h, digits)}`).join(', ')} ` +
          `| ${fmt(s.median, 2)}x (${fmt(s.min, 2)}–${fmt(s.max, 2)}) | ${s.headLower} of ${s.ratios.length} ` +
          `| ${fmt(s.p, 3)} |`,
      );
    }
  }
  return [
    '| phase | server | metric | base → head, per pair | head ÷ base, median (min–max) | head lower in | sign test p |',
    '| --- | --- | --- | --- | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

interface Options {
  base: string;
  pairs: number;
  benchArgs: string[];
}

export function parseAbArgs(argv: string[]): Options {
  const split = argv.indexOf('--');
  const own = split < 0 ? argv : argv.slice(0, split);
  const benchArgs = split < 0 ? [] : argv.slice(split + 1);
  const value = (name: string): string | undefined => {
    const i = own.indexOf(`--${name}`);
    return i >= 0 ? own[i + 1] : undefined;
  };
  const base = value('base');
  if (base === undefined) throw new Error('--base <git ref> is required');
  const pairs = Number(value('pairs') ?? 6);
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error('--pairs needs a whole number of at least 1');
  for (const refused of ['--reps', '--write']) {
    if (benchArgs.includes(refused)) throw new Error(`${refused}: each side runs one repetition and writes nothing`);
  }
  return { base, pairs, benchArgs };
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function git(args: string[], cwd = ROOT): string {
  const res = spawnSync('git', args, { cwd, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`git ${args.join(' ')}: ${res.stderr.trim()}`);
  return res.stdout;
}

/** Checks the base out into a temporary worktree sharing this checkout's node_modules; returns it and its undo. */
function checkOutBase(ref: string): { dir: string; remove: () => void } {
  const sha = git(['rev-parse', '--verify', `${ref}^{commit}`]).trim();
  const lock = (text: string): string => text.replace(/\s+$/, '');
  if (lock(git(['show', `${sha}:package-lock.json`])) !== lock(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'))) {
    throw new Error(
      `${ref}'s package-lock.json differs from this checkout's: its dependencies are not the ones installed`,
    );
  }
  const parent = mkdtempSync(join(tmpdir(), 'weconnect-ab-'));
  const dir = join(parent, 'base');
  git(['worktree', 'add', '--detach', dir, sha]);
  const remove = (): void => {
    spawnSync('git', ['worktree', 'remove', '--force', dir], { cwd: ROOT });
    rmSync(parent, { recursive: true, force: true });
  };
  try {
    const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces?: string[] })
      .workspaces;
    for (const sub of ['', ...(workspaces ?? [])]) {
      const modules = join(ROOT, sub, 'node_modules');
      if (existsSync(modules) && existsSync(join(dir, sub))) symlinkSync(modules, join(dir, sub, 'node_modules'));
    }
  } catch (err) {
    remove();
    throw err;
  }
  return { dir, remove };
}

let running: ChildProcess | null = null;

/** Runs the bench of one tree once; its phases, and why it failed (null if it did not). */
function benchOnce(tree: string, args: string[]): Promise<{ phases: PhaseFigures[]; failure: string | null }> {
  const tsx = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [tsx, '--conditions=source', 'relay/bench/run.ts', '--reps', '1', ...args], {
      cwd: tree,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running = child;
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('close', (code) => {
      running = null;
      const phases = parseEveryRun(out);
      const failure =
        code === 0 && phases.length > 0
          ? null
          : `exit ${String(code)}${phases.length === 0 ? ', no "Every run" table' : ''}: ${err.trim().split('\n').slice(-3).join(' / ')}`;
      resolve({ phases, failure });
    });
  });
}

async function main(): Promise<number> {
  const options = parseAbArgs(process.argv.slice(2));
  const base = checkOutBase(options.base);
  const stop = (): void => {
    running?.kill('SIGTERM');
    base.remove();
    process.exit(130);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    console.log(
      `ab: base ${options.base} in ${base.dir}, head ${ROOT}; ${options.pairs} pair(s) of: ${options.benchArgs.join(' ')}`,
    );
    const runs: { base: PhaseFigures[]; head: PhaseFigures[] }[] = [];
    const failures: string[] = [];
    for (let i = 0; i < options.pairs; i++) {
      const order: ('base' | 'head')[] = i % 2 === 0 ? ['base', 'head'] : ['head', 'base'];
      const pair = { base: [] as PhaseFigures[], head: [] as PhaseFigures[] };
      for (const side of order) {
        const { phases, failure } = await benchOnce(side === 'base' ? base.dir : ROOT, options.benchArgs);
        console.log(
          `  pair ${i + 1} ${side}: ` +
            (failure ?? phases.map((p) => `${p.server} ${p.task} ${fmt(p.cpuUs, 1)} µs/unit`).join(', ')),
        );
        if (failure) failures.push(`pair ${i + 1} ${side}: ${failure}`);
        pair[side] = phases;
      }
      runs.push(pair);
    }
    console.log(`\n${renderAb(runs)}\n`);
    console.log('head ÷ base below 1: head was lower. The sign test counts only pairs that differ.');
    if (failures.length > 0) {
      console.error(
        `ab: ${failures.length} run(s) failed (their phases are left out where missing):\n  ${failures.join('\n  ')}`,
      );
      return 1;
    }
    return 0;
  } finally {
    base.remove();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`ab: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
