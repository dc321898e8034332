// A prepared-statement cache: compiling a statement costs more than running most of them.
import type BetterSqlite3 from 'better-sqlite3';

export type Prepare = <P extends unknown[] = unknown[], R = unknown>(source: string) => BetterSqlite3.Statement<P, R>;

export function statementCache(db: BetterSqlite3.Database): Prepare {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return <P extends unknown[] = unknown[], R = unknown>(source: string) => {
    let statement = statements.get(source);
    if (!statement) {
      statement = db.prepare(source);
      statements.set(source, statement);
    }
    return statement as unknown as BetterSqlite3.Statement<P, R>;
  };
}
