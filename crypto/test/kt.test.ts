// Key transparency verification: RFC 9162 proofs checked against a straightforward reference Merkle tree written
// here from the RFC's recursive definitions (MTH, PATH, PROOF), plus a known vector, entries and signed notes.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { CryptoError, kt } from '../src/index.js';

const sha = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const refLeaf = (d: Uint8Array): Uint8Array => sha(Uint8Array.of(0), d);
const refNode = (l: Uint8Array, r: Uint8Array): Uint8Array => sha(Uint8Array.of(1), l, r);
const split = (n: number): number => 2 ** Math.floor(Math.log2(n - 1));

/** MTH(D[n]) of RFC 9162 2.1.1, literally. */
function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha();
  if (d.length === 1) return refLeaf(d[0]!);
  const k = split(d.length);
  return refNode(mth(d.slice(0, k)), mth(d.slice(k)));
}

/** PATH(m, D[n]) of RFC 9162 2.1.3.1. */
function path(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return [];
  const k = split(d.length);
  return m < k ? [...path(m, d.slice(0, k)), mth(d.slice(k))] : [...path(m - k, d.slice(k)), mth(d.slice(0, k))];
}

/** SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1. */
function subproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [mth(d)];
  const k = split(d.length);
  return m <= k
    ? [...subproof(m, d.slice(0, k), b), mth(d.slice(k))]
    : [...subproof(m - k, d.slice(k), false), mth(d.slice(0, k))];
}

const leaves = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => Uint8Array.of(i & 0xff, i >> 8));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const flip = (b: Uint8Array, bit: number): Uint8Array => {
  const out = b.slice();
  out[Math.floor(bit / 8) % out.length]! ^= 1 << (bit % 8);
  return out;
};

describe('Merkle tree hashes', () => {
  it('hashes leaves and nodes with the RFC 9162 domain bytes, and the empty tree as SHA-256 of nothing', () => {
    expect(hex(kt.leafHash(Uint8Array.of(1, 2)))).toBe(hex(refLeaf(Uint8Array.of(1, 2))));
    expect(hex(kt.emptyRoot())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    // Known vector (the certificate-transparency test data, RFC 6962 tree of the 8 inputs "", 00, 10, 2021, 3031,
    // 40414243, 5051525354555657, 606162636465666768696a6b6c6d6e6f): its root.
    const ct = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(
      (h) => new Uint8Array(Buffer.from(h, 'hex')),
    );
    expect(hex(mth(ct))).toBe('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328');
    expect(hex(kt.leafHash(ct[0]!))).toBe('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  });
});

describe('inclusion proofs', () => {
  it('verifies every proof of the known 8-leaf vector and a hand-checked path', () => {
    const d = leaves(8);
    for (let m = 0; m < 8; m += 1) {
      expect(kt.verifyInclusion(m, 8, kt.leafHash(d[m]!), path(m, d), mth(d))).toBe(true);
    }
    expect(path(0, d)).toHaveLength(3);
  });

  it('verifies every proof in random trees, and refuses any tampered one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.nat(),
        fc.nat(),
        // (A size alone is not tampered with: the signed checkpoint binds size and root together.)
        fc.constantFrom('hash', 'index', 'drop', 'extra', 'root', 'leaf'),
        (n, mSeed, bit, tamper) => {
          const d = leaves(n);
          const m = mSeed % n;
          const p = path(m, d);
          const root = mth(d);
          const leaf = kt.leafHash(d[m]!);
          expect(kt.verifyInclusion(m, n, leaf, p, root)).toBe(true);
          let ok: boolean;
          switch (tamper) {
            case 'hash':
              if (p.length === 0) return;
              ok = kt.verifyInclusion(
                m,
                n,
                leaf,
                p.map((h, i) => (i === bit % p.length ? flip(h, bit) : h)),
                root,
              );
              break;
            case 'index':
              if (n === 1) return;
              ok = kt.verifyInclusion((m + 1 + (bit % (n - 1))) % n, n, leaf, p, root);
              break;
            case 'drop':
              if (p.length === 0) return;
              ok = kt.verifyInclusion(m, n, leaf, p.slice(0, -1), root);
              break;
            case 'extra':
              ok = kt.verifyInclusion(m, n, leaf, [...p, root], root);
              break;
            case 'root':
              ok = kt.verifyInclusion(m, n, leaf, p, flip(root, bit));
              break;
            default:
              ok = kt.verifyInclusion(m, n, flip(leaf, bit), p, root);
          }
          expect(ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses an index at or past the size and rejects malformed hashes as misuse', () => {
    const d = leaves(4);
    expect(kt.verifyInclusion(4, 4, kt.leafHash(d[0]!), path(0, d), mth(d))).toBe(false);
    expect(() => kt.verifyInclusion(0, 4, kt.leafHash(d[0]!), [new Uint8Array(31)], mth(d))).toThrow(CryptoError);
    expect(() => kt.verifyInclusion(-1, 4, kt.leafHash(d[0]!), [], mth(d))).toThrow(CryptoError);
  });
});

describe('consistency proofs', () => {
  it('verifies consistency between random sizes, and refuses any tampered proof or root', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.nat(),
        fc.nat(),
        fc.constantFrom('hash', 'root1', 'root2', 'drop', 'extra', 'swap'),
        (n, mSeed, bit, tamper) => {
          const d = leaves(n);
          const m = 1 + (mSeed % n);
          const p = subproof(m, d, true);
          const r1 = mth(d.slice(0, m));
          const r2 = mth(d);
          expect(kt.verifyConsistency(m, n, r1, r2, p)).toBe(true);
          let ok: boolean;
          switch (tamper) {
            case 'hash':
              if (p.length === 0) return;
              ok = kt.verifyConsistency(
                m,
                n,
                r1,
                r2,
                p.map((h, i) => (i === bit % p.length ? flip(h, bit) : h)),
              );
              break;
            case 'root1':
              ok = kt.verifyConsistency(m, n, flip(r1, bit), r2, p);
              break;
            case 'root2':
              ok = kt.verifyConsistency(m, n, r1, flip(r2, bit), p);
              break;
            case 'drop':
              if (p.length === 0) return;
              ok = kt.verifyConsistency(m, n, r1, r2, p.slice(1));
              break;
            case 'extra':
              ok = kt.verifyConsistency(m, n, r1, r2, [...p, r1]);
              break;
            default:
              if (m === n) return;
              ok = kt.verifyConsistency(n, m, r2, r1, p);
          }
          expect(ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('detects a rewritten history: a tree that changed an old leaf is not consistent with its past root', () => {
    const d = leaves(20);
    const rewritten = d.map((l, i) => (i === 3 ? Uint8Array.of(99) : l));
    expect(kt.verifyConsistency(10, 20, mth(d.slice(0, 10)), mth(rewritten), subproof(10, rewritten, true))).toBe(
      false,
    );
    expect(kt.verifyConsistency(0, 20, kt.emptyRoot(), mth(d), [])).toBe(true);
    expect(kt.verifyConsistency(20, 10, mth(d), mth(d.slice(0, 10)), [])).toBe(false);
  });
});

describe('directory entries', () => {
  const account: kt.DirectoryEntry = {
    kind: 'account',
    seq: 2,
    userId: 'u'.repeat(22),
    username: 'alice',
    identityKey: new Uint8Array(32).fill(7),
    deviceIds: ['b'.repeat(22), 'a'.repeat(22)],
  };

  it('round-trips an account and a tombstone, with device ids in canonical order', () => {
    const decoded = kt.decodeEntry(kt.encodeEntry(account));
    expect(decoded).toEqual({ ...account, deviceIds: ['a'.repeat(22), 'b'.repeat(22)] });
    const gone: kt.DirectoryEntry = { kind: 'deleted', seq: 3, userId: 'u'.repeat(22) };
    expect(kt.decodeEntry(kt.encodeEntry(gone))).toEqual(gone);
  });

  it('starts with its domain string and refuses trailing bytes, unsorted devices and other versions', () => {
    const bytes = kt.encodeEntry(account);
    expect(Buffer.from(bytes.subarray(0, kt.ENTRY_DOMAIN.length)).toString()).toBe(kt.ENTRY_DOMAIN);
    expect(() => kt.decodeEntry(new Uint8Array([...bytes, 0]))).toThrow(/not canonical/);
    const v2 = bytes.slice();
    v2[kt.ENTRY_DOMAIN.length - 2] = '2'.charCodeAt(0);
    expect(() => kt.decodeEntry(v2)).toThrow(/not a v1 entry/);
    const swapped = bytes.slice();
    const at = bytes.length - 46;
    swapped.set(bytes.subarray(bytes.length - 23), at);
    swapped.set(bytes.subarray(at, at + 23), bytes.length - 23);
    expect(() => kt.decodeEntry(swapped)).toThrow(/not canonical/);
  });
});

describe('signed checkpoints and cosignatures', () => {
  const relayKey = generateKeyPairSync('ed25519');
  const rawPublic = (k: typeof relayKey): Uint8Array =>
    new Uint8Array(k.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
  const origin = 'relay.example/weconnect-kt';
  const body = `${origin}\n5\n${Buffer.from(new Uint8Array(32).fill(1)).toString('base64')}\n`;
  const signLine = (
    name: string,
    type: number,
    key: typeof relayKey,
    payload: Uint8Array,
    prefix = new Uint8Array(0),
  ) => {
    const id = kt.keyIdOf(name, type, rawPublic(key));
    const sig = sign(null, payload, key.privateKey);
    return `\u2014 ${name} ${Buffer.concat([id, prefix, sig]).toString('base64')}\n`;
  };
  let vkey = '';
  let note = '';
  beforeAll(() => {
    vkey = kt.formatVerifierKey(origin, kt.SIG_ED25519, rawPublic(relayKey));
    note = `${body}\n${signLine(origin, kt.SIG_ED25519, relayKey, Buffer.from(body))}`;
  });

  it('opens a checkpoint signed by the pinned key and reads origin, size and root', () => {
    const cp = kt.openCheckpoint(note, kt.parseVerifierKey(vkey));
    expect(cp).toMatchObject({ origin, size: 5, body });
    expect(hex(cp.root)).toBe('01'.repeat(32));
  });

  it('refuses a checkpoint whose text was changed, or signed by another key', () => {
    const key = kt.parseVerifierKey(vkey);
    expect(() => kt.openCheckpoint(note.replace('\n5\n', '\n6\n'), key)).toThrow(/no valid signature/);
    const other = generateKeyPairSync('ed25519');
    const forged = `${body}\n${signLine(origin, kt.SIG_ED25519, other, Buffer.from(body))}`;
    expect(() => kt.openCheckpoint(forged, key)).toThrow(/no valid signature/);
  });

  it('refuses a verifier key whose id does not match its name and key', () => {
    const [name, id] = vkey.split('+');
    const key = vkey.slice(`${name}+${id}+`.length);
    expect(() => kt.parseVerifierKey(`${name}+00000000+${key}`)).toThrow(/key id/);
    expect(() => kt.parseVerifierKey(`other+${id}+${key}`)).toThrow(/key id/);
    expect(kt.parseVerifierKey(vkey).name).toBe(origin);
  });

  it('verifies a witness cosignature over the checkpoint body and its timestamp', () => {
    const witness = generateKeyPairSync('ed25519');
    const wname = 'witness.example';
    const t = 1_700_000_000;
    const ts = Buffer.alloc(8);
    ts.writeBigUInt64BE(BigInt(t));
    const line = signLine(wname, kt.SIG_COSIGNATURE, witness, kt.cosignedMessage(body, t), ts);
    const cosigned = note + line;
    const wkey = kt.parseVerifierKey(kt.formatVerifierKey(wname, kt.SIG_COSIGNATURE, rawPublic(witness)));
    expect(kt.verifyCosignature(cosigned, wkey)).toBe(t);
    expect(kt.verifyCosignature(note, wkey)).toBeNull();
    expect(kt.openCheckpoint(cosigned, kt.parseVerifierKey(vkey)).size).toBe(5);
    const other = `${body.replace('\n5\n', '\n7\n')}\n${line}`;
    expect(kt.verifyCosignature(other, wkey)).toBeNull();
  });
});
