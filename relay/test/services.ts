// Real servers for the scale-out suites, spawned per test file on free loopback ports in temporary directories:
// a MongoDB-wire server (FerretDB over a PostgreSQL cluster made here, or MONGODB_URI_TEST) and redis-server. When
// one cannot be had the starter answers why, and the suite skips with that reason printed.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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
  /**
   * Stops the process where it stands (SIGSTOP): its connections stay open and nothing answers on them, as with a
   * hung server or a dropped network path. `resume()` (SIGCONT) lets it go on. Absent for a server not started here.
   */
  pause?(): void;
  resume?(): void;
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
  child.kill('SIGCONT'); // a paused server (pause()) takes the signal only once it runs again
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
  logFile?: string,
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
      if (logFile) appendFileSync(logFile, chunk);
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
    pause() {
      if (!child?.kill('SIGSTOP')) throw new Error(`${what} is not running`);
    },
    resume() {
      child?.kill('SIGCONT');
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

/** Debian's PostgreSQL server programs: $PG_BIN, or the newest /usr/lib/postgresql/<version>/bin with initdb. */
export function postgresBinaries(): string | null {
  const given = process.env.PG_BIN;
  if (given) return existsSync(join(given, 'initdb')) ? given : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : join(root, versions[0], 'bin');
}

/** The uid and gid of the unprivileged `postgres` user, when this process runs as root (initdb refuses root). */
function postgresUser(): { uid: number; gid: number } | null | 'missing' {
  if (process.getuid?.() !== 0) return null; // not root: the cluster runs as this user
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  return uid === undefined || gid === undefined ? 'missing' : { uid: Number(uid), gid: Number(gid) };
}

/** Clusters still running, stopped at process exit even when a suite failed before its afterAll. */
const clusters = new Set<() => void>();
process.once('exit', () => {
  for (const stop of clusters) stop();
});

/**
 * A throw-away PostgreSQL cluster: `initdb` into a temporary directory and `pg_ctl start` on a free loopback port,
 * as the `postgres` user when run as root. Durability is off (fsync): the data lives as long as the test file.
 */
export async function startPostgres(): Promise<{ url: string; stop(): Promise<void> } | { skip: string }> {
  const bin = postgresBinaries();
  if (!bin) return { skip: 'no PostgreSQL server (Debian package postgresql, or set PG_BIN)' };
  const user = postgresUser();
  if (user === 'missing') return { skip: 'running as root without a postgres user to run PostgreSQL as' };
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  const port = await freePort();
  const data = join(dir, 'data');
  const run = (program: string, args: string[]): void => {
    const res = spawnSync(join(bin, program), args, {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, LC_ALL: 'C', PGTZ: 'UTC' },
      ...(user ?? {}),
    });
    if (res.status !== 0) {
      throw new Error(`${program} failed (${String(res.status ?? res.error)}):\n${res.stdout}${res.stderr}`);
    }
  };
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`;
  const stopNow = (): void => {
    spawnSync(join(bin, 'pg_ctl'), ['-D', data, 'stop', '-m', 'immediate'], {
      cwd: dir,
      timeout: 20_000,
      ...(user ?? {}),
    });
  };
  clusters.add(stopNow);
  try {
    run('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
    run('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'ferretdb']);
  } catch (err) {
    stopNow();
    clusters.delete(stopNow);
    throw err;
  }
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/ferretdb`,
    stop() {
      if (!stopped) {
        stopped = true;
        stopNow();
        clusters.delete(stopNow);
        rmSync(dir, { recursive: true, force: true });
      }
      return Promise.resolve();
    },
  };
}

/**
 * A MongoDB-wire server: MONGODB_URI_TEST when set (nothing is spawned; stop() does nothing), else FerretDB over a
 * PostgreSQL cluster started here (FERRETDB_HANDLER=sqlite: over SQLite in a temporary directory instead). Its log
 * level is FERRETDB_LOG_LEVEL (default error), its whole output is appended to FERRETDB_LOG_FILE when set, and the
 * last 8 KiB of it are in any start-up failure.
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
  const sqlite = process.env.FERRETDB_HANDLER === 'sqlite';
  const postgres = sqlite ? null : await startPostgres();
  if (postgres && 'skip' in postgres) return { skip: `FerretDB over PostgreSQL: ${postgres.skip}` };
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-ferretdb-'));
  const port = await freePort();
  const backend = postgres
    ? ['--handler=postgresql', `--postgresql-url=${postgres.url}`]
    : ['--handler=sqlite', `--sqlite-url=file:${dir}/`];
  let service: Service;
  try {
    service = await supervise(
      'ferretdb',
      binary,
      (p) => [
        ...backend,
        `--listen-addr=127.0.0.1:${p}`,
        '--telemetry=disable',
        '--debug-addr=-',
        `--state-dir=${dir}`,
        `--log-level=${(process.env.FERRETDB_LOG_LEVEL ?? 'error').toUpperCase()}`,
      ],
      port,
      `mongodb://127.0.0.1:${port}/`,
      dir,
      process.env.FERRETDB_LOG_FILE,
    );
  } catch (err) {
    await postgres?.stop();
    throw err;
  }
  if (!postgres) return { service };
  const stopFerret = service.stop.bind(service);
  service.stop = async () => {
    await stopFerret();
    await postgres.stop();
  };
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
