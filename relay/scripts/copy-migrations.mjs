// Copies the SQLite migration files next to the compiled store so `node dist/main.js` finds them.
import { cpSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'src/store/sqlite/migrations');
if (existsSync(from)) cpSync(from, join(root, 'dist/store/sqlite/migrations'), { recursive: true });
