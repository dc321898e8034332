// The mailbox's ack deletes alone, on a real store file with the relay's schema (migrations and trigger included):
// commits of `--batch` mailbox rows to 1,000 devices, each commit deleting the rows of the one before as the
// recipients' acks would, with the relay's statement (all pairs of the batch in one `(seq, device_id) IN (VALUES …)`)
// against the one it replaced (a statement per device, `device_id = ? AND seq IN (…)`). Prints µs per deleted row,
// per inserted row and for BEGIN + COMMIT per row. See bench/BEFORE-AFTER-18.md.
//   npx tsx --conditions=source relay/scripts/bench-ack-delete.ts [--batch 640] [--per-device 2]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const BATCH = arg('batch', 640);
const PER_DEVICE = arg('per-device', 2);
const ROWS = 120_000;
const DEVICES = 1000;
const INSERT_CHUNK = 128;

const placeholders = (n: number, one: string): string => Array.from({ length: n }, () => one).join(', ');

async function run(variant: 'one statement' | 'per device'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'weconnect-ack-delete-'));
  const file = join(dir, 'weconnect.db');
  await new SqliteStore({ file, writer: 'inline' }).close(); // the schema
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('cache_size = -65536');
  db.prepare(
    "INSERT INTO users (user_id, username, salt, auth_hash, identity_key, created_at) VALUES ('u', 'u', x'00', 'h', x'00', 0)",
  ).run();
  const devices = Array.from({ length: DEVICES }, () => randomBytes(16).toString('base64url'));
  const addDevice = db.prepare("INSERT INTO devices (device_id, user_id, created_at) VALUES (?, 'u', 0)");
  for (const d of devices) addDevice.run(d);

  const statements = new Map<string, Database.Statement<unknown[]>>();
  const prepared = (sql: string): Database.Statement<unknown[]> => {
    let s = statements.get(sql);
    if (!s) statements.set(sql, (s = db.prepare(sql)));
    return s;
  };
  const insert = (n: number) =>
    prepared(
      `INSERT INTO mailbox (device_id, message_id, group_id, ts, body, body_id, size) VALUES ${placeholders(n, '(?, ?, ?, ?, ?, ?, ?)')}`,
    );
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const body = randomBytes(300);

  let previous: { seq: number; device: string }[] = [];
  let k = 0;
  const commits = Math.ceil(ROWS / BATCH);
  const warm = Math.ceil(commits / 5);
  let deleteNs = 0n;
  let insertNs = 0n;
  let commitNs = 0n;
  for (let c = 0; c < commits; c++) {
    const t0 = process.hrtime.bigint();
    begin.run();
    const t1 = process.hrtime.bigint();
    if (variant === 'one statement') {
      for (let i = 0; i < previous.length; i += 256) {
        const part = previous.slice(i, i + 256);
        prepared(`DELETE FROM mailbox WHERE (seq, device_id) IN (VALUES ${placeholders(part.length, '(?, ?)')})`).run(
          part.flatMap((p) => [p.seq, p.device]),
        );
      }
    } else {
      for (let i = 0; i < previous.length; i += PER_DEVICE) {
        const part = previous.slice(i, i + PER_DEVICE);
        prepared(`DELETE FROM mailbox WHERE device_id = ? AND seq IN (${placeholders(part.length, '?')})`).run([
          part[0]?.device,
          ...part.map((p) => p.seq),
        ]);
      }
    }
    const t2 = process.hrtime.bigint();
    const batch: string[] = [];
    let last = 0;
    for (let start = 0; start < BATCH; start += INSERT_CHUNK) {
      const n = Math.min(INSERT_CHUNK, BATCH - start);
      const params: unknown[] = [];
      for (let j = 0; j < n; j++, k++) {
        const device = devices[Math.floor(k / PER_DEVICE) % DEVICES] as string;
        batch.push(device);
        params.push(device, `m${k}`, null, Date.now(), body, null, body.length);
      }
      last = Number(insert(n).run(params).lastInsertRowid);
    }
    const t3 = process.hrtime.bigint();
    commit.run();
    const t4 = process.hrtime.bigint();
    previous = batch.map((device, j) => ({ device, seq: last - batch.length + 1 + j }));
    if (c >= warm) {
      deleteNs += t2 - t1;
      insertNs += t3 - t2;
      commitNs += t1 - t0 + (t4 - t3);
    }
  }
  const left = (db.prepare('SELECT count(*) AS n FROM mailbox').get() as { n: number }).n;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  // Every commit deleted all the rows of the one before: a variant that left rows behind measured nothing.
  if (left !== BATCH) throw new Error(`${variant}: ${left} rows left, expected ${BATCH}`);
  const rows = (commits - warm) * BATCH;
  const us = (ns: bigint): string => (Number(ns) / rows / 1000).toFixed(2);
  return `${variant.padEnd(13)}  delete ${us(deleteNs)}  insert ${us(insertNs)}  begin+commit ${us(commitNs)}`;
}

console.log(`µs per row; ${BATCH} rows per commit, ${PER_DEVICE} per device, ${ROWS} rows in all`);
for (const variant of ['per device', 'one statement', 'per device', 'one statement'] as const) {
  console.log(await run(variant));
}
