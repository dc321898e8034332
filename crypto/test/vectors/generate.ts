// Regenerates test/vectors/*.json: `npm run vectors -w crypto` (see README.md beside this file).

import { writeFileSync } from 'node:fs';
import { ready } from '../../src/index.js';
import { VECTORS } from './build.js';

// The random-source hook is test-only; this script is part of the test suite's tooling.
process.env['NODE_ENV'] = 'test';
await ready();
for (const [name, build] of Object.entries(VECTORS)) {
  const file = new URL(`./${name}.json`, import.meta.url);
  writeFileSync(file, `${JSON.stringify(await build(), null, 2)}\n`);
  console.log(`wrote ${file.pathname}`);
}
