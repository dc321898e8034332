// A 100 MiB blob through a relay running as its own process (issue #15): uploaded in 8 MiB chunks and downloaded
// whole while the relay's RSS is sampled every 20 ms. The bytes stream through; the relay's memory stays flat.
import { describe, expect, it } from 'vitest';
import { runBlobBench } from '../bench/blobs.js';

describe('the memory of a relay that stores and serves a 100 MiB blob', () => {
  it('grows by less than 64 MiB, and the download has the uploaded bytes', async () => {
    const result = await runBlobBench({ bytes: 100 * 1024 * 1024 });
    console.log(
      `blob memory: upload ${result.uploadMBps} MiB/s, download ${result.downloadMBps} MiB/s, ` +
        `RSS ${result.rssBeforeMiB} → ${result.rssPeakMiB} MiB (+${result.rssGrowthMiB} MiB)`,
    );
    expect(result.intact).toBe(true);
    expect(result.rssGrowthMiB).toBeLessThan(64);
  }, 180_000);
});
