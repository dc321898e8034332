// What a bare `LIMIT ?` costs (statements.ts, BOUND_LIMIT), on a store file with the relay's schema and a mailbox of
// 100 devices × 20 entries. Three statements: the relay's mailbox read past the last entry (what most connections
// find first), the same from the start, and a page of usernames (the admin tool's list). Each in three forms: with
// a bare `LIMIT ?` (the baseline: SQLite prepares it again on every call), as the relay writes it (`LIMIT ? + 0`),
// and with the limit in the SQL. Each form runs four turns of 20,000 calls, alternating with the others, each call
// for another device or name; prints the fastest turn's µs per call and its ratio to the baseline.
//   npx tsx --conditions=source scripts/bench-bound-limit.ts     (from relay/)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { BOUND_LIMIT } from '../src/store/sqlite/statements.js';

const CALLS = 20_000;
const DEVICES = 100;
const PER_DEVICE = 20;
const LIMIT = 100;

const dir = mkdtempSync(join(tmpdir(), 'weconnect-bound-limit-'));
try {
  const file = join(dir, 'weconnect.db');
  await new SqliteStore({ file, writer: 'inline' }).close(); // the schema
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = OFF'); // mailbox rows for devices that are not registered: only the reads matter here
  const insert = db.prepare(
    'INSERT INTO mailbox (device_id, message_id, ts, body, size) VALUES (?, ?, ?, zeroblob(300), 300)',
  );
  db.transaction(() => {
    for (let d = 0; d < DEVICES; d++) for (let i = 0; i < PER_DEVICE; i++) insert.run(`device-${d}`, `m-${d}-${i}`, i);
  })();
  const users = db.prepare(
    "INSERT INTO users (user_id, username, salt, auth_hash, identity_key, created_at) VALUES (?, ?, x'00', '', x'00', 0)",
  );
  db.transaction(() => {
    for (let u = 0; u < 1000; u++) users.run(`user-${u}`, `name${String(u).padStart(4, '0')}`);
  })();

  const mailboxRead = (limit: string): string =>
    `SELECT m.seq, m.message_id, m.group_id, m.ts, CASE WHEN m.body_id IS NULL THEN m.body ELSE b.body END AS body
     FROM mailbox m LEFT JOIN bodies b ON b.body_id = m.body_id
     WHERE m.device_id = ? AND m.seq > ? ORDER BY m.seq ${limit}`;
  const cases: { name: string; sql: (limit: string) => string; args: (i: number) => unknown[] }[] = [
    // what every connection reads first; most find nothing stored (seqs count over the whole mailbox)
    {
      name: 'mailbox read, nothing stored',
      sql: mailboxRead,
      args: (i) => [`device-${i % DEVICES}`, DEVICES * PER_DEVICE],
    },
    { name: `mailbox read, ${PER_DEVICE} entries`, sql: mailboxRead, args: (i) => [`device-${i % DEVICES}`, 0] },
    {
      name: "a page of 100 usernames (the admin tool's list)",
      sql: (limit) => `SELECT user_id, username FROM users WHERE username > ? ORDER BY username ${limit}`,
      args: (i) => [`name${String(i % 1000).padStart(4, '0')}`],
    },
  ];
  for (const c of cases) {
    const forms = [
      { form: 'bare LIMIT ? (baseline)', statement: db.prepare(c.sql('LIMIT ?')), bound: true },
      { form: `${BOUND_LIMIT} (the relay's)`, statement: db.prepare(c.sql(BOUND_LIMIT)), bound: true },
      { form: `LIMIT ${LIMIT} in the SQL`, statement: db.prepare(c.sql(`LIMIT ${LIMIT}`)), bound: false },
    ];
    const time = (f: (typeof forms)[number]): number => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < CALLS; i++) f.statement.all(...(f.bound ? [...c.args(i), LIMIT] : c.args(i)));
      return Number(process.hrtime.bigint() - t) / CALLS / 1000;
    };
    // four turns each, alternating; the fastest turn of each is kept (the first warms up, others meet a busy machine)
    const us = new Map<string, number>();
    for (let turn = 0; turn < 4; turn++)
      for (const f of forms) us.set(f.form, Math.min(us.get(f.form) ?? Infinity, time(f)));
    const base = us.get(forms[0]!.form)!;
    console.log(`${c.name}:`);
    for (const f of forms) {
      const v = us.get(f.form)!;
      console.log(`  ${f.form.padEnd(30)} ${v.toFixed(1).padStart(6)} µs per call   ${(v / base).toFixed(2)}x`);
    }
  }
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
