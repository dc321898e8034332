// Prometheus metrics (prom-client) in a registry of this relay's own, served on a separate listener
// (METRICS_PORT, METRICS_HOST: loopback by default; off when METRICS_PORT is unset). Names start `weconnect_`;
// Node's default process metrics (event-loop delay among them) come with them. Labels carry only bounded values
// (error codes, limit names): never a user, device or address.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Something that can count its in-flight work up and down (the bcrypt queue). */
export interface InFlightGauge {
  inc(): void;
  dec(): void;
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({
    name: 'weconnect_socket_connections',
    help: 'Authenticated Socket.IO connections on this node',
    registers: [this.registry],
  });
  readonly sends = new Counter({
    name: 'weconnect_sends_total',
    help: 'message:send events answered ok (stored or duplicate)',
    registers: [this.registry],
  });
  readonly refusedSends = new Counter({
    name: 'weconnect_sends_refused_total',
    help: 'message:send events answered with an error, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly ackedEntries = new Counter({
    name: 'weconnect_acked_entries_total',
    help: 'Mailbox entries acknowledged by their devices (and so deleted)',
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: 'weconnect_commit_seconds',
    help: 'Duration of one write-batch commit (store transaction)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly batchSends = new Histogram({
    name: 'weconnect_commit_batch_sends',
    help: 'Sends committed together in one write batch',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'weconnect_rate_limited_total',
    help: 'Requests and events refused by a rate limit, by limit (events, signin, bundle)',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly bcryptInFlight = new Gauge({
    name: 'weconnect_bcrypt_queue',
    help: 'bcrypt hashes and comparisons queued or running (sign-in, sign-up)',
    registers: [this.registry],
  });

  /**
   * @param mailboxEntries Counts every stored mailbox entry (read at each scrape, from the store): the mailbox depth.
   */
  constructor(mailboxEntries: () => Promise<number>) {
    new Gauge({
      name: 'weconnect_mailbox_entries',
      help: 'Mailbox entries stored and not yet acknowledged, all devices (read from the store at each scrape)',
      registers: [this.registry],
      async collect() {
        this.set(await mailboxEntries());
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }
}

/** Serves GET /metrics from `metrics` on its own HTTP server (nothing else answers there). */
export function listenMetrics(
  metrics: RelayMetrics,
  port: number,
  host: string,
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      const shown = address.address.includes(':') ? `[${address.address}]` : address.address;
      resolve({ server, url: `http://${shown}:${address.port}/metrics` });
    });
  });
}
