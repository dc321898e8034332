// Key transparency bench (issue #16): fills a SQLite log with N entries (default 1,000,000; KT_BENCH_N), then
// measures what a running relay pays at that size — an append (the full record path: read the account, read the
// siblings, write leaf and nodes in one transaction), a signed checkpoint, inclusion and consistency proofs — and
// what a client pays to verify them (the crypto library's verifier, Node). Prints a Markdown table; the committed
// figures are in relay/bench/KT-RESULTS.md. Run: npx tsx --conditions=source relay/bench/kt.ts
// With --chromium it measures instead the client's verify costs in real Chromium (playwright-core, /usr/bin/chromium):
// the crypto library's kt verifiers bundled for the browser, on proofs from an in-memory tree of the same size.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import { transparencyKey } from '../src/secrets.js';
import {
  appendNodes,
  appendSiblings,
  consistencyProof,
  encodeKtEntry,
  inclusionProof,
  leafHash,
  nodeHash,
  rootOf,
} from '../src/service/kt-tree.js';
import { KeyTransparency } from '../src/service/transparency.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const N = Number(process.env.KT_BENCH_N ?? 1_000_000);
const APPENDS = 300;
const PROOFS = 300;
const id = (): string => randomBytes(16).toString('base64url');

function stats(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return `median ${at(0.5).toFixed(3)} ms, p99 ${at(0.99).toFixed(3)} ms`;
}

async function main(): Promise<void> {
  await ready();
  const dir = mkdtempSync(join(tmpdir(), 'kt-bench-'));
  const store = new SqliteStore({ file: join(dir, 'kt.db') });
  try {
    // Fill: N entries of N/2 accounts (two each), with their nodes, straight into the tables in big transactions.
    const t0 = performance.now();
    const levels: Buffer[][] = [];
    const insertLeaf = store.db.prepare('INSERT INTO kt_leaves (idx, user_id, seq, entry) VALUES (?, ?, ?, ?)');
    const insertNode = store.db.prepare('INSERT INTO kt_nodes (level, idx, hash) VALUES (?, ?, ?)');
    const users: string[] = [];
    const fill = store.db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i += 1) {
        const user = i % 2 === 0 ? id() : users[users.length - 1]!;
        if (i % 2 === 0) users.push(user);
        const entry = encodeKtEntry({
          kind: 'account',
          seq: i % 2,
          userId: user,
          username: `u${Math.floor(i / 2)}`,
          identityKey: randomBytes(32),
          deviceIds: i % 2 === 0 ? [id()] : [id(), id()],
        });
        insertLeaf.run(i, user, i % 2, entry);
        const siblings = appendSiblings(i).map((k) => levels[k.level]![k.index]!);
        for (const n of appendNodes(i, leafHash(entry), siblings)) {
          (levels[n.level] ??= [])[n.index] = Buffer.from(n.hash);
          insertNode.run(n.level, n.index, n.hash);
        }
      }
    });
    for (let i = 0; i < N; i += 50_000) fill(i, Math.min(N, i + 50_000));
    const fillSeconds = (performance.now() - t0) / 1000;
    levels.length = 0;

    const log = new KeyTransparency(store, transparencyKey(randomBytes(32).toString('base64url')));
    const key = kt.parseVerifierKey(log.verifierKey);
    const first = await log.checkpoint();

    // Appends at N: accounts that exist (created without the log), each recorded once.
    const appendMs: number[] = [];
    for (let i = 0; i < APPENDS; i += 1) {
      const userId = id();
      await store.createAccount({
        userId,
        username: `bench${i}`,
        salt: randomBytes(16),
        authHash: 'x',
        identityKey: randomBytes(32),
        deviceId: id(),
        signedPrekey: { keyId: 1, publicKey: randomBytes(32), signature: randomBytes(64) },
        oneTimePrekeys: [],
        session: { familyId: id(), refresh: { tokenHash: randomBytes(32), expiresAt: Date.now() + 1e9 } },
        now: Date.now(),
      });
      const t = performance.now();
      await log.record(userId);
      appendMs.push(performance.now() - t);
    }
    const cpMs: number[] = [];
    const c0 = performance.now();
    let cp = await log.checkpoint();
    const cpFirstMs = performance.now() - c0;
    for (let i = 0; i < 50; i += 1) {
      const t = performance.now();
      cp = await log.checkpoint();
      cpMs.push(performance.now() - t);
    }
    const opened = kt.openCheckpoint(cp.note, key);

    const inclusionMs: number[] = [];
    const verifyInclusionMs: number[] = [];
    let inclusionHashes = 0;
    for (let i = 0; i < PROOFS; i += 1) {
      const index = Math.floor(Math.random() * cp.size);
      const t = performance.now();
      const proof = await log.inclusion(index, cp.size);
      inclusionMs.push(performance.now() - t);
      inclusionHashes = Math.max(inclusionHashes, proof.length);
      const leaf = await store.ktLeaf(index);
      const v = performance.now();
      const ok = kt.verifyInclusion(index, cp.size, kt.leafHash(leaf!.entry), proof, opened.root);
      verifyInclusionMs.push(performance.now() - v);
      if (!ok) throw new Error('an inclusion proof did not verify');
    }
    const consistencyMs: number[] = [];
    const verifyConsistencyMs: number[] = [];
    let consistencyHashes = 0;
    const firstOpened = kt.openCheckpoint(first.note, key);
    for (let i = 0; i < 50; i += 1) {
      const t = performance.now();
      const proof = await log.consistency(first.size, cp.size);
      consistencyMs.push(performance.now() - t);
      consistencyHashes = proof.length;
      const v = performance.now();
      const ok = kt.verifyConsistency(first.size, cp.size, firstOpened.root, opened.root, proof);
      verifyConsistencyMs.push(performance.now() - v);
      if (!ok) throw new Error('a consistency proof did not verify');
    }
    const noteMs: number[] = [];
    for (let i = 0; i < 200; i += 1) {
      const t = performance.now();
      kt.openCheckpoint(cp.note, key);
      noteMs.push(performance.now() - t);
    }
    const pageCount = store.db.pragma('page_count', { simple: true }) as number;
    const pageSize = store.db.pragma('page_size', { simple: true }) as number;

    console.log(`| what (log of ${cp.size.toLocaleString('en')} entries, SQLite, Node ${process.version}) | figure |`);
    console.log('| --- | --- |');
    console.log(`| fill (bulk insert of leaves and nodes, not the relay's path) | ${fillSeconds.toFixed(1)} s |`);
    console.log(`| database size | ${((pageCount * pageSize) / 2 ** 20).toFixed(0)} MiB |`);
    console.log(`| append (record: read account, siblings, one transaction), ${APPENDS}× | ${stats(appendMs)} |`);
    console.log(`| signed checkpoint at a new size (root from stored nodes + Ed25519) | ${cpFirstMs.toFixed(3)} ms |`);
    console.log(`| signed checkpoint, same size (cached) | ${stats(cpMs)} |`);
    console.log(`| inclusion proof, relay side, ${PROOFS}× | ${stats(inclusionMs)} |`);
    console.log(
      `| inclusion proof size | ≤ ${inclusionHashes} hashes = ${inclusionHashes * 32} bytes (${Math.ceil((inclusionHashes * 32 * 4) / 3)} base64url chars) |`,
    );
    console.log(`| inclusion verify, client (libsodium SHA-256, Node) | ${stats(verifyInclusionMs)} |`);
    console.log(`| consistency proof ${first.size}→${cp.size}, relay side | ${stats(consistencyMs)} |`);
    console.log(`| consistency proof size | ${consistencyHashes} hashes = ${consistencyHashes * 32} bytes |`);
    console.log(`| consistency verify, client | ${stats(verifyConsistencyMs)} |`);
    console.log(`| checkpoint note verify (Ed25519, client) | ${stats(noteMs)} |`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface BenchData {
  verifierKey: string;
  note: string;
  inclusions: { index: number; entry: string; proof: string[] }[];
  consistency: string[];
  size1: number;
  size2: number;
  root1: string;
  root2: string;
}

/** The verify timings, run in Chromium (page.evaluate) and in Node: self-contained, it reads globalThis.ktBench. */
async function verifyBench(d: BenchData) {
  const { kt, ready: init } = (globalThis as unknown as { ktBench: { kt: KtModule; ready: () => Promise<void> } })
    .ktBench;
  await init();
  const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const key = kt.parseVerifierKey(d.verifierKey);
  const incl = d.inclusions.map((x) => ({ index: x.index, entry: b64(x.entry), proof: x.proof.map(b64) }));
  const cons = d.consistency.map(b64);
  const r1 = b64(d.root1);
  const r2 = b64(d.root2);
  /** Median over `batches` of the mean time per call of `fn` over `per` calls, in ms. */
  const time = (fn: (i: number) => void, batches = 31, per = 40) => {
    for (let i = 0; i < per; i += 1) fn(i); // warm-up
    const out: number[] = [];
    for (let b = 0; b < batches; b += 1) {
      const t = performance.now();
      for (let i = 0; i < per; i += 1) fn(b * per + i);
      out.push((performance.now() - t) / per);
    }
    out.sort((a, b) => a - b);
    return { median: out[Math.floor(out.length / 2)]!, max: out[out.length - 1]! };
  };
  const must = (ok: boolean, what: string) => {
    if (!ok) throw new Error(`${what} did not verify`);
  };
  return {
    hashes: incl[0]!.proof.length,
    consistencyHashes: cons.length,
    inclusion: time((i) => {
      const x = incl[i % incl.length]!;
      must(kt.verifyInclusion(x.index, d.size2, kt.leafHash(x.entry), x.proof, r2), 'inclusion');
    }),
    consistency: time(() => must(kt.verifyConsistency(d.size1, d.size2, r1, r2, cons), 'consistency')),
    note: time(() => void kt.openCheckpoint(d.note, key)),
    // What verifyBundle computes once its two answers are in (no network): the checkpoint's signature, the
    // account entry's inclusion (20 hashes) and decoding, and the consistency with the checkpoint kept.
    bundle: time((i) => {
      const x = incl[i % incl.length]!;
      kt.openCheckpoint(d.note, key);
      must(kt.verifyInclusion(x.index, d.size2, kt.leafHash(x.entry), x.proof, r2), 'inclusion');
      kt.decodeEntry(x.entry);
      must(kt.verifyConsistency(d.size1, d.size2, r1, r2, cons), 'consistency');
    }),
  };
}

/** The crypto library's kt module, as the bench page exposes it. */
type KtModule = typeof kt;

/**
 * The client's verify costs in Chromium. Chromium coarsens performance.now() (100 µs without cross-origin
 * isolation), so each figure is timed over a batch of calls: the median, over batches, of the time per call.
 */
async function chromiumBench(): Promise<void> {
  const { build } = await import('esbuild');
  const { chromium } = await import('playwright-core');
  await ready();
  // A tree of N leaves in memory, level by level (perfect subtrees only, as the relay stores them).
  const size1 = N;
  const size2 = N + APPENDS;
  const entries: Buffer[] = [];
  const levels: Buffer[][] = [[]];
  // Real entries where proofs are checked; elsewhere any distinct leaf bytes (their hashes are all a verifier sees).
  const filler = Buffer.alloc(8);
  for (let i = 0; i < size2; i += 1) {
    if (i % 4096 === 0) {
      const entry = encodeKtEntry({
        kind: 'account',
        seq: 0,
        userId: id(),
        username: `u${i}`,
        identityKey: randomBytes(32),
        deviceIds: [id()],
      });
      entries[i / 4096] = entry;
      levels[0]!.push(leafHash(entry));
    } else {
      filler.writeDoubleBE(i);
      levels[0]!.push(leafHash(filler));
    }
  }
  for (let level = 0; levels[level]!.length > 1; level += 1) {
    const below = levels[level]!;
    const above: Buffer[] = [];
    for (let j = 0; j + 1 < below.length; j += 2) above.push(nodeHash(below[j]!, below[j + 1]!));
    levels.push(above);
  }
  const node = (level: number, index: number) => levels[level]![index]!;
  const root1 = rootOf(node, size1);
  const root2 = rootOf(node, size2);
  const inclusions = entries.slice(0, 200).map((entry, k) => {
    const index = k * 4096;
    return {
      index,
      entry: entry.toString('base64'),
      proof: inclusionProof(node, index, size2).map((h) => Buffer.from(h).toString('base64')),
    };
  });
  const consistency = consistencyProof(node, size1, size2).map((h) => Buffer.from(h).toString('base64'));
  levels.length = 0;

  // A real signed checkpoint note (its cost does not depend on the log's size): a small relay log.
  const dir = mkdtempSync(join(tmpdir(), 'kt-bench-'));
  const store = new SqliteStore({ file: join(dir, 'kt.db') });
  let note: string;
  let verifierKey: string;
  try {
    const log = new KeyTransparency(store, transparencyKey(randomBytes(32).toString('base64url')));
    note = (await log.checkpoint()).note;
    verifierKey = log.verifierKey;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const bundle = await build({
    stdin: {
      contents: `import * as kt from '../../crypto/src/kt/index.ts'; import { ready } from '../../crypto/src/sodium.ts';
        globalThis.ktBench = { kt, ready };`,
      resolveDir: join(import.meta.dirname, '.'),
      loader: 'ts',
    },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    conditions: ['source'],
    write: false,
    logLevel: 'error',
  });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage();
    await page.setContent('<!doctype html><title>kt bench</title>');
    // tsx names the functions it compiles with a __name helper that the page does not have.
    await page.addScriptTag({ content: 'self.__name = (f) => f;' });
    await page.addScriptTag({ content: bundle.outputFiles[0]!.text });
    const version = browser.version();
    const data: BenchData = {
      verifierKey,
      note,
      inclusions,
      consistency,
      size1,
      size2,
      root1: Buffer.from(root1).toString('base64'),
      root2: Buffer.from(root2).toString('base64'),
    };
    const result = await page.evaluate(verifyBench, data);
    (globalThis as unknown as { ktBench: unknown }).ktBench = { kt, ready };
    const inNode = await verifyBench(data);
    const ms = (x: { median: number; max: number }) =>
      `median ${x.median.toFixed(3)} ms, slowest batch ${x.max.toFixed(3)} ms`;
    const vsNode = (x: { median: number }, n: { median: number }) =>
      `${(x.median / n.median).toFixed(1)}× (Node ${n.median.toFixed(3)} ms)`;
    console.log(
      `| client verify in Chromium ${version} (log of ${size2.toLocaleString('en')} entries) | Chromium | vs Node ${process.version}, same run |`,
    );
    console.log('| --- | --- | --- |');
    console.log(
      `| inclusion verify (${result.hashes} hashes, libsodium SHA-256 in wasm) | ${ms(result.inclusion)} | ${vsNode(result.inclusion, inNode.inclusion)} |`,
    );
    console.log(
      `| consistency verify ${size1}→${size2} (${result.consistencyHashes} hashes) | ${ms(result.consistency)} | ${vsNode(result.consistency, inNode.consistency)} |`,
    );
    console.log(`| checkpoint note verify (Ed25519) | ${ms(result.note)} | ${vsNode(result.note, inNode.note)} |`);
    console.log(
      `| verifyBundle's checks without the network (note + inclusion + decode + consistency) | ${ms(result.bundle)} | ${vsNode(result.bundle, inNode.bundle)} |`,
    );
  } finally {
    await browser.close();
  }
}

if (process.argv.includes('--chromium')) await chromiumBench();
else await main();
