// Summarizes a sampling heap profile of a bench server (BENCH_HEAP_PROFILE_DIR, see servers/host.ts): the bytes
// allocated, collected ones included, by package or file and by function. With `--per N` the figures are also given
// per unit (N deliveries of the run): where a server's garbage comes from, which is what its collector time pays for.
//   tsx bench/heap-summary.ts <file.heapprofile> [top] [--per N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { place } from './profile-summary.js';

export interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: HeapNode[];
}

export interface HeapSummary {
  totalBytes: number;
  byPlace: Map<string, number>;
  byFunction: Map<string, number>;
}

export function summarizeHeap(profile: { head: HeapNode }): HeapSummary {
  const summary: HeapSummary = { totalBytes: 0, byPlace: new Map(), byFunction: new Map() };
  const add = (map: Map<string, number>, key: string, bytes: number): void => {
    map.set(key, (map.get(key) ?? 0) + bytes);
  };
  const stack: HeapNode[] = [profile.head];
  for (let node = stack.pop(); node; node = stack.pop()) {
    const where = place(node.callFrame.url);
    summary.totalBytes += node.selfSize;
    add(summary.byPlace, where, node.selfSize);
    add(summary.byFunction, `${node.callFrame.functionName || '(anonymous)'} ${where}`, node.selfSize);
    stack.push(...(node.children ?? []));
  }
  return summary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, topArg] = process.argv.slice(2).filter((a, i, all) => a !== '--per' && all[i - 1] !== '--per');
  if (file === undefined) {
    console.error('usage: tsx bench/heap-summary.ts <file.heapprofile> [top] [--per N]');
    process.exit(2);
  }
  const perIndex = process.argv.indexOf('--per');
  const per = perIndex > 0 ? Number(process.argv[perIndex + 1]) : 0;
  const top = Number(topArg ?? 30);
  const s = summarizeHeap(JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode });
  const line = (bytes: number, what: string): string =>
    `${((100 * bytes) / s.totalBytes).toFixed(1).padStart(5)}%  ${(bytes / 1048576).toFixed(1).padStart(8)} MiB` +
    `${per > 0 ? `  ${(bytes / per / 1024).toFixed(2).padStart(6)} KiB/unit` : ''}  ${what}`;
  console.log(line(s.totalBytes, 'allocated in all (sampled, collected objects included)'));
  for (const [title, map] of [
    ['by package or file', s.byPlace],
    ['by function', s.byFunction],
  ] as const) {
    console.log(`\n${title}:`);
    for (const [what, bytes] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(line(bytes, what));
  }
}
