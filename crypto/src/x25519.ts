// X25519 for the sealed box from the platform when it is faster than libsodium's WebAssembly: Node's
// node:crypto, else WebCrypto (browsers), else libsodium. Chosen once, in ready(), by a known-answer self-test.
//
// Timed during development (one-off loops; bench/RESULTS.md has the per-message figures): in Chromium, WebCrypto
// X25519 costs ~50–70 µs per operation against ~80–200 µs in wasm; in Node, WebCrypto is slower than wasm (every
// call is an async job on the thread pool), so Node uses node:crypto's KeyObject API (~45 µs per synchronous
// derive), reached through process.getBuiltinModule so bundlers never see an import of it. Ephemeral key pairs are
// made ahead, off the calling thread (see takeEphemeral).

import { constantTimeEqual, isAllZero, toBase64Url, wipe } from './bytes.js';
import { CryptoError } from './errors.js';
import { assertTestHooksEnabled } from './random.js';
import { sodium } from './sodium.js';

export type X25519Backend = 'node' | 'webcrypto' | 'libsodium';

/** DER prefixes of an X25519 PKCS#8 private key and SPKI public key (RFC 8410): prefix ‖ 32 key bytes. */
const PKCS8_PREFIX = Uint8Array.of(
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
);
/** How many peer public keys stay imported (public data; a chat touches few peers at once). */
const PUBLIC_CACHE_SIZE = 256;

interface Ops<K> {
  readonly name: X25519Backend;
  /** A fresh key pair: its public key (maybe still being exported) and a handle on its private key. */
  generate(): Promise<{ publicKey: Uint8Array | Promise<Uint8Array>; key: K }>;
  /** The key pair of a given secret (only used when a test replaced the random source: golden vectors). */
  fromSecret(secret: Uint8Array): Promise<{ publicKey: Uint8Array; key: K }>;
  importPrivate(secret: Uint8Array): Promise<K>;
  importPublic(publicKey: Uint8Array): Promise<unknown>;
  derive(privateKey: K, publicKey: unknown): Promise<Uint8Array>;
}

function pkcs8(secret: Uint8Array): Uint8Array<ArrayBuffer> {
  const der = new Uint8Array(PKCS8_PREFIX.length + 32);
  der.set(PKCS8_PREFIX);
  der.set(secret, PKCS8_PREFIX.length);
  return der;
}

function fromBase64UrlLoose(text: string | undefined): Uint8Array {
  if (typeof text !== 'string') throw new CryptoError('invalid_key', 'platform X25519 returned no public key');
  const b = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
  return out;
}

// ── node:crypto (synchronous, native) ──

interface NodeKeyObject {
  export(options: { format: 'jwk' }): { x?: string };
}
interface NodeCrypto {
  generateKeyPair(
    type: 'x25519',
    callback: (err: Error | null, publicKey: NodeKeyObject, privateKey: NodeKeyObject) => void,
  ): void;
  createPublicKey(key: { key: { kty: 'OKP'; crv: 'X25519'; x: string }; format: 'jwk' } | NodeKeyObject): NodeKeyObject;
  createPrivateKey(key: { key: Uint8Array; format: 'der'; type: 'pkcs8' }): NodeKeyObject;
  diffieHellman(options: { privateKey: NodeKeyObject; publicKey: NodeKeyObject }): Uint8Array;
}

function nodeCrypto(): NodeCrypto | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = typeof proc?.getBuiltinModule === 'function' ? proc.getBuiltinModule('node:crypto') : null;
  const c = mod as Partial<NodeCrypto> | null;
  return c && typeof c.generateKeyPair === 'function' && typeof c.diffieHellman === 'function'
    ? (c as NodeCrypto)
    : null;
}

function nodeOps(c: NodeCrypto): Ops<NodeKeyObject> {
  const importPrivate = (secret: Uint8Array) => {
    const der = pkcs8(secret);
    try {
      return c.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      wipe(der);
    }
  };
  return {
    name: 'node',
    // Asynchronous on purpose. With generateKeyPairSync, the key-generation job is freed by the garbage collector,
    // and its destructor takes the key's mutex; exporting the public key takes the same mutex and allocates, so a
    // collection during the export deadlocked the process (Node 20: a seal loop hung within ~30,000 seals; see
    // test/x25519-node-keygen.test.ts). The asynchronous job is freed by its own callback's return, never by a GC.
    generate: () =>
      new Promise((resolve, reject) => {
        c.generateKeyPair('x25519', (err, publicKey, privateKey) => {
          if (err) reject(err);
          else resolve({ publicKey: fromBase64UrlLoose(publicKey.export({ format: 'jwk' }).x), key: privateKey });
        });
      }),
    fromSecret: (secret) => {
      const key = importPrivate(secret);
      const publicKey = fromBase64UrlLoose(c.createPublicKey(key).export({ format: 'jwk' }).x);
      return Promise.resolve({ publicKey, key });
    },
    importPrivate: (secret) => Promise.resolve(importPrivate(secret)),
    importPublic: (publicKey) =>
      Promise.resolve(
        c.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: toBase64Url(publicKey) }, format: 'jwk' }),
      ),
    derive: (privateKey, publicKey) =>
      Promise.resolve(new Uint8Array(c.diffieHellman({ privateKey, publicKey: publicKey as NodeKeyObject }))),
  };
}

// ── WebCrypto (asynchronous, native) ──

function webCryptoOps(subtle: SubtleCrypto): Ops<CryptoKey> {
  const alg = { name: 'X25519' };
  const importPrivate = async (secret: Uint8Array, extractable: boolean) => {
    const der = pkcs8(secret);
    try {
      return await subtle.importKey('pkcs8', der, alg, extractable, ['deriveBits']);
    } finally {
      wipe(der);
    }
  };
  return {
    name: 'webcrypto',
    generate: async () => {
      const kp = (await subtle.generateKey(alg, false, ['deriveBits'])) as CryptoKeyPair;
      // Not awaited here: the export runs while the caller derives (one round trip to WebCrypto's thread less).
      const publicKey = subtle.exportKey('raw', kp.publicKey).then((raw) => new Uint8Array(raw));
      return { publicKey, key: kp.privateKey };
    },
    fromSecret: async (secret) => {
      const key = await importPrivate(secret, true);
      const jwk = await subtle.exportKey('jwk', key);
      return { publicKey: fromBase64UrlLoose(jwk.x), key };
    },
    importPrivate: (secret) => importPrivate(secret, false),
    importPublic: (publicKey) => subtle.importKey('raw', publicKey.slice(), alg, true, []),
    derive: async (privateKey, publicKey) =>
      new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: publicKey as CryptoKey }, privateKey, 256)),
  };
}

// ── libsodium (WebAssembly), the fallback ──

function libsodiumOps(): Ops<Uint8Array> {
  return {
    name: 'libsodium',
    generate: () => {
      const key = new Uint8Array(32);
      globalThis.crypto.getRandomValues(key);
      return Promise.resolve({ publicKey: sodium().crypto_scalarmult_base(key), key });
    },
    fromSecret: (secret) =>
      Promise.resolve({ publicKey: sodium().crypto_scalarmult_base(secret), key: secret.slice() }),
    importPrivate: (secret) => Promise.resolve(secret.slice()),
    importPublic: (publicKey) => Promise.resolve(publicKey.slice()),
    derive: (privateKey, publicKey) => Promise.resolve(sodium().crypto_scalarmult(privateKey, publicKey as Uint8Array)),
  };
}

// ── selection and caches ──

// RFC 7748 §6.1: Alice's private key and Bob's public key (their shared secret is checked against libsodium).
const KAT_PRIVATE = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const KAT_PUBLIC = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';

function hexBytes(h: string): Uint8Array {
  return Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the handle type differs per backend
type AnyOps = Ops<any>;

let ops: AnyOps | null = null;
let privateCache = new WeakMap<Uint8Array, { copy: Uint8Array; key: Promise<unknown> }>();
let publicCache = new Map<string, Promise<unknown>>();

/** True if the backend agrees with libsodium on RFC 7748's keys and on a fresh key pair of its own. */
async function selfTest(candidate: AnyOps): Promise<boolean> {
  try {
    const priv = await candidate.importPrivate(hexBytes(KAT_PRIVATE));
    const shared = await candidate.derive(priv, await candidate.importPublic(hexBytes(KAT_PUBLIC)));
    if (!constantTimeEqual(shared, sodium().crypto_scalarmult(hexBytes(KAT_PRIVATE), hexBytes(KAT_PUBLIC)))) {
      return false;
    }
    const fresh = await candidate.generate();
    const peer = sodium().crypto_scalarmult_base(hexBytes(KAT_PRIVATE));
    const other = await candidate.derive(fresh.key, await candidate.importPublic(peer));
    return constantTimeEqual(other, sodium().crypto_scalarmult(hexBytes(KAT_PRIVATE), await fresh.publicKey));
  } catch {
    return false;
  }
}

function candidates(): (() => AnyOps | null)[] {
  return [
    () => {
      const c = nodeCrypto();
      return c ? nodeOps(c) : null;
    },
    () => {
      const subtle = globalThis.crypto?.subtle as SubtleCrypto | undefined;
      return subtle ? webCryptoOps(subtle) : null;
    },
  ];
}

/** Picks the fastest backend that passes the self-test (called by ready(), after libsodium has loaded). */
export async function selectX25519(): Promise<void> {
  if (ops) return;
  for (const make of candidates()) {
    const candidate = make();
    if (candidate && (await selfTest(candidate))) {
      ops = candidate;
      return;
    }
  }
  ops = libsodiumOps();
}

function current(): AnyOps {
  if (!ops) throw new CryptoError('not_ready', 'call and await ready() before using @weconnect/crypto');
  return ops;
}

/** Which X25519 implementation seals and opens envelopes here. */
export function x25519Backend(): X25519Backend {
  return current().name;
}

/**
 * Forces a backend (`null`: select again as ready() does). Tests only: they run the sealed box on every path.
 * Throws `bad_input` if the platform lacks it.
 */
export async function dangerousTestOnlySetX25519Backend(name: X25519Backend | null): Promise<void> {
  assertTestHooksEnabled('dangerousTestOnlySetX25519Backend');
  privateCache = new WeakMap();
  publicCache = new Map();
  ephemeralPool = null;
  ops = null;
  if (name === null) return selectX25519();
  const made = name === 'libsodium' ? libsodiumOps() : (candidates()[name === 'node' ? 0 : 1]!() as AnyOps | null);
  if (!made || !(await selfTest(made))) {
    await selectX25519();
    throw new CryptoError('bad_input', `X25519 backend "${name}" is not available here`);
  }
  ops = made;
}

function checkShared(shared: Uint8Array): Uint8Array {
  if (isAllZero(shared)) {
    wipe(shared);
    throw new CryptoError('invalid_key', 'X25519 gives an all-zero output');
  }
  return shared;
}

/** The (cached) imported form of a peer public key. */
function publicHandle(o: AnyOps, publicKey: Uint8Array): Promise<unknown> {
  const id = toBase64Url(publicKey);
  let handle = publicCache.get(id);
  if (!handle) {
    handle = o.importPublic(publicKey);
    handle.catch(() => publicCache.delete(id));
    if (publicCache.size >= PUBLIC_CACHE_SIZE) publicCache.delete(publicCache.keys().next().value!);
    publicCache.set(id, handle);
  }
  return handle;
}

/** The (cached) imported form of a static private key; re-imported if the bytes changed (e.g. wiped). */
function privateHandle(o: AnyOps, privateKey: Uint8Array): Promise<unknown> {
  const hit = privateCache.get(privateKey);
  if (hit && constantTimeEqual(hit.copy, privateKey)) return hit.key;
  const entry = { copy: privateKey.slice(), key: o.importPrivate(privateKey) };
  entry.key.catch(() => privateCache.delete(privateKey));
  privateCache.set(privateKey, entry);
  return entry.key;
}

// Ephemeral key pairs made ahead. On node:crypto and WebCrypto a key pair is made on another thread (the thread
// pool, WebCrypto's thread); taking a ready one leaves a seal a single X25519 operation to wait for, instead of
// generate, then export and derive. Each pair is handed out once and never kept after that; the pool belongs to
// one backend and is dropped when the backend changes. libsodium makes pairs on the calling thread: no pool.
const EPHEMERAL_POOL_SIZE = 8;

interface EphemeralPool {
  readonly ops: AnyOps;
  readonly ready: { publicKey: Uint8Array; key: unknown }[];
  pending: number;
}

let ephemeralPool: EphemeralPool | null = null;

function topUp(p: EphemeralPool): void {
  while (p.ready.length + p.pending < EPHEMERAL_POOL_SIZE) {
    p.pending++;
    p.ops
      .generate()
      .then(async (pair) => ({ publicKey: await pair.publicKey, key: pair.key as unknown }))
      .then(
        (pair) => {
          p.pending--;
          if (ephemeralPool === p) p.ready.push(pair);
        },
        () => {
          p.pending--; // the next take makes its pair directly, and tries the pool again
        },
      );
  }
}

/** A fresh ephemeral key pair, from the pool when one is ready. */
function takeEphemeral(o: AnyOps): Promise<{ publicKey: Uint8Array | Promise<Uint8Array>; key: unknown }> {
  if (o.name === 'libsodium') return o.generate();
  if (ephemeralPool?.ops !== o) ephemeralPool = { ops: o, ready: [], pending: 0 };
  const p = ephemeralPool;
  const pair = p.ready.shift();
  topUp(p);
  return pair ? Promise.resolve(pair) : o.generate();
}

/**
 * An ephemeral key pair and its X25519 output with `peer`. `secret` (from a replaced test random source) fixes the
 * ephemeral key; otherwise the platform draws it. Throws `invalid_key` on an all-zero output.
 */
export async function ephemeralDh(
  peer: Uint8Array,
  secret: Uint8Array | null,
): Promise<{ publicKey: Uint8Array; shared: Uint8Array }> {
  const o = current();
  const peerHandle = publicHandle(o, peer);
  const pair = secret ? await o.fromSecret(secret) : await takeEphemeral(o);
  let publicKey: Uint8Array;
  let shared: Uint8Array;
  try {
    [publicKey, shared] = await Promise.all([
      pair.publicKey,
      peerHandle.then((peerKey) => o.derive(pair.key, peerKey)),
    ]);
  } catch {
    throw new CryptoError('invalid_key', 'X25519 gives an all-zero output');
  } finally {
    if (pair.key instanceof Uint8Array) wipe(pair.key);
  }
  return { publicKey, shared: checkShared(shared) };
}

/** X25519 of a static private key (imported once per key) with `peer`. Throws `invalid_key` on an all-zero output. */
export async function staticDh(privateKey: Uint8Array, peer: Uint8Array): Promise<Uint8Array> {
  const o = current();
  let shared: Uint8Array;
  try {
    shared = await o.derive(await privateHandle(o, privateKey), await o.importPublic(peer));
  } catch {
    throw new CryptoError('invalid_key', 'X25519 gives an all-zero output');
  }
  return checkShared(shared);
}
