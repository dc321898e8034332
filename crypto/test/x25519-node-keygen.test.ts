// A regression test for a process-wide deadlock. On Node 20, an X25519 key pair from generateKeyPairSync whose
// public key was then exported as JWK could hang the process for good: the key-generation job is freed by the
// garbage collector, its destructor takes the key's mutex, and the export holds that mutex while it allocates. A
// collection inside the export never returned. Key pairs now come from the asynchronous generateKeyPair
// (x25519.ts). This seals 30,000 envelopes in a child process, which must finish. The child's young generation is
// kept small (--max-semi-space-size=1) so that collections are frequent: with the old code, loops of 10,000 seals
// hung in 4 runs out of 5 with that flag, and loops of 40,000 in 3 out of 3 (1 in 3 without it).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const COUNT = 30_000;
const LIMIT_MS = 90_000;

it(
  `seals ${COUNT} envelopes in a row on node:crypto without hanging`,
  async () => {
    const script = fileURLToPath(new URL('./seal-loop.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--max-semi-space-size=1', '--conditions=source', '--import', 'tsx', script, String(COUNT)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const started = Date.now();
    const result = await new Promise<'exited' | 'hung'>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('hung');
      }, LIMIT_MS);
      child.on('exit', () => {
        clearTimeout(timer);
        resolve('exited');
      });
    });
    expect(result, `no exit after ${Date.now() - started} ms (deadlocked?); output: ${out}`).toBe('exited');
    expect(out.trim()).toBe(`sealed ${COUNT}`);
  },
  LIMIT_MS + 10_000,
);
