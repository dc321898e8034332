// Key transparency bench (issue #16): fills a SQLite log with N entries (default 1,000,000; KT_BENCH_N), then
// measures what a running relay pays at that size — an append (the full record path: read the account, read the
// siblings, write leaf and nodes in one transaction), a signed checkpoint, inclusion and consistency proofs — and
// what a client pays to verify them (the crypto library's verifier, Node). Prints a Markdown table; the committed
// figures are in relay/bench/KT-RESULTS.md. Run: npx tsx --conditions=source relay/bench/kt.ts
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import { transparencyKey } from '../src/secrets.js';
import { appendNodes, appendSiblings, encodeKtEntry, leafHash } from '../src/service/kt-tree.js';
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

await main();
