// Device removal across relay nodes (issue #14): two relay processes sharing one store (FerretDB, or
// MONGODB_URI_TEST) and one redis-server. A device connected to one node is told and dropped when its owner removes
// it through the other node, and the account's devices on either node hear that the list changed.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelayProcess } from './crash-relay.js';
import type { RelayProcess } from './crash-relay.js';
import { api, connectDevice, connectError, signIn, signUp, waitFor } from './helpers.js';
import type { TestDevice } from './helpers.js';
import { startMongo, startRedis, withDatabase } from './services.js';
import type { Service } from './services.js';

const [mongoStarted, redisStarted] = await Promise.all([startMongo(), startRedis()]);
const mongo: Service | null = 'service' in mongoStarted ? mongoStarted.service : null;
const redis: Service | null = 'service' in redisStarted ? redisStarted.service : null;
const skipReason = [mongoStarted, redisStarted].flatMap((s) => ('skip' in s ? [s.skip] : [])).join('; ');
if (skipReason) {
  console.warn(`[devices multinode] skipped: ${skipReason}`);
  await mongo?.stop();
  await redis?.stop();
}

const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-devices-multinode-'));
const env: Record<string, string> = {
  MONGODB_URI: withDatabase(mongo?.url ?? 'mongodb://127.0.0.1:1/', `devices_${randomBytes(4).toString('hex')}`),
  REDIS_URL: redis?.url ?? '',
  JWT_SECRET: randomBytes(32).toString('base64url'),
  BCRYPT_COST: '4',
  LOG_LEVEL: 'warn',
  DATA_DIR: dataDir,
  WEB_DIST: join(dataDir, 'no-web-app'),
  SIGNUP_RATE_BURST: '1000',
  SIGNIN_ADDRESS_MAX_FAILURES: '100000',
  BCRYPT_QUEUE_PER_ADDRESS: '1000',
};
const nodes: RelayProcess[] = [];
const devices: TestDevice[] = [];

describe.skipIf(skipReason !== '')('device removal on two relay nodes', () => {
  beforeAll(async () => {
    nodes.push(await startRelayProcess(env, 30_000), await startRelayProcess(env, 30_000));
  }, 90_000);

  afterAll(async () => {
    for (const device of devices) device.close();
    await Promise.all(nodes.map((n) => n.stop(3000).catch(() => undefined)));
    await redis?.stop();
    await mongo?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('tells and drops the removed device on the other node, and tells the remaining device there', async () => {
    const [node1, node2] = nodes as [RelayProcess, RelayProcess];
    const alice = await signUp(node1.url);
    const second = await signIn(node1.url, alice);
    const removed = await connectDevice(node2.url, second.accessToken);
    const remaining = await connectDevice(node2.url, alice.accessToken);
    devices.push(removed, remaining);
    const told: string[] = [];
    const reasons: string[] = [];
    const changes: unknown[] = [];
    removed.socket.on('device:removed', () => told.push('removed'));
    removed.socket.on('disconnect', (reason) => reasons.push(reason));
    remaining.socket.on('devices:changed', (e: unknown) => changes.push(e));

    const res = await api(node1.url, 'DELETE', `/api/devices/${second.deviceId}`, { token: alice.accessToken });
    expect(res.status).toBe(204);
    await waitFor(() => reasons.length > 0, 10_000, 'the removed device to be dropped on node 2');
    expect(told).toEqual(['removed']);
    expect(reasons).toEqual(['io server disconnect']);
    await waitFor(() => changes.length > 0, 10_000, 'devices:changed on node 2');
    expect(changes).toContainEqual({ reason: 'removed' });
    expect(remaining.socket.connected).toBe(true);
    // Either node answers its token device_removed.
    expect(await connectError(node2.url, second.accessToken)).toMatchObject({ error: { code: 'device_removed' } });
    expect((await api(node1.url, 'GET', '/api/devices', { token: second.accessToken })).body.error.code).toBe(
      'device_removed',
    );
  });
});
