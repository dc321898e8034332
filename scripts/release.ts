// Release manifests for the web app (issue #16, "a verifiable web client"): the SHA-256 of every file of a build,
// signed with an Ed25519 release key that is kept away from the relay, served by the relay at
// /.well-known/weconnect/manifest.json. Anyone holding the release public key can check that what a relay serves is
// what was signed (`npm run release:verify`). The build is reproducible (web/test/build/reproducible.test.ts), so a
// signer can rebuild a reviewed commit and sign that.
//
//   npm run release:sign -- --generate <key.pem>          makes a release key (private, 0600); prints the public key
//   npm run release:sign -- --key <key.pem> [--dist <dir>] signs web/dist (or <dir>) in place
//   npm run release:verify -- <relay url> <public key>     fetches the manifest and every file; exit 1 on a mismatch

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

export const MANIFEST_PATH = '.well-known/weconnect/manifest.json';
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** What is signed: the build's files (path → SHA-256 hex), sorted, and the signing time. */
export interface Manifest {
  version: 1;
  files: Record<string, string>;
  signedAt: string;
}

/** The served document: the manifest as the exact signed bytes (base64url), and the signature. */
export interface SignedManifest {
  manifest: string;
  signature: string;
  /** SHA-256 of the release public key (hex), so a client can tell which pinned key to use. */
  keyId: string;
}

/** A new release key pair: the private key as PKCS#8 PEM, the public key as 32 raw bytes in base64url. */
export function generateReleaseKey(): { privateKeyPem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length);
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey: Buffer.from(raw).toString('base64url'),
  };
}

function publicKeyObject(publicKey: string) {
  const raw = Buffer.from(publicKey, 'base64url');
  if (raw.length !== 32) throw new Error('the release public key must be 32 bytes as base64url');
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Path → SHA-256 of every file under `dir` (the manifest itself left out), with `/` separators, sorted. */
export function hashTree(dir: string): Record<string, string> {
  const out: [string, string][] = [];
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      const name = relative(dir, path).split(sep).join('/');
      if (entry.isDirectory()) walk(path);
      else if (name !== MANIFEST_PATH) out.push([name, sha256(readFileSync(path))]);
    }
  };
  walk(dir);
  return Object.fromEntries(out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Signs the build in `dir` and writes the manifest where the relay serves it; returns what was written. */
export function signDist(dir: string, privateKeyPem: string, now = new Date()): SignedManifest {
  const key = createPrivateKey(privateKeyPem);
  const manifest: Manifest = { version: 1, files: hashTree(dir), signedAt: now.toISOString() };
  if (!manifest.files['index.html']) throw new Error(`${dir} holds no index.html: build the web app first`);
  const bytes = Buffer.from(JSON.stringify(manifest), 'utf8');
  const publicRaw = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length);
  const signed: SignedManifest = {
    manifest: bytes.toString('base64url'),
    signature: sign(null, bytes, key).toString('base64url'),
    keyId: sha256(publicRaw),
  };
  mkdirSync(dirname(join(dir, MANIFEST_PATH)), { recursive: true });
  writeFileSync(join(dir, MANIFEST_PATH), `${JSON.stringify(signed, null, 2)}\n`);
  return signed;
}

/** Checks a served manifest against the pinned release key; returns the manifest, or throws saying why. */
export function openManifest(doc: unknown, publicKey: string): Manifest {
  const d = doc as Partial<SignedManifest> | null;
  if (!d || typeof d.manifest !== 'string' || typeof d.signature !== 'string') {
    throw new Error('the manifest document is malformed');
  }
  const bytes = Buffer.from(d.manifest, 'base64url');
  if (!verify(null, bytes, publicKeyObject(publicKey), Buffer.from(d.signature, 'base64url'))) {
    throw new Error('the manifest signature does not verify with the release key');
  }
  const m = JSON.parse(bytes.toString('utf8')) as Manifest;
  if (m.version !== 1 || typeof m.files !== 'object' || m.files === null) throw new Error('unknown manifest version');
  return m;
}

/**
 * Verifies what a relay serves: the signed manifest, then every file it lists (their SHA-256), and that the page
 * loads no script or style the manifest does not list. Resolves to the problems found (empty: all verified).
 */
export async function verifyRelease(relayUrl: string, publicKey: string): Promise<string[]> {
  const res = await fetch(new URL(`/${MANIFEST_PATH}`, relayUrl));
  if (!res.ok) return [`the relay serves no manifest (${res.status})`];
  let manifest: Manifest;
  try {
    manifest = openManifest(await res.json(), publicKey);
  } catch (e) {
    return [(e as Error).message];
  }
  const problems: string[] = [];
  for (const [path, expected] of Object.entries(manifest.files)) {
    const file = await fetch(new URL(`/${path}`, relayUrl));
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (!file.ok) problems.push(`${path}: the relay answers ${file.status}`);
    else if (sha256(bytes) !== expected) problems.push(`${path}: served bytes differ from the signed build`);
  }
  const page = await (await fetch(new URL('/', relayUrl))).text();
  for (const match of page.matchAll(/(?:src|href)="\/([^"]+)"/g)) {
    const path = match[1]!;
    if (!(path in manifest.files)) problems.push(`${path}: loaded by the page but not in the signed build`);
  }
  return problems;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (command === 'sign') {
    const generate = opt('--generate');
    if (generate) {
      const key = generateReleaseKey();
      writeFileSync(generate, key.privateKeyPem, { mode: 0o600, flag: 'wx' });
      console.log(`release key written to ${generate} (keep it away from the relay)\npublic key: ${key.publicKey}`);
      return 0;
    }
    const keyFile = opt('--key') ?? process.env['RELEASE_KEY_FILE'];
    if (!keyFile) throw new Error('pass --key <key.pem> (or RELEASE_KEY_FILE), or --generate <key.pem>');
    const dist = opt('--dist') ?? join(process.cwd(), 'web', 'dist');
    const signed = signDist(dist, readFileSync(keyFile, 'utf8'));
    console.log(`signed ${dist} (key ${signed.keyId.slice(0, 16)}…): ${MANIFEST_PATH}`);
    return 0;
  }
  if (command === 'verify') {
    const [url, publicKey] = args;
    if (!url || !publicKey) throw new Error('usage: npm run release:verify -- <relay url> <release public key>');
    const problems = await verifyRelease(url, publicKey);
    for (const p of problems) console.error(`MISMATCH ${p}`);
    if (problems.length === 0) console.log(`${url} serves exactly the signed build`);
    return problems.length === 0 ? 0 : 1;
  }
  throw new Error('usage: release.ts sign|verify …');
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error((err as Error).message);
      process.exit(2);
    },
  );
}
