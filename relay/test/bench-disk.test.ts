// The bench's disk figure (servers/host.ts diskCounters, figures.ts M.diskKbPerUnit): the bytes a server process wrote
// toward the disk, from Linux's /proc/self/io. A file's bytes count; a socket's do not.
import { once } from 'node:events';
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { M } from '../bench/figures.js';
import type { PhaseRun } from '../bench/figures.js';
import { diskCounters } from '../bench/servers/host.js';

const hasProcIo = existsSync('/proc/self/io');
if (!hasProcIo) console.log('bench-disk: skipped, this system has no /proc/self/io (Linux only)');

// A file's pages count only where they go to a block device: not on tmpfs or ramfs, which some machines mount at /tmp.
// So the file is written to the first of the temp directory and this checkout that is on a disk.
const IN_MEMORY = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);
const onDisk = [tmpdir(), dirname(fileURLToPath(import.meta.url))].find(
  (dir) => !IN_MEMORY.has(Number(statfsSync(dir).type)),
);
if (hasProcIo && onDisk === undefined)
  console.log("bench-disk: a file's bytes not checked, the temp directory and the checkout are both in memory (tmpfs)");

const written = (): number => diskCounters().diskWriteBytes ?? Number.NaN;

describe.skipIf(!hasProcIo)('the bench disk counter', () => {
  it.skipIf(onDisk === undefined)("counts a file's bytes, and not a socket's", async () => {
    const dir = mkdtempSync(join(onDisk ?? tmpdir(), '.weconnect-disk-'));
    try {
      const chunk = Buffer.alloc(1 << 20, 7);
      const beforeFile = written();
      const fd = openSync(join(dir, 'data'), 'w');
      for (let i = 0; i < 4; i++) writeSync(fd, chunk);
      fsyncSync(fd);
      closeSync(fd);
      const fileBytes = written() - beforeFile;
      expect(fileBytes).toBeGreaterThanOrEqual(4 << 20);

      const server = createServer((socket) => socket.resume());
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
      await once(client, 'connect');
      const beforeSocket = written();
      for (let i = 0; i < 8; i++) if (!client.write(chunk)) await once(client, 'drain');
      await new Promise<void>((resolve) => client.end(resolve));
      const socketBytes = written() - beforeSocket;
      server.close();
      expect(socketBytes).toBeLessThan(1 << 20); // 8 MiB sent
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the disk figure per unit', () => {
  const phase = (counters: Record<string, number>): PhaseRun =>
    ({
      label: 'open 50/s',
      result: { kind: 'messaging', delivered: 1000, windowMs: 20_000, loadgenCpuUs: 0 },
      serverCounters: counters,
    }) as unknown as PhaseRun;

  it('divides the bytes of the window by its deliveries, in KB, and is absent without a counter', () => {
    expect(M.diskKbPerUnit(phase({ diskWriteBytes: 46_500_000, commits: 2000 }))).toBeCloseTo(46.5, 10);
    expect(M.diskKbPerUnit(phase({ commits: 2000 }))).toBeNaN();
  });
});
