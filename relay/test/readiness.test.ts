// GET /api/ready against a real relay on port 0: ready while the store answers, 503 `unavailable` within
// READY_TIMEOUT_MS when the store fails or stops answering — while /api/health (liveness) stays 200.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { api, startRelay } from './helpers.js';
import type { TestRelay } from './helpers.js';
import { startMongo, withDatabase } from './services.js';
import type { Service } from './services.js';

const started = await startMongo();
const mongo: Service | null = 'service' in started ? started.service : null;
if ('skip' in started) console.warn(`[readiness] MongoDB cases skipped: ${started.skip}`);
afterAll(() => mongo?.stop());

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('GET /api/ready', () => {
  it('answers 200 ready with the store checked while the store answers', async () => {
    t = await startRelay();
    const res = await api(t.url, 'GET', '/api/ready');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready', checked: ['store'] });
  });

  it('answers 503 unavailable at once when the SQLite database is closed under the relay, while health stays 200', async () => {
    t = await startRelay({ READY_TIMEOUT_MS: '1000' });
    await t.relay.store.close();
    const started = Date.now();
    const res = await api(t.url, 'GET', '/api/ready');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: { code: 'unavailable', message: 'the store is not available' } });
    expect(Date.now() - started).toBeLessThan(1000);
    expect((await api(t.url, 'GET', '/api/health')).status).toBe(200);
  });

  it('answers 503 within READY_TIMEOUT_MS when the store stops answering', async () => {
    t = await startRelay({ READY_TIMEOUT_MS: '300' });
    // A store that hangs (as FerretDB did under load): its ping never settles.
    t.relay.store.ping = () => new Promise<void>(() => undefined);
    const started = Date.now();
    const res = await api(t.url, 'GET', '/api/ready');
    const took = Date.now() - started;
    expect(res.status).toBe(503);
    expect(res.body).toEqual({
      error: { code: 'unavailable', message: 'the store did not answer within 300 ms' },
    });
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2000);
  });
});

describe.skipIf(mongo === null)('GET /api/ready on the MongoDB store', () => {
  it('answers 503 within READY_TIMEOUT_MS while the MongoDB server is stopped, and 200 again once it is back', async () => {
    const relay = await startRelay({
      MONGODB_URI: withDatabase(mongo!.url, `ready_${Date.now()}`),
      READY_TIMEOUT_MS: '500',
    });
    t = relay;
    expect((await api(relay.url, 'GET', '/api/ready')).status).toBe(200);
    await mongo!.kill();
    const begun = Date.now();
    const down = await api(relay.url, 'GET', '/api/ready');
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('unavailable');
    expect(Date.now() - begun).toBeLessThan(2000);
    expect((await api(relay.url, 'GET', '/api/health')).status).toBe(200);
    await mongo!.start();
    await expect.poll(async () => (await api(relay.url, 'GET', '/api/ready')).status, { timeout: 20_000 }).toBe(200);
  }, 60_000);
});
