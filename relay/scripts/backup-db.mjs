// Online, WAL-safe backup of a running relay's DATA_DIR: `node relay/scripts/backup-db.mjs <DATA_DIR> <target-dir>`.
// Copies weconnect.db through SQLite's backup API (a consistent snapshot, also while the relay writes) and jwt-secret.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const [dataDir, target] = process.argv.slice(2);
if (!dataDir || !target) {
  console.error('usage: node relay/scripts/backup-db.mjs <DATA_DIR> <target-dir>');
  process.exit(2);
}
const source = join(dataDir, 'weconnect.db');
if (!existsSync(source)) {
  console.error(`no database at ${source}`);
  process.exit(1);
}
mkdirSync(target, { recursive: true, mode: 0o700 });
const db = new Database(source, { readonly: true, fileMustExist: true });
try {
  await db.backup(join(target, 'weconnect.db'));
} finally {
  db.close();
}
const secret = join(dataDir, 'jwt-secret');
if (existsSync(secret)) copyFileSync(secret, join(target, 'jwt-secret'));
console.log(`backed up ${source}${existsSync(secret) ? ' and jwt-secret' : ''} to ${target}`);
