// Entry point (wiring only): configuration → relay → listen; SIGTERM/SIGINT close it gracefully.
import { ConfigError, loadConfig } from './config.js';
import { redactUrl } from './log.js';
import { createRelay } from './server.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const relay = await createRelay(config);
  const { url, metricsUrl } = await relay.listen();
  relay.log.info(
    { url, store: relay.health.store, fanout: relay.health.fanout, dataDir: config.dataDir },
    'relay listening',
  );
  const where = config.mongodbUri !== undefined ? redactUrl(config.mongodbUri) : config.dataDir;
  console.log(
    `WeConnect relay listening on ${url} (store: ${relay.health.store} in ${where}, fan-out: ${relay.health.fanout})`,
  );
  if (metricsUrl) console.log(`Prometheus metrics on ${metricsUrl}`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    relay.log.info({ signal }, 'shutting down');
    relay.close().then(
      () => process.exit(0),
      (err: unknown) => {
        relay.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(
    err instanceof ConfigError
      ? err.message
      : `relay failed to start: ${err instanceof Error ? err.message : String(err)}`,
  );
  process.exit(1);
});
