// The bench's profile summary (bench/profile-summary.ts), which writes the report's "Where the CPU goes" from the
// run's own V8 profiles: self time only inside the measurement windows, sorted into categories, and rendered as
// µs per delivery that add up to the server's total.
import { describe, expect, it } from 'vitest';
import { categoryOf, place, renderProfileSection, summarizeProfile } from '../bench/profile-summary.js';
import type { CpuProfile } from '../bench/profile-summary.js';
import { summarizeHeap } from '../bench/heap-summary.js';
import type { HeapNode } from '../bench/heap-summary.js';

const frame = (id: number, functionName: string, url: string) => ({
  id,
  callFrame: { functionName, url, lineNumber: 9 },
});

/** Samples 1 ms apart from t = 1,000,000 µs: node ids in order. */
function profile(samples: number[]): CpuProfile {
  return {
    nodes: [
      frame(1, '(idle)', ''),
      frame(2, 'writev', ''),
      frame(3, '(garbage collector)', ''),
      frame(4, 'run', 'file:///w/node_modules/better-sqlite3/lib/methods/wrappers.js'),
      frame(5, 'encode', 'file:///w/node_modules/notepack.io/lib/encode.js'),
      frame(6, 'send', 'file:///w/relay/src/service/delivery.ts'),
      frame(7, 'emit', 'node:events'),
    ],
    startTime: 1_000_000,
    endTime: 1_000_000 + samples.length * 1000,
    samples,
    timeDeltas: samples.map(() => 1000),
  };
}

describe('the bench profile summary', () => {
  it('sorts frames into the report categories', () => {
    expect(categoryOf('writev', place(''))).toBe('socket writes (writev and friends)');
    expect(categoryOf('(garbage collector)', place(''))).toBe('garbage collector');
    expect(categoryOf('run', place('file:///w/node_modules/better-sqlite3/lib/x.js'))).toBe(
      'store (SQLite, MongoDB driver) and its worker',
    );
    expect(categoryOf('commit', place('file:///w/relay/src/store/sqlite/sqlite-store.ts'))).toBe(
      'store (SQLite, MongoDB driver) and its worker',
    );
    expect(categoryOf('decode', place('file:///w/node_modules/socket.io-parser/build/cjs/index.js'))).toBe(
      'Socket.IO, engine.io, ws and the parser',
    );
    expect(categoryOf('parse', place('file:///w/node_modules/zod/v4/core/x.js'))).toBe('our services and zod');
    expect(categoryOf('emit', place('node:events'))).toBe('Node streams, events, buffers, task queues');
    expect(categoryOf('push', place('file:///w/relay/bench/servers/bare.ts'))).toBe('bench server code');
  });

  it('counts only the samples inside the windows, and no idle time', () => {
    // 10 samples outside (SQLite), then 4 inside: writev, GC, idle, our delivery code.
    const p = profile([4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 3, 1, 6, 5]);
    const inside = summarizeProfile(p, [[1_010_500, 1_014_500]]);
    expect(inside.busyUs).toBe(3000);
    expect(inside.byCategory.get('socket writes (writev and friends)')).toBe(1000);
    expect(inside.byCategory.get('garbage collector')).toBe(1000);
    expect(inside.byCategory.get('our services and zod')).toBe(1000);
    expect(inside.byCategory.has('store (SQLite, MongoDB driver) and its worker')).toBe(false);
    const whole = summarizeProfile(p);
    expect(whole.byCategory.get('store (SQLite, MongoDB driver) and its worker')).toBe(10_000);
  });

  it('renders µs per delivery that add up to the server total', () => {
    // A sample counts until the next one: the final idle sample closes the last busy one.
    const summary = summarizeProfile(profile([2, 2, 3, 6, 1]));
    const markdown = renderProfileSection(
      [{ server: 'weconnect', label: 'closed', cpuUsPerDelivery: 80, summary }],
      'npm run bench -- --profile',
    );
    // writev 2 of 4 samples = 40 µs, GC 20, our code 20; the total row is the server's figure.
    expect(markdown).toMatch(/\| socket writes \(writev and friends\) \| 40 \|/);
    expect(markdown).toMatch(/\| garbage collector \| 20 \|/);
    expect(markdown).toMatch(/\| our services and zod \| 20 \|/);
    expect(markdown).toContain('| **total (server CPU µs per delivery)** | **80** |');
    expect(markdown).toContain('`npm run bench -- --profile`');
  });
});

describe('the bench heap summary', () => {
  const node = (functionName: string, url: string, selfSize: number, children: HeapNode[] = []): HeapNode => ({
    callFrame: { functionName, url, lineNumber: 0 },
    selfSize,
    children,
  });

  it('adds up the bytes of every node of the tree by package or file and by function', () => {
    const summary = summarizeHeap({
      head: node('(root)', '', 0, [
        node('_encode', 'file:///w/node_modules/notepack.io/lib/encode.js', 3000, [
          node('send', 'file:///w/relay/src/service/mailbox.ts', 500),
        ]),
        node('send', 'file:///w/relay/src/service/mailbox.ts', 700),
        node('', 'file:///w/relay/src/socket.ts', 200),
      ]),
    });
    expect(summary.totalBytes).toBe(4400);
    expect(summary.byPlace.get('pkg:notepack.io')).toBe(3000);
    expect(summary.byPlace.get('relay:src/service/mailbox.ts')).toBe(1200);
    expect(summary.byFunction.get('send relay:src/service/mailbox.ts')).toBe(1200);
    expect(summary.byFunction.get('(anonymous) relay:src/socket.ts')).toBe(200);
  });
});
