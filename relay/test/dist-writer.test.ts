// The built relay (`npm start` runs `node relay/dist/main.js`) loads its SQLite writer worker from dist and commits
// through it: a send is acknowledged, stored, and still there after a restart. Skipped until `npm run build -w relay`.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startRelayProcess } from './crash-relay.js';
import type { RelayProcess } from './crash-relay.js';
import { connectDevice, messageId, signIn, signUp } from './helpers.js';

const DIST_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const DIST_WORKER = fileURLToPath(new URL('../dist/store/sqlite/writer-worker.js', import.meta.url));

const started: RelayProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((relay) => relay.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(dataDir: string): Promise<RelayProcess> {
  const relay = await startRelayProcess(
    {
      DATA_DIR: dataDir,
      JWT_SECRET: 'dist-writer-secret-dist-writer-secret-0123456789',
      BCRYPT_COST: '4',
      LOG_LEVEL: 'warn',
      SQLITE_WRITER: 'worker',
      WEB_DIST: join(dataDir, 'no-web-app'),
    },
    20_000,
    [DIST_MAIN],
  );
  started.push(relay);
  return relay;
}

describe('the built relay', () => {
  it.skipIf(!existsSync(DIST_WORKER))('commits a send through its writer worker, durably', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-dist-'));
    dirs.push(dataDir);
    const relay = await start(dataDir);
    const [alice, bob] = await Promise.all([signUp(relay.url), signUp(relay.url)]);
    const sender = await connectDevice(relay.url, alice.accessToken);
    const body = randomBytes(64);
    const id = messageId();
    expect(await sender.send({ id, envelopes: [{ to: bob.deviceId, body }] })).toEqual({
      ok: true,
      ts: expect.any(Number),
    });
    sender.close();
    await relay.stop();
    started.splice(0);

    const again = await start(dataDir);
    const session = await signIn(again.url, bob, bob.deviceId);
    const receiver = await connectDevice(again.url, session.accessToken);
    const [message] = await receiver.waitForMessages(1);
    expect(message?.id).toBe(id);
    expect(Buffer.from(message?.body as Uint8Array)).toEqual(body);
    receiver.close();
  });
});
