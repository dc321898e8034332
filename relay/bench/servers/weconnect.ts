// Hosts the real WeConnect relay (createRelay from src/server.ts, configured from the environment) as a bench server.
import { loadConfig } from '../../src/config.js';
import { createRelay } from '../../src/server.js';
import { hostServer } from './host.js';

await hostServer(async () => {
  const relay = await createRelay(loadConfig(process.env));
  const { port } = await relay.listen(0, '127.0.0.1');
  return {
    port,
    close: () => relay.close(),
    counters: () => ({ commits: relay.commits() }),
    gauges: () => ({ sendsUnanswered: relay.sendsUnanswered(), sendsWaitingOnStore: relay.sendsWaitingOnStore() }),
  };
});
