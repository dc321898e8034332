// Prometheus metrics on the relay's separate listener (METRICS_PORT): a scrape after a real send shows the counters
// move — connections, sends, commits and their batch sizes, acknowledged entries, refused sends by code, rate-limit
// hits, mailbox depth — and the relay's own HTTP port does not serve them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectDevice, messageId, signUp, startRelay } from './helpers.js';
import type { TestRelay } from './helpers.js';

let t: TestRelay;
beforeAll(async () => {
  t = await startRelay({ METRICS_PORT: '0', SIGNIN_MAX_FAILURES: '1' });
});
afterAll(() => t.close());

/** One scrape: every sample line, by name and labels, e.g. `weconnect_sends_refused_total{code="unknown_recipient"}`. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(t.metricsUrl!);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const value = (s: Map<string, number>, name: string): number => s.get(name) ?? 0;

describe('the metrics listener', () => {
  it('listens on loopback on its own port, and the relay port does not serve /metrics', async () => {
    expect(t.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(new URL(t.metricsUrl!).port).not.toBe(String(t.port));
    expect((await api(t.url, 'GET', '/metrics')).status).toBe(404);
  });

  it('counts a send, its commit, its ack, a refused send and a rate-limited sign-in', async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    const before = await scrape();
    const a = await connectDevice(t.url, alice.accessToken);
    // Bob is offline: the entry waits in his mailbox (the mailbox depth), then is acknowledged when he connects.
    const id = messageId();
    expect(await a.send({ id, envelopes: [{ to: bob.deviceId, body: Buffer.from('hi') }] })).toMatchObject({
      ok: true,
    });
    const unknown = await a.send({ id: messageId(), envelopes: [{ to: messageId(), body: Buffer.from('x') }] });
    expect(unknown).toMatchObject({ ok: false, error: { code: 'unknown_recipient' } });
    const stored = await scrape();
    expect(value(stored, 'weconnect_socket_connections') - value(before, 'weconnect_socket_connections')).toBe(1);
    expect(value(stored, 'weconnect_sends_total') - value(before, 'weconnect_sends_total')).toBe(1);
    expect(
      value(stored, 'weconnect_sends_refused_total{code="unknown_recipient"}') -
        value(before, 'weconnect_sends_refused_total{code="unknown_recipient"}'),
    ).toBe(1);
    expect(value(stored, 'weconnect_commit_seconds_count')).toBeGreaterThan(
      value(before, 'weconnect_commit_seconds_count'),
    );
    expect(value(stored, 'weconnect_commit_batch_sends_count')).toBeGreaterThan(
      value(before, 'weconnect_commit_batch_sends_count'),
    );
    expect(value(stored, 'weconnect_mailbox_entries') - value(before, 'weconnect_mailbox_entries')).toBe(1);

    const b = await connectDevice(t.url, bob.accessToken);
    await b.waitForMessages(1);
    let acked = stored;
    await expect
      .poll(async () => {
        acked = await scrape();
        return value(acked, 'weconnect_acked_entries_total') - value(stored, 'weconnect_acked_entries_total');
      })
      .toBe(1);
    expect(value(acked, 'weconnect_mailbox_entries')).toBe(value(before, 'weconnect_mailbox_entries'));

    // SIGNIN_MAX_FAILURES 1: the second wrong sign-in is refused by the limit.
    const wrong = { username: alice.username, authKey: 'A'.repeat(43) };
    expect((await api(t.url, 'POST', '/api/sessions', { body: wrong })).status).toBe(401);
    expect((await api(t.url, 'POST', '/api/sessions', { body: wrong })).status).toBe(429);
    const limited = await scrape();
    expect(
      value(limited, 'weconnect_rate_limited_total{limit="signin"}') -
        value(before, 'weconnect_rate_limited_total{limit="signin"}'),
    ).toBe(1);
    expect(limited.has('weconnect_bcrypt_queue')).toBe(true);
    expect(limited.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);

    a.close();
    b.close();
    await expect
      .poll(async () => value(await scrape(), 'weconnect_socket_connections'))
      .toBe(value(before, 'weconnect_socket_connections'));
  });

  it('is off unless METRICS_PORT is set', async () => {
    const plain = await startRelay();
    try {
      expect(plain.metricsUrl).toBeUndefined();
    } finally {
      await plain.close();
    }
  });
});
