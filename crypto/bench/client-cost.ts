// Benchmark (not a test): a client's cost per message in Node and in headless Chromium (client-cost-workload.ts).
//
//   npx tsx --conditions=source crypto/bench/client-cost.ts [--json] [--chromium] [--seconds S] [--backend B]
//
// --seconds S: measuring time per environment (default 8; four rows, median of five slices each).
// --backend libsodium|webcrypto|node forces the sealed box's X25519 (libsodium = the cost before platform X25519).
// --compare R: R alternating rounds of the libsodium fallback and the platform X25519 in the same processes, so that
//   the before/after ratio survives a busy machine (prints a table; not with --json).
// --json prints exactly one line: {"node": {...}, "chromium": {...} | null, "chromiumSkipped": reason | null}.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { X25519Backend } from '../src/x25519.js';
import { type ClientCost, measureClientCost } from './client-cost-workload.js';

const CHROMIUM = '/usr/bin/chromium';
const ORIGIN = 'http://localhost:5999';

interface Row extends ClientCost {
  version: string;
}

function parseArgs(argv: string[]) {
  const opts = { json: false, chromium: false, seconds: 8, backend: null as X25519Backend | null, compare: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') opts.json = true;
    else if (arg === '--chromium') opts.chromium = true;
    else if (arg === '--seconds') opts.seconds = Number(argv[++i]);
    else if (arg === '--backend') opts.backend = argv[++i] as X25519Backend;
    else if (arg === '--compare') opts.compare = Number(argv[++i]);
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!(opts.seconds > 0 && opts.seconds <= 60)) throw new Error('--seconds must be in (0, 60]');
  if (!(Number.isInteger(opts.compare) && opts.compare >= 0 && opts.compare <= 10)) {
    throw new Error('--compare must be a whole number of rounds, at most 10');
  }
  if (opts.compare && opts.json) throw new Error('--compare prints a table, not --json');
  if (opts.backend && !['node', 'webcrypto', 'libsodium'].includes(opts.backend)) {
    throw new Error('--backend must be node, webcrypto or libsodium');
  }
  return opts;
}

function pick(r: ClientCost): ClientCost {
  return {
    send_us: r.send_us,
    receive_us: r.receive_us,
    group100_send_us: r.group100_send_us,
    group_receive_us: r.group_receive_us,
    conversation_us: r.conversation_us,
    pq_conversation_us: r.pq_conversation_us,
    x3dh_setup_us: r.x3dh_setup_us,
    pqxdh_setup_us: r.pqxdh_setup_us,
  };
}

type Measured = ClientCost & { backend: X25519Backend };

/** Runs the workload once per entry of `runs` (a forced backend, or null) in one Chromium page. */
async function inChromium(
  seconds: number,
  runs: (X25519Backend | null)[],
): Promise<{ version: string; results: Measured[] }> {
  const { chromium } = await import('playwright-core');
  const bundled = await build({
    entryPoints: [fileURLToPath(new URL('./client-cost-workload.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: 'clientCost',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    logLevel: 'error',
  });
  const script = bundled.outputFiles[0]!.text;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage();
    // Served from http://localhost (a secure context: WebCrypto) without a server: the route answers every request.
    await page.route(`${ORIGIN}/**`, (route) =>
      route.request().url().endsWith('/bench.js')
        ? route.fulfill({ contentType: 'text/javascript', body: script })
        : route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' }),
    );
    await page.goto(`${ORIGIN}/`);
    // A forced backend goes through the test hook, which only works where process.env says "test".
    if (runs.some((b) => b !== null)) {
      await page.evaluate(() => Object.assign(globalThis, { process: { env: { NODE_ENV: 'test' } } }));
    }
    await page.addScriptTag({ url: `${ORIGIN}/bench.js` });
    const results: Measured[] = [];
    for (const backend of runs) {
      const run = page.evaluate(
        ([s, b]) =>
          (
            globalThis as unknown as {
              clientCost: { measureClientCost: typeof measureClientCost };
            }
          ).clientCost.measureClientCost(s, b),
        [seconds, backend] as const,
      );
      // Bounded: a wedged page must not hold up the root benchmark that runs this script.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out in the page')), (seconds * 3 + 30) * 1000);
      });
      results.push(await Promise.race([run, timeout]).finally(() => clearTimeout(timer)));
      console.error(`chromium ${backend ?? 'default'}: ${JSON.stringify(results.at(-1))}`);
    }
    return { version: browser.version(), results };
  } finally {
    await browser.close();
  }
}

const ROWS: [string, keyof ClientCost][] = [
  ['1:1 send: pad + ratchet encrypt + seal (200 B)', 'send_us'],
  ['1:1 receive: open + ratchet decrypt + unpad', 'receive_us'],
  ['group send, 100 members: encrypt + sign once', 'group100_send_us'],
  ['group receive, per member: verify + decrypt', 'group_receive_us'],
  ['conversation, classic session: per message, both ends (a DH step each)', 'conversation_us'],
  ['conversation, post-quantum session with ML-KEM rekeying: the same', 'pq_conversation_us'],
  ['session setup, X3DH: initiate + first message + accept', 'x3dh_setup_us'],
  ['session setup, PQXDH: the same with ML-KEM-768', 'pqxdh_setup_us'],
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Alternates the libsodium fallback and the platform backend for `rounds` rounds; medians per backend. */
async function compare(opts: ReturnType<typeof parseArgs>): Promise<void> {
  const runs: X25519Backend[] = [];
  for (let r = 0; r < opts.compare; r++) runs.push('libsodium', 'node');
  const nodeResults: Measured[] = [];
  for (const b of runs) {
    nodeResults.push(await measureClientCost(opts.seconds, b));
    console.error(`node ${b}: ${JSON.stringify(nodeResults.at(-1))}`);
  }
  const columns: { title: string; results: Measured[] }[] = [
    { title: `Node ${process.version}`, results: nodeResults },
  ];
  if (opts.chromium && existsSync(CHROMIUM)) {
    const c = await inChromium(
      opts.seconds,
      runs.map((b) => (b === 'node' ? 'webcrypto' : b)),
    );
    columns.push({ title: `Chromium ${c.version}`, results: c.results });
  }
  const header = columns.map((c) => `${c.title}: libsodium | platform | ratio`).join(' | ');
  console.log(`| µs per message (median of ${opts.compare} rounds) | ${header} |`);
  console.log(`| --- |${' ---: | ---: | ---: |'.repeat(columns.length)}`);
  for (const [label, key] of ROWS) {
    const cells = columns.map((c) => {
      const before = median(c.results.filter((r) => r.backend === 'libsodium').map((r) => r[key]));
      const after = median(c.results.filter((r) => r.backend !== 'libsodium').map((r) => r[key]));
      return `${before.toFixed(0)} | ${after.toFixed(0)} | ${(after / before).toFixed(2)}`;
    });
    console.log(`| ${label} | ${cells.join(' | ')} |`);
  }
  const platform = columns.map((c) => `${c.title}: ${c.results.find((r) => r.backend !== 'libsodium')?.backend}`);
  console.log(`\nplatform X25519 = ${platform.join(', ')}`);
}

const opts = parseArgs(process.argv.slice(2));
if (opts.backend || opts.compare) process.env['NODE_ENV'] = 'test';
if (opts.compare) {
  await compare(opts);
  process.exit(0);
}

const nodeResult = await measureClientCost(opts.seconds, opts.backend);
const node: Row = { ...pick(nodeResult), version: process.version };

let chromiumRow: (Row & { backend: string }) | null = null;
let chromiumSkipped: string | null = null;
if (!opts.chromium) chromiumSkipped = 'not requested (pass --chromium)';
else if (!existsSync(CHROMIUM)) chromiumSkipped = `${CHROMIUM} not found (apt-get install chromium)`;
else {
  try {
    const c = await inChromium(opts.seconds, [opts.backend]);
    const result = c.results[0]!;
    chromiumRow = { ...pick(result), version: c.version, backend: result.backend };
  } catch (err) {
    chromiumSkipped = `Chromium run failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

if (opts.json) {
  const chromiumJson = chromiumRow ? { ...pick(chromiumRow), version: chromiumRow.version } : null;
  console.log(JSON.stringify({ node, chromium: chromiumJson, chromiumSkipped }));
} else {
  const head = `| µs per message | Node ${node.version} (X25519: ${nodeResult.backend}) |`;
  const chromiumHead = chromiumRow ? ` Chromium ${chromiumRow.version} (X25519: ${chromiumRow.backend}) |` : '';
  console.log(head + chromiumHead);
  console.log(`| --- | ---: |${chromiumRow ? ' ---: |' : ''}`);
  for (const [label, key] of ROWS) {
    console.log(`| ${label} | ${node[key]} |${chromiumRow ? ` ${chromiumRow[key]} |` : ''}`);
  }
  if (chromiumSkipped) console.log(`\nChromium: ${chromiumSkipped}`);
}
