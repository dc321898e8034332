// `npm start`: builds the web app and the relay when needed, then runs the relay on the embedded SQLite store.
import { spawnSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

const relayMain = new URL('../relay/src/main.ts', import.meta.url);
if (!existsSync(relayMain)) {
  console.log('relay not built yet: the relay arrives with its own issue. Nothing to start.');
  process.exit(0);
}
const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const relay = spawn('node', ['relay/dist/main.js'], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => relay.kill(sig));
relay.on('exit', (code) => process.exit(code ?? 0));
