// Benchmark (not a test): what one offline password guess costs against a stolen relay database that holds key
// backups — one Argon2id at the client's parameters, the crypto_kdf split, and one AEAD open of the backup's key box
// (the cheapest check: a wrong guess fails there). `npx tsx --conditions=source crypto/bench/offline-guess.ts [N]`.

import { availableParallelism, loadavg } from 'node:os';
import {
  CryptoError,
  derivePasswordKeys,
  generateBackupKey,
  generateIdentity,
  generateSalt,
  KDF_PARAMS,
  ready,
  sealAccountBackup,
  unwrapBackupKey,
  wrapBackupKey,
} from '../src/index.js';

await ready();
const runs = Number(process.argv[2] ?? 7);
const salt = generateSalt();
const userId = 'AAAAAAAAAAAAAAAAAAAAAA';
const right = derivePasswordKeys('the right password', { salt, ...KDF_PARAMS });
const backupKey = generateBackupKey();
const keyBox = wrapBackupKey(right.wrapKey, userId, backupKey);
const stolen = sealAccountBackup(backupKey, keyBox, {
  userId,
  revision: 1,
  identity: generateIdentity(),
  contacts: [],
});

const argon: number[] = [];
const open: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const guess = derivePasswordKeys(`guess ${i}`, { salt, ...KDF_PARAMS });
  const t1 = performance.now();
  try {
    unwrapBackupKey(guess.wrapKey, userId, stolen);
    throw new Error('a wrong guess opened the key box');
  } catch (e) {
    if (!(e instanceof CryptoError && e.code === 'decrypt_failed')) throw e;
  }
  const t2 = performance.now();
  argon.push(t1 - t0);
  open.push(t2 - t1);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => x.toFixed(x < 1 ? 3 : 0);
console.log(
  `Node ${process.version}, ${availableParallelism()} cores, load ${loadavg()[0]!.toFixed(1)}, ${runs} guesses, ` +
    `Argon2id opslimit ${KDF_PARAMS.opslimit}, memlimit ${KDF_PARAMS.memlimit / 1024 / 1024} MiB (libsodium wasm)`,
);
console.log(`Argon2id + crypto_kdf: median ${ms(median(argon))} ms (min ${ms(Math.min(...argon))} ms)`);
console.log(`key-box AEAD open:     median ${ms(median(open))} ms`);
console.log(`one guess:             median ${ms(median(argon) + median(open))} ms`);
