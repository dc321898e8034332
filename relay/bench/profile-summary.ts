// Summarizes V8 .cpuprofile files (from `npm run bench -- --profile`): self time by function, by file/package and by
// category (socket writes, GC, store, Socket.IO stack, Node internals, our code), optionally only inside given time
// windows. The bench uses it to write the report's "Where the CPU goes" from the profiles of the same run
// (`profileSection`); by hand:
//   tsx bench/profile-summary.ts <file> [top] [--last S]
// `--last S` keeps only the samples of the profile's final S seconds.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds on the monotonic clock (CLOCK_MONOTONIC on Linux, as process.hrtime). */
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Self time (µs) of a profile, or of its samples inside `windows` ([from, to] in monotonic µs). */
export interface ProfileSummary {
  busyUs: number;
  byPlace: Map<string, number>;
  byFunction: Map<string, number>;
  byCategory: Map<Category, number>;
}

export const CATEGORIES = [
  'socket writes (writev and friends)',
  'garbage collector',
  'store (SQLite, MongoDB driver) and its worker',
  'Socket.IO, engine.io, ws and the parser',
  'Redis client and adapter',
  'Node streams, events, buffers, task queues',
  'our services and zod',
  'bench server code',
  'rest: native and VM time not attributed',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** Where a frame's code lives: `pkg:<name>` for node_modules, `relay:<path>` for our sources, else the URL. */
export function place(url: string): string {
  if (url === '') return '(native/VM)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1] !== undefined) return `pkg:${pkg[1]}`;
  const ours = /\/relay\/((?:src|bench)\/.*)$/.exec(url);
  if (ours?.[1] !== undefined) return `relay:${ours[1]}`;
  return url;
}

const WRITES = new Set(['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString']);

export function categoryOf(functionName: string, where: string): Category {
  if (functionName === '(garbage collector)') return 'garbage collector';
  if (WRITES.has(functionName) && where === '(native/VM)') return 'socket writes (writev and friends)';
  if (/^pkg:(better-sqlite3|mongodb|mongoose|bson|mongodb-connection-string-url)$/.test(where)) {
    return 'store (SQLite, MongoDB driver) and its worker';
  }
  if (where.startsWith('relay:src/store/')) return 'store (SQLite, MongoDB driver) and its worker';
  if (/^pkg:(socket\.io.*|engine\.io.*|ws|notepack\.io|@socket\.io\/component-emitter|base64id)$/.test(where)) {
    return 'Socket.IO, engine.io, ws and the parser';
  }
  if (/^pkg:(redis|@redis\/.*|@socket\.io\/redis.*)$/.test(where)) return 'Redis client and adapter';
  if (where.startsWith('node:')) return 'Node streams, events, buffers, task queues';
  if (where.startsWith('relay:src/') || /^pkg:(zod|pino.*|jsonwebtoken|jws|express|router)$/.test(where)) {
    return 'our services and zod';
  }
  if (where.startsWith('relay:bench/')) return 'bench server code';
  return 'rest: native and VM time not attributed';
}

export function summarizeProfile(profile: CpuProfile, windows: [number, number][] | null = null): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Self time per node from the sample stream (microseconds); falls back to hit counts.
  const self = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    const deltas = profile.timeDeltas;
    let at = profile.startTime;
    profile.samples.forEach((id, i) => {
      at += deltas[i] ?? 0;
      if (windows === null || windows.some(([from, to]) => at >= from && at < to)) {
        self.set(id, (self.get(id) ?? 0) + (deltas[i + 1] ?? 0));
      }
    });
  } else {
    for (const n of profile.nodes) self.set(n.id, n.hitCount ?? 0);
  }
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  const byCategory = new Map<Category, number>();
  let busyUs = 0;
  for (const [id, t] of self) {
    const n = byId.get(id);
    if (n === undefined || n.callFrame.functionName === '(idle)') continue;
    busyUs += t;
    const where = place(n.callFrame.url);
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${where}:${n.callFrame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
    byPlace.set(where, (byPlace.get(where) ?? 0) + t);
    const category = categoryOf(n.callFrame.functionName, where);
    byCategory.set(category, (byCategory.get(category) ?? 0) + t);
  }
  return { busyUs, byPlace, byFunction, byCategory };
}

/** Adds summaries (the threads and node processes of one server). */
export function mergeSummaries(summaries: ProfileSummary[]): ProfileSummary {
  const sum = <K>(maps: Map<K, number>[]): Map<K, number> => {
    const out = new Map<K, number>();
    for (const map of maps) for (const [k, v] of map) out.set(k, (out.get(k) ?? 0) + v);
    return out;
  };
  return {
    busyUs: summaries.reduce((a, s) => a + s.busyUs, 0),
    byPlace: sum(summaries.map((s) => s.byPlace)),
    byFunction: sum(summaries.map((s) => s.byFunction)),
    byCategory: sum(summaries.map((s) => s.byCategory)),
  };
}

/** The .cpuprofile files a process wrote (Node names them CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile). */
export function profilesOf(dir: string, pid: number): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile') && name.split('.')[3] === String(pid))
    .map((name) => join(dir, name));
}

/** What the report needs of one server's profiled phase. */
export interface ProfiledPhase {
  server: string;
  label: string;
  /** Server CPU µs per delivery in the same windows (all threads and node processes). */
  cpuUsPerDelivery: number;
  summary: ProfileSummary;
}

const fmtUs = (v: number): string => (Number.isFinite(v) ? (v === 0 ? '0' : v.toFixed(v < 10 ? 1 : 0)) : '–');

/**
 * The report's "Where the CPU goes" from the profiles of this run: for each server, the share of each category in
 * the profiled phase's windows (every repetition), times the server's CPU µs per delivery there, so each column adds
 * up to about the server's total; then the top functions of the first server.
 */
export function renderProfileSection(phases: ProfiledPhase[], command: string, topFunctions = 12): string {
  if (phases.length === 0) return '_No profiles matched the run (was a server profiled?)._';
  const label = phases[0]?.label ?? '';
  // Categories no profiled server spent time in (e.g. Redis in a one-node run) are left out.
  const used = CATEGORIES.filter((category) => phases.some((p) => (p.summary.byCategory.get(category) ?? 0) > 0));
  const rows = used.map((category) => [
    category,
    ...phases.map((p) =>
      p.summary.busyUs > 0
        ? fmtUs(((p.summary.byCategory.get(category) ?? 0) / p.summary.busyUs) * p.cpuUsPerDelivery)
        : '–',
    ),
  ]);
  rows.push(['**total (server CPU µs per delivery)**', ...phases.map((p) => `**${fmtUs(p.cpuUsPerDelivery)}**`)]);
  const header = ['where', ...phases.map((p) => p.server)];
  const table = [header, header.map((_, i) => (i === 0 ? '---' : '---:')), ...rows]
    .map((cells) => `| ${cells.join(' | ')} |`)
    .join('\n');
  const first = phases[0] as ProfiledPhase;
  const top = [...first.summary.byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topFunctions)
    .map(
      ([fn, t]) =>
        `| ${((100 * t) / first.summary.busyUs).toFixed(1)}% | ${fmtUs((t / first.summary.busyUs) * first.cpuUsPerDelivery)} | \`${fn.replace(/\|/g, '\\|')}\` |`,
    );
  return `Written by the bench from the V8 CPU profiles of this run (\`${command}\`): every thread of every server
process, only the samples inside the \`${label}\` measurement windows (all repetitions). Each figure is the category's
share of that self time, multiplied by the server's CPU µs per delivery in the same windows, so each column adds up to
about its server's total. Profiling itself slows the servers down a little; read the shares, not the totals.

${table}

Top functions of \`${first.server}\` by self time in those windows:

| share | ≈ µs/delivery | function (file:line) |
| ---: | ---: | --- |
${top.join('\n')}`;
}

function main(): void {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top] [--last S]');
  const lastAt = process.argv.indexOf('--last');
  const lastS = lastAt >= 0 ? Number(process.argv[lastAt + 1]) : Infinity;
  const top = Number(process.argv[3]?.startsWith('--') === false ? process.argv[3] : 25);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const windows: [number, number][] | null = Number.isFinite(lastS)
    ? [[profile.endTime - lastS * 1e6, Infinity]]
    : null;
  const summary = summarizeProfile(profile, windows);
  const busy = summary.busyUs;
  const pct = (t: number): string => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
  console.log(`profile ${file}: ${(busy / 1e6).toFixed(1)} s busy`);
  console.log('\nself time by category (share of busy time):');
  for (const [c, t] of [...summary.byCategory].sort((a, b) => b[1] - a[1])) console.log(`${pct(t)}  ${c}`);
  console.log('\nself time by file or package:');
  for (const [where, t] of [...summary.byPlace].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(t)}  ${where}`);
  }
  console.log('\nself time by function:');
  for (const [fn, t] of [...summary.byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(t)}  ${fn}`);
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
