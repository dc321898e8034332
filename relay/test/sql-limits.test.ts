// Every LIMIT the relay's SQLite statements take per call is written as statements.ts's BOUND_LIMIT: SQLite prepares
// a statement with a bare `LIMIT ?` again on every call (scripts/bench-bound-limit.ts measures it). And the form
// limits as a bare one does, here on a table of its own; the store's tests run each statement that uses it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { BOUND_LIMIT } from '../src/store/sqlite/statements.js';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('a LIMIT bound per call', () => {
  it('is nowhere a bare `LIMIT ?` in the relay’s SQL', () => {
    const bare = sourceFiles(SRC).flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .map((line, i) => ({ where: `${file.slice(SRC.length + 1)}:${i + 1}`, line }))
        .filter(({ line }) => /\bLIMIT\s+\?(?!\s*\+\s*0)/i.test(line) && !line.trimStart().startsWith('*')),
    );
    expect(bare).toEqual([]);
    // the statements that take one do use it
    const users = sourceFiles(SRC).filter((file) => readFileSync(file, 'utf8').includes('${BOUND_LIMIT}'));
    expect(users.length).toBeGreaterThanOrEqual(4);
  });

  it('still limits, whatever value it is given, and refuses what a bare one refuses', () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (n INTEGER PRIMARY KEY)');
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    for (let n = 1; n <= 10; n++) insert.run(n);
    const bound = db.prepare<[number, number], { n: number }>(`SELECT n FROM t WHERE n > ? ORDER BY n ${BOUND_LIMIT}`);
    const bare = db.prepare<[number, number], { n: number }>('SELECT n FROM t WHERE n > ? ORDER BY n LIMIT ?');
    for (const [after, limit] of [
      [0, 3],
      [5, 3],
      [0, 0],
      [8, 100],
      [0, -1],
    ] as const) {
      expect(bound.all(after, limit), `after ${after}, limit ${limit}`).toEqual(bare.all(after, limit));
    }
    expect(bound.all(0, 3).map((r) => r.n)).toEqual([1, 2, 3]);
    expect(() => bound.all(0, 2.5)).toThrow(/datatype mismatch/);
    expect(() => bare.all(0, 2.5)).toThrow(/datatype mismatch/);
    db.close();
  });
});
