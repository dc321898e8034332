// `npm start`: builds the web app and the relay when needed, then runs the relay on the embedded SQLite store.
import { spawnSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const relayMain = new URL('../relay/src/main.ts', import.meta.url);
if (!existsSync(relayMain)) {
  console.log('relay not built yet: the relay arrives with its own issue. Nothing to start.');
  process.exit(0);
}
const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
// The Node flags the relay is run with everywhere (relay/node-flags.json says why).
const { flags } = JSON.parse(readFileSync(new URL('../relay/node-flags.json', import.meta.url), 'utf8'));
const relay = spawn('node', [...flags, 'relay/dist/main.js'], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => relay.kill(sig));
relay.on('exit', (code) => process.exit(code ?? 0));
