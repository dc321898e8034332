// Summarizes a V8 .cpuprofile (from `npm run bench -w relay -- --profile`): self time by function and by
// file/package, so a regression can be traced to the code that costs.
// Usage: tsx bench/profile-summary.ts <file> [top] [--last S]: `--last S` keeps only the samples of the profile's
// final S seconds (e.g. a run whose last phase is a long closed loop: `--rates none --duration 10 --no-groups ...`).
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Where a frame's code lives: `pkg:<name>` for node_modules, `relay:<path>` for our sources, else the URL. */
function place(url: string): string {
  if (url === '') return '(native/VM)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1] !== undefined) return `pkg:${pkg[1]}`;
  const ours = /\/relay\/(src\/.*)$/.exec(url);
  if (ours?.[1] !== undefined) return `relay:${ours[1]}`;
  if (url.startsWith('node:')) return url;
  return url;
}

function main(): void {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top]');
  const lastAt = process.argv.indexOf('--last');
  const lastS = lastAt >= 0 ? Number(process.argv[lastAt + 1]) : Infinity;
  const top = Number(process.argv[3]?.startsWith('--') === false ? process.argv[3] : 25);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Self time per node from the sample stream (microseconds); falls back to hit counts.
  const self = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    const deltas = profile.timeDeltas;
    const from = profile.endTime - lastS * 1e6;
    let at = profile.startTime;
    profile.samples.forEach((id, i) => {
      at += deltas[i] ?? 0;
      if (at >= from) self.set(id, (self.get(id) ?? 0) + (deltas[i + 1] ?? 0));
    });
  } else {
    for (const n of profile.nodes) self.set(n.id, n.hitCount ?? 0);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = [...self]
    .filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
    .reduce((a, [, t]) => a + t, 0);
  const busy = total - idle;

  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id);
    if (n === undefined || n.callFrame.functionName === '(idle)') continue;
    const where = place(n.callFrame.url);
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${where}:${n.callFrame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
    byPlace.set(where, (byPlace.get(where) ?? 0) + t);
  }
  const pct = (t: number): string => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
  console.log(`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy`);
  console.log('\nself time by file or package (share of busy time):');
  for (const [where, t] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${where}`);
  console.log('\nself time by function:');
  for (const [fn, t] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${fn}`);
}

main();
