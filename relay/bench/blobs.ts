// The `blobs` workload (issue #15): one account uploads a blob of `bytes` (default 100 MiB) in chunks of
// LIMITS.blobChunkBytes to a relay running as its own process (SQLite, files in a temporary DATA_DIR), then downloads
// it; the relay process's RSS is sampled from /proc every 20 ms throughout. Prints upload and download MB/s and the
// peak RSS growth over the idle relay. `npm run bench -- --blobs [--blob-mib N]`; relay/test/blobs-memory.test.ts
// runs the same measurement and asserts that the relay's memory stays flat.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LIMITS } from '../src/protocol.js';
import { startRelayProcess } from '../test/crash-relay.js';
import { signUp } from '../test/helpers.js';

const MIB = 1024 * 1024;

export interface BlobBenchResult {
  bytes: number;
  chunkBytes: number;
  uploadMBps: number;
  downloadMBps: number;
  /** The relay process's RSS before the upload (MiB; the highest of a few samples of the idle relay). */
  rssBeforeMiB: number;
  /** The highest RSS sampled during upload and download (MiB). */
  rssPeakMiB: number;
  rssGrowthMiB: number;
  /** Whether the downloaded bytes had the uploaded SHA-256. */
  intact: boolean;
}

/** The resident set size of a process, from /proc (Linux). */
function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error('no VmRSS in /proc/<pid>/status');
  return Number(kb) * 1024;
}

const round = (n: number): number => Math.round(n * 10) / 10;

export async function runBlobBench(options: { bytes?: number } = {}): Promise<BlobBenchResult> {
  const size = options.bytes ?? 100 * MIB;
  const chunkBytes = LIMITS.blobChunkBytes;
  const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-blob-bench-'));
  const relay = await startRelayProcess({
    DATA_DIR: dataDir,
    JWT_SECRET: randomBytes(32).toString('base64url'),
    BCRYPT_COST: '4',
    LOG_LEVEL: 'warn',
    WEB_DIST: join(dataDir, 'no-web-app'),
  });
  const pid = relay.child.pid;
  if (pid === undefined) throw new Error('the relay process has no pid');
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // the process is going away
    }
  }, 20);
  try {
    const account = await signUp(relay.url);
    const auth = { authorization: `Bearer ${account.accessToken}` };
    // The idle relay, once it has served a request of each kind it will serve (its code paths are warm).
    const warm = await fetch(`${relay.url}/api/blobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ size: 1, sha256: createHash('sha256').update(Buffer.of(1)).digest('base64url') }),
    });
    const warmId = ((await warm.json()) as { blobId: string }).blobId;
    await (
      await fetch(`${relay.url}/api/blobs/${warmId}/data?offset=0`, {
        method: 'PUT',
        headers: auth,
        body: Buffer.of(1),
      })
    ).arrayBuffer();
    await (await fetch(`${relay.url}/api/blobs/${warmId}`, { headers: auth })).arrayBuffer();
    let before = 0;
    for (let i = 0; i < 5; i++) {
      before = Math.max(before, rssOf(pid));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    peak = before;

    const bytes = randomBytes(size);
    const digest = createHash('sha256').update(bytes).digest('base64url');
    const upStart = performance.now();
    const created = await fetch(`${relay.url}/api/blobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ size, sha256: digest }),
    });
    if (created.status !== 201) throw new Error(`create answered ${created.status}`);
    const { blobId } = (await created.json()) as { blobId: string };
    for (let offset = 0; offset < size; offset += chunkBytes) {
      const res = await fetch(`${relay.url}/api/blobs/${blobId}/data?offset=${offset}`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/octet-stream' },
        body: bytes.subarray(offset, offset + chunkBytes),
      });
      const status = (await res.json()) as { received?: number };
      if (res.status !== 200) throw new Error(`data at ${offset} answered ${res.status}`);
      if (status.received !== Math.min(size, offset + chunkBytes)) throw new Error('unexpected received');
    }
    const upMs = performance.now() - upStart;

    const downStart = performance.now();
    const res = await fetch(`${relay.url}/api/blobs/${blobId}`, { headers: auth });
    if (res.status !== 200 || !res.body) throw new Error(`download answered ${res.status}`);
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of res.body) {
      hash.update(chunk);
      received += chunk.length;
    }
    const downMs = performance.now() - downStart;
    peak = Math.max(peak, rssOf(pid));
    return {
      bytes: size,
      chunkBytes,
      uploadMBps: round(size / MIB / (upMs / 1000)),
      downloadMBps: round(size / MIB / (downMs / 1000)),
      rssBeforeMiB: round(before / MIB),
      rssPeakMiB: round(peak / MIB),
      rssGrowthMiB: round((peak - before) / MIB),
      intact: received === size && hash.digest('base64url') === digest,
    };
  } finally {
    clearInterval(sampler);
    await relay.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The report's lines for one run. */
export function renderBlobBench(r: BlobBenchResult): string {
  return [
    `| blob | chunk | upload | download | relay RSS before | peak | growth | intact |`,
    `| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |`,
    `| ${r.bytes / MIB} MiB | ${r.chunkBytes / MIB} MiB | ${r.uploadMBps} MiB/s | ${r.downloadMBps} MiB/s | ` +
      `${r.rssBeforeMiB} MiB | ${r.rssPeakMiB} MiB | ${r.rssGrowthMiB} MiB | ${r.intact ? 'yes' : 'NO'} |`,
  ].join('\n');
}
