// Memory per idle authenticated connection: starts the real relay in a child process, signs in N devices, connects
// them all with socket.io-client (WebSocket, msgpack) from this process, and prints the relay's RSS and heap growth
// per connection (after a full collection on both sides of the measurement).
//
//   npx tsx --conditions=source scripts/idle-memory.ts [connections=3000] [--snapshots DIR]     (from relay/)
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';

interface Sample {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

type ToChild = { type: 'sample'; snapshot?: string };
type FromChild = { type: 'ready'; url: string } | { type: 'sample'; sample: Sample };

async function serve(): Promise<void> {
  const { loadConfig } = await import('../src/config.js');
  const { createRelay } = await import('../src/server.js');
  const relay = await createRelay(loadConfig(process.env));
  const { url } = await relay.listen(0, '127.0.0.1');
  const gc = (globalThis as { gc?: () => void }).gc;
  const send = (message: FromChild): void => void process.send?.(message);
  process.on('message', (message: ToChild) => {
    if (message.type !== 'sample') return;
    gc?.();
    setTimeout(() => {
      gc?.();
      if (message.snapshot !== undefined) writeHeapSnapshot(message.snapshot);
      const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
      send({ type: 'sample', sample: { rss, heapTotal, heapUsed, external, arrayBuffers } });
    }, 200);
  });
  process.on('disconnect', () => void relay.close().then(() => process.exit(0)));
  send({ type: 'ready', url });
}

function next(child: ChildProcess, type: FromChild['type']): Promise<FromChild> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: FromChild): void => {
      if (message.type !== type) return;
      child.off('message', onMessage);
      resolve(message);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`relay exited with ${code}`)));
  });
}

/** With `--snapshots DIR`, each sample also writes a heap snapshot there (before.heapsnapshot, after...). */
const snapshotDir = process.argv.includes('--snapshots')
  ? process.argv[process.argv.indexOf('--snapshots') + 1]
  : undefined;

async function sample(child: ChildProcess, name: string): Promise<Sample> {
  const answer = next(child, 'sample');
  const snapshot = snapshotDir === undefined ? {} : { snapshot: join(snapshotDir, `${name}.heapsnapshot`) };
  child.send({ type: 'sample', ...snapshot } satisfies ToChild);
  const message = await answer;
  if (message.type !== 'sample') throw new Error('unexpected answer');
  return message.sample;
}

function connect(url: string, token: string): Promise<Socket> {
  const socket = io(url, {
    parser: msgpackParser,
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 30_000,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

async function measure(count: number): Promise<void> {
  const { signIn, signUp } = await import('../test/helpers.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-idle-'));
  const env = {
    ...process.env,
    DATA_DIR: dataDir,
    BCRYPT_COST: '4',
    SIGNIN_MAX_FAILURES: '100', // sign-ins in flight count against it
    // One account signs in thousands of devices from 127.0.0.1, 20 at a time: the device cap and the per-address
    // bcrypt queue would refuse them.
    DEVICES_PER_ACCOUNT: '1000000',
    BCRYPT_QUEUE_PER_ADDRESS: '100',
    SIGNIN_ADDRESS_MAX_FAILURES: '100000',
    LOG_LEVEL: 'warn',
    JWT_SECRET: randomBytes(32).toString('base64url'),
    WEB_DIST: join(dataDir, 'no-web-app'),
  };
  const start = async (): Promise<{ child: ChildProcess; url: string }> => {
    const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
      execArgv: ['--import', 'tsx', '--conditions=source', '--expose-gc'],
      env,
    });
    const ready = await next(child, 'ready');
    if (ready.type !== 'ready') throw new Error('unexpected answer');
    return { child, url: ready.url };
  };
  const stop = async (child: ChildProcess): Promise<void> => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.disconnect();
    await exited;
  };

  // The devices are signed in by one relay process, and measured in a fresh one on the same DATA_DIR: the memory the
  // sign-ins touched does not blur the baseline.
  const tokens: string[] = [];
  const first = await start();
  try {
    const account = await signUp(first.url);
    for (let i = 0; i < count; i += 20) {
      const sessions = await Promise.all(
        Array.from({ length: Math.min(20, count - i) }, () => signIn(first.url, account)),
      );
      tokens.push(...sessions.map((s) => s.accessToken));
    }
  } finally {
    await stop(first.child);
  }
  const { child, url } = await start();
  const ready = { url };
  try {
    // warm up: code paths compiled and pools grown before the baseline
    const warm = await Promise.all(tokens.slice(0, 100).map((t) => connect(ready.url, t)));
    for (const s of warm) s.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = await sample(child, 'before');
    const sockets: Socket[] = [];
    for (let i = 0; i < tokens.length; i += 100) {
      sockets.push(...(await Promise.all(tokens.slice(i, i + 100).map((t) => connect(ready.url, t)))));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = await sample(child, 'after');
    const per = (key: keyof Sample): string => `${((after[key] - before[key]) / count / 1024).toFixed(1)} KiB`;
    console.log(`${count} idle authenticated connections (WebSocket, msgpack), relay process growth per connection:`);
    console.log(
      `  rss ${per('rss')}, heap total ${per('heapTotal')}, heap used ${per('heapUsed')}, external ${per('external')}`,
    );
    for (const s of sockets) s.disconnect();
  } finally {
    await stop(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--serve')) await serve();
else await measure(Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 3000));
