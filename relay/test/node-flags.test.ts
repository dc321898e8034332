// Every way the relay is started passes the same Node flags (relay/node-flags.json): npm start, the relay's own start
// script, the Docker image, the bench (which runs the relay as it ships), and the commands the READMEs give.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVERS } from '../bench/servers/index.js';

const root = new URL('../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');
const { flags } = JSON.parse(read('relay/node-flags.json')) as { flags: string[] };

describe('the Node flags of the relay', () => {
  it('are flags this Node accepts', () => {
    expect(flags.length).toBeGreaterThan(0);
    const run = spawnSync(process.execPath, [...flags, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('are passed by npm start, the relay start script, the Dockerfile and the bench', () => {
    expect(read('scripts/start.mjs')).toContain("'../relay/node-flags.json'");
    const pkg = JSON.parse(read('relay/package.json')) as { scripts: { start: string } };
    expect(pkg.scripts.start).toBe(`node ${flags.join(' ')} dist/main.js`);
    const cmd = read('Dockerfile')
      .split('\n')
      .filter((line) => line.startsWith('CMD '))
      .at(-1);
    expect(cmd).toBe(`CMD ${JSON.stringify(['node', ...flags, 'relay/dist/main.js']).replaceAll(',', ', ')}`);
    for (const server of SERVERS.filter((s) => s.client === 'weconnect')) expect(server.nodeFlags).toEqual(flags);
  });

  it('are in every command the READMEs give for starting the built relay', () => {
    for (const file of ['README.md', 'relay/README.md']) {
      const lines = read(file)
        .split('\n')
        .filter((line) => /\bnode\b.*relay\/dist\/main\.js/.test(line));
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) expect(line).toContain(`node ${flags.join(' ')} relay/dist/main.js`);
    }
  });
});
