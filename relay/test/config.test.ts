// loadConfig (the environment) and what createRelay does with it at start.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createRelay, freePagesWorthNoting } from '../src/server.js';
import { rewriteFile } from '../src/store/sqlite/sqlite-store.js';
import { api, signUp, startRelay } from './helpers.js';
import { freePort } from './services.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-config-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('loadConfig', () => {
  it('has the documented defaults, bcrypt cost 12 among them', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      jwtSecret: undefined,
      accessTokenTtlSeconds: 900,
      refreshTokenTtlSeconds: 30 * 24 * 3600,
      bcryptCost: 12,
      jsonBodyLimitBytes: 65536,
      socketFrameLimitBytes: 262144,
      signinMaxFailures: 5,
      signinWindowSeconds: 900,
      sendRateBurst: 200,
      sendRatePerSecond: 50,
      mailboxTtlDays: 30,
      sqliteSynchronous: 'NORMAL',
      sqliteWriter: 'inline',
      commitWindowMs: 1,
      ackHoldMs: 1000,
      trustProxy: false,
      logLevel: 'info',
      mongodbUri: undefined,
      redisUrl: undefined,
      clusterNodeTimeoutSeconds: 15,
      sessionMaxAgeSeconds: 90 * 24 * 3600,
      readyTimeoutMs: 2000,
      metrics: null,
    });
    expect(config.dataDir).toBe(join(process.cwd(), 'data'));
    expect(config.webDist).toMatch(/web[/\\]dist$/);
  });

  it('puts the SQLite writer on a thread where commits fsync (auto), unless told otherwise', () => {
    expect(loadConfig({ SQLITE_SYNCHRONOUS: 'FULL' }).sqliteWriter).toBe('worker');
    expect(loadConfig({ SQLITE_SYNCHRONOUS: 'NORMAL' }).sqliteWriter).toBe('inline');
    expect(loadConfig({ SQLITE_SYNCHRONOUS: 'NORMAL', SQLITE_WRITER: 'worker' }).sqliteWriter).toBe('worker');
    expect(loadConfig({ SQLITE_SYNCHRONOUS: 'FULL', SQLITE_WRITER: 'inline' }).sqliteWriter).toBe('inline');
  });

  it('takes a power of two from 512 to 65536 as the page size of a new SQLite file', () => {
    expect(loadConfig({}).sqlitePageSize).toBe(4096);
    expect(loadConfig({ SQLITE_PAGE_SIZE: '1024' }).sqlitePageSize).toBe(1024);
    for (const bad of ['1000', '256', '131072', 'small'])
      expect(() => loadConfig({ SQLITE_PAGE_SIZE: bad }), bad).toThrow(/SQLITE_PAGE_SIZE/);
  });

  it('holds acks up to ACK_HOLD_MS, 0 to 10 s: by default 1 s with SQLite and not at all with MongoDB', () => {
    expect(loadConfig({ MONGODB_URI: 'mongodb://127.0.0.1:27017/weconnect' }).ackHoldMs).toBe(0);
    expect(loadConfig({ MONGODB_URI: 'mongodb://127.0.0.1:27017/weconnect', ACK_HOLD_MS: '500' }).ackHoldMs).toBe(500);
    expect(loadConfig({ ACK_HOLD_MS: '0' }).ackHoldMs).toBe(0);
    expect(loadConfig({ ACK_HOLD_MS: '10000' }).ackHoldMs).toBe(10_000);
    for (const bad of ['10001', '-1', 'soon'])
      expect(() => loadConfig({ ACK_HOLD_MS: bad }), bad).toThrow(/ACK_HOLD_MS/);
  });

  it('reads overrides and treats empty values as unset', () => {
    const config = loadConfig({
      PORT: '9000',
      BCRYPT_COST: '4',
      TRUST_PROXY: '1',
      HOST: '',
      SQLITE_SYNCHRONOUS: 'FULL',
      SQLITE_WRITER: 'inline',
      SEND_DELIVERIES_PER_SEC: '0.5',
    });
    expect(config).toMatchObject({
      port: 9000,
      bcryptCost: 4,
      trustProxy: 1,
      host: '127.0.0.1',
      sqliteSynchronous: 'FULL',
      sqliteWriter: 'inline',
      sendDeliveriesPerSecond: 0.5,
    });
    for (const bad of ['0', '-1', '0.0001', 'Infinity', 'fast'])
      expect(() => loadConfig({ SEND_DELIVERIES_PER_SEC: bad }), bad).toThrow(/SEND_DELIVERIES_PER_SEC/);
  });

  it('names every invalid variable', () => {
    expect(() => loadConfig({ PORT: 'eighty', BCRYPT_COST: '3', JWT_SECRET: 'short' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'eighty', BCRYPT_COST: '3', JWT_SECRET: 'short' });
    } catch (err) {
      expect((err as Error).message).toMatch(/PORT/);
      expect((err as Error).message).toMatch(/BCRYPT_COST/);
      expect((err as Error).message).toMatch(/JWT_SECRET/);
    }
  });
});

describe('placeholder secrets', () => {
  it('refuses to start with the JWT_SECRET, MongoDB or Redis password of .env.example', () => {
    const example = readFileSync(join(import.meta.dirname, '../../.env.example'), 'utf8');
    const value = (name: string): string => {
      const line = example.split('\n').find((l) => l.startsWith(`${name}=`));
      if (line === undefined) throw new Error(`.env.example has no ${name}`);
      return line.slice(name.length + 1);
    };
    const jwtSecret = value('JWT_SECRET');
    expect(() => loadConfig({ JWT_SECRET: jwtSecret })).toThrow(/JWT_SECRET: still holds the placeholder/);
    const mongo = `mongodb://weconnect:${value('MONGO_PASSWORD')}@mongo:27017/w`;
    expect(() => loadConfig({ MONGODB_URI: mongo })).toThrow(/MONGODB_URI: still holds the placeholder/);
    const secret = 'x'.repeat(32);
    const redis = `redis://:${value('REDIS_PASSWORD')}@redis:6379`;
    expect(() => loadConfig({ JWT_SECRET: secret, MONGODB_URI: 'mongodb://db/w', REDIS_URL: redis })).toThrow(
      /REDIS_URL: still holds the placeholder/,
    );
    expect(loadConfig({ JWT_SECRET: secret }).jwtSecret).toBe(secret);
  });
});

describe('createRelay', () => {
  it('creates its database with SQLITE_PAGE_SIZE, and says so when an existing file keeps another', async () => {
    const dataDir = tempDir();
    const start = async (env: Record<string, string>): Promise<Record<string, unknown>[]> => {
      const lines: Record<string, unknown>[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
          done();
        },
      });
      const config = loadConfig({ DATA_DIR: dataDir, WEB_DIST: join(dataDir, 'none'), ...env });
      const relay = await createRelay(config, { logger: pino({ level: 'info' }, sink) });
      await relay.close();
      return lines;
    };
    const keeps = (lines: Record<string, unknown>[]) =>
      lines.filter((l) => String(l.msg).startsWith('the database file keeps the page size'));
    expect(keeps(await start({ SQLITE_PAGE_SIZE: '1024' }))).toEqual([]);
    const db = new Database(join(dataDir, 'weconnect.db'), { readonly: true });
    expect(db.pragma('page_size', { simple: true })).toBe(1024);
    db.close();
    expect(keeps(await start({}))).toMatchObject([{ pageSize: 1024, configured: 4096 }]);
  });

  it('says at start when much of the database file is free pages, and names the command that gives them back', async () => {
    const dataDir = tempDir();
    const start = async (): Promise<Record<string, unknown>[]> => {
      const lines: Record<string, unknown>[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
          done();
        },
      });
      const config = loadConfig({ DATA_DIR: dataDir, WEB_DIST: join(dataDir, 'none') });
      const relay = await createRelay(config, { logger: pino({ level: 'info' }, sink) });
      await relay.close();
      return lines.filter((l) => String(l.msg).startsWith('part of the database file is free pages'));
    };
    expect(await start()).toEqual([]);
    const freeUp = (blobs: number): void => {
      const db = new Database(join(dataDir, 'weconnect.db'));
      db.exec(`CREATE TABLE filler (b BLOB);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${blobs})
          INSERT INTO filler (b) SELECT zeroblob(4000) FROM n;
        DROP TABLE filler;`);
      db.close();
    };
    // 4 MB free, most of a small file: too little to mention.
    freeUp(1000);
    expect(await start()).toEqual([]);
    // 80 MB that the file held once (as a mailbox that emptied, or migration 016's copy of one), then free.
    freeUp(20000);
    const [noted] = await start();
    expect(noted).toMatchObject({ freeMB: expect.any(Number), fileMB: expect.any(Number) });
    expect(noted!.freeMB).toBeGreaterThanOrEqual(80);
    expect(String(noted!.msg)).toMatch(/npm run admin -- compact/);
    rewriteFile(join(dataDir, 'weconnect.db')); // npm run admin -- compact
    expect(await start()).toEqual([]);
  });

  it('leaves free pages unmentioned below 64 MiB, or below a quarter of a bigger file', () => {
    const MiB = 1024 * 1024;
    const noted = (freeMiB: number, fileMiB: number): boolean =>
      freePagesWorthNoting({ freeBytes: freeMiB * MiB, fileBytes: fileMiB * MiB });
    expect([noted(64, 256), noted(64, 64), noted(300, 1000), noted(1000, 1000)]).toEqual([true, true, true, true]);
    // a little less than 64 MiB, however much of the file it is
    expect(noted(63.9, 64)).toBe(false);
    // 64 MiB or more, but less than a quarter of the file: a big file with a little room, which SQLite reuses
    expect([noted(64, 256.1), noted(100, 401), noted(249, 1000)]).toEqual([false, false, false]);
  });

  it('fails fast, naming the server, when MONGODB_URI or REDIS_URL points where nothing answers', async () => {
    const closed = await freePort();
    const base = { DATA_DIR: tempDir(), LOG_LEVEL: 'silent' };
    const started = Date.now();
    await expect(
      createRelay(loadConfig({ ...base, MONGODB_URI: `mongodb://127.0.0.1:${closed}/weconnect` })),
    ).rejects.toThrow(
      new RegExp(`cannot reach MongoDB at mongodb://127\\.0\\.0\\.1:${closed}/weconnect within 5000 ms`),
    );
    expect(Date.now() - started).toBeLessThan(9000);
  });

  it('requires a shared JWT_SECRET and a shared store (MONGODB_URI) with REDIS_URL, and URLs of the right scheme', () => {
    const secret = 'x'.repeat(32);
    expect(() => loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', MONGODB_URI: 'mongodb://db/w' })).toThrow(
      /JWT_SECRET/,
    );
    expect(() => loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', JWT_SECRET: secret })).toThrow(/MONGODB_URI/);
    expect(() => loadConfig({ MONGODB_URI: 'http://db' })).toThrow(/MONGODB_URI/);
    expect(() => loadConfig({ REDIS_URL: 'db:6379', JWT_SECRET: secret, MONGODB_URI: 'mongodb://db/w' })).toThrow(
      /REDIS_URL/,
    );
    expect(
      loadConfig({ REDIS_URL: 'redis://r:6379', JWT_SECRET: secret, MONGODB_URI: 'mongodb://db/w' }),
    ).toMatchObject({ redisUrl: 'redis://r:6379', mongodbUri: 'mongodb://db/w', clusterNodeTimeoutSeconds: 15 });
  });

  it('creates DATA_DIR and a 0600 jwt-secret once, and tokens survive a restart', async () => {
    const dataDir = join(tempDir(), 'nested', 'data');
    const first = await startRelay({ DATA_DIR: dataDir, JWT_SECRET: '' });
    const secretFile = join(dataDir, 'jwt-secret');
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    const secret = readFileSync(secretFile, 'utf8');
    const alice = await signUp(first.url);
    await first.close();

    const second = await startRelay({ DATA_DIR: dataDir, JWT_SECRET: '' });
    expect(readFileSync(secretFile, 'utf8')).toBe(secret);
    const res = await api(second.url, 'GET', '/api/devices/self/prekeys', { token: alice.accessToken });
    expect(res.status).toBe(200);
    await second.close();
  });
});
