// Real servers for the scale-out suites, spawned per test file on free loopback ports in temporary directories:
// a MongoDB-wire server (FerretDB over SQLite, or MONGODB_URI_TEST) and redis-server. When one cannot be had the
// starter answers why, and the suite skips with that reason printed.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface Service {
  /** mongodb://127.0.0.1:<port>/ or redis://127.0.0.1:<port> */
  url: string;
  port: number;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
  /** Kills the server at once (redis: to simulate an outage); `start()` brings it back on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
}

export type Started = { service: Service } | { skip: string };

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The first path that exists among `names` on PATH and `extra`. */
function findBinary(names: string[], extra: string[]): string | null {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of dirs) for (const name of names) if (existsSync(join(dir, name))) return join(dir, name);
  for (const path of extra) if (existsSync(path)) return path;
  return null;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, what: string, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited before listening:\n${output()}`);
    }
    if (await portOpen(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`${what} did not listen on ${port} within 20 s:\n${output()}`);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopChild(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited(child);
  clearTimeout(timer);
}

/** Every server these suites spawned; killed on process exit even when a suite forgot or failed before afterAll. */
const living = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of living) child.kill('SIGKILL');
});

async function supervise(
  what: string,
  command: string,
  args: (port: number) => string[],
  port: number,
  url: string,
  dir: string,
): Promise<Service> {
  let child: ChildProcess | null = null;
  let output = '';
  const start = async (): Promise<void> => {
    output = '';
    const c = spawn(command, args(port), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    living.add(c);
    c.once('exit', () => living.delete(c));
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-8192);
    };
    c.stdout?.on('data', keep);
    c.stderr?.on('data', keep);
    await waitForPort(port, c, what, () => output);
  };
  await start();
  let stopped = false;
  return {
    url,
    port,
    start,
    async kill() {
      await stopChild(child, 'SIGKILL');
      child = null;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopChild(child, 'SIGTERM');
      child = null;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A MongoDB URI naming database `name` instead of its own (keeps hosts, credentials and options). */
export function withDatabase(uri: string, name: string): string {
  const [base = '', query] = uri.split('?', 2);
  const hosts = /^(mongodb(?:\+srv)?:\/\/[^/]+)/.exec(base)?.[1];
  if (!hosts) throw new Error('not a mongodb:// URI');
  return `${hosts}/${name}${query ? `?${query}` : ''}`;
}

/** The FerretDB binary: $FERRETDB_BIN, `ferretdb` on PATH, or ~/.local/bin/ferretdb (where .ci/run builds it). */
export function ferretDbBinary(): string | null {
  const candidates = process.env.FERRETDB_BIN ? [process.env.FERRETDB_BIN] : [];
  const found = findBinary(['ferretdb'], [...candidates, join(homedir(), '.local', 'bin', 'ferretdb')]);
  if (!found) return null;
  const version = spawnSync(found, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return version.status === 0 ? found : null;
}

/**
 * A MongoDB-wire server: MONGODB_URI_TEST when set (nothing is spawned; stop() does nothing), else FerretDB over
 * SQLite in a temporary directory.
 */
export async function startMongo(): Promise<Started> {
  const given = process.env.MONGODB_URI_TEST;
  if (given) {
    const noop = async (): Promise<void> => undefined;
    return { service: { url: given, port: 0, stop: noop, kill: noop, start: noop } };
  }
  const binary = ferretDbBinary();
  if (!binary) {
    return {
      skip: 'no MongoDB-wire server: set MONGODB_URI_TEST, or build FerretDB into ~/.local/bin (see relay/README.md, "FerretDB")',
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-ferretdb-'));
  const port = await freePort();
  const service = await supervise(
    'ferretdb',
    binary,
    (p) => [
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--listen-addr=127.0.0.1:${p}`,
      '--telemetry=disable',
      '--debug-addr=-',
      `--state-dir=${dir}`,
      '--log-level=ERROR',
    ],
    port,
    `mongodb://127.0.0.1:${port}/`,
    dir,
  );
  return { service };
}

/** redis-server on a free port, without persistence (a restart starts empty, as after losing a Redis node). */
export async function startRedis(): Promise<Started> {
  const binary = findBinary(['redis-server'], ['/usr/bin/redis-server']);
  if (!binary) return { skip: 'redis-server is not installed (Debian package redis-server)' };
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-redis-'));
  const port = await freePort();
  const service = await supervise(
    'redis-server',
    binary,
    (p) => ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    port,
    `redis://127.0.0.1:${port}`,
    dir,
  );
  return { service };
}

/**
 * nginx with the configuration `config(port)` makes for the port it listens on (written into its own temporary
 * directory, which is also its prefix). Skips without an nginx binary (Debian package nginx-light).
 */
export async function startNginx(config: (port: number, dir: string) => string): Promise<Started> {
  const binary = findBinary(['nginx'], ['/usr/sbin/nginx']);
  if (!binary) return { skip: 'nginx is not installed (Debian package nginx-light)' };
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-nginx-'));
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config(port, dir));
  const service = await supervise(
    'nginx',
    binary,
    () => ['-p', dir, '-c', file, '-e', join(dir, 'error.log'), '-g', 'daemon off;'],
    port,
    `http://127.0.0.1:${port}`,
    dir,
  );
  return { service };
}
