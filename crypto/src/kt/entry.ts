// Directory entries of the key transparency log: one canonical, versioned, domain-separated byte string per change
// of an account (relay/PROTOCOL.md "Key transparency"). Decoding re-encodes and compares, so one entry has exactly
// one encoding and a relay cannot make two leaves that read alike.
import { concat, constantTimeEqual, lp8, Reader, u32be, utf8 } from '../bytes.js';
import { CryptoError } from '../errors.js';

/** The first bytes of every entry: a leaf of this log can never be read as any other signed or hashed format. */
export const ENTRY_DOMAIN = 'WeConnect key transparency entry v1\n';
const KIND_ACCOUNT = 1;
const KIND_DELETED = 2;
/** Most device ids one entry may list (the relay's per-account limit is far lower). */
export const MAX_ENTRY_DEVICES = 1000;

/**
 * An account as the directory publishes it: identity key and device ids (every other device key is signed by the
 * identity key, so it is bound through it; rotating prekeys are not logged). `seq` counts the account's entries
 * from 0. A deleted account's last entry is a tombstone.
 */
export type DirectoryEntry =
  | {
      kind: 'account';
      seq: number;
      userId: string;
      username: string;
      identityKey: Uint8Array;
      /** Sorted, unique. */
      deviceIds: string[];
    }
  | { kind: 'deleted'; seq: number; userId: string };

export function encodeEntry(entry: DirectoryEntry): Uint8Array {
  if (!Number.isSafeInteger(entry.seq) || entry.seq < 0 || entry.seq > 0xffffffff) {
    throw new CryptoError('bad_input', 'entry.seq must be a uint32');
  }
  const head = concat(utf8(ENTRY_DOMAIN), Uint8Array.of(entry.kind === 'account' ? KIND_ACCOUNT : KIND_DELETED));
  const common = concat(head, u32be(entry.seq), lp8(entry.userId, 'entry.userId'));
  if (entry.kind === 'deleted') return common;
  if (entry.identityKey.length !== 32) throw new CryptoError('bad_input', 'entry.identityKey must be 32 bytes');
  const ids = [...entry.deviceIds].sort();
  if (ids.length > MAX_ENTRY_DEVICES) throw new CryptoError('bad_input', 'entry.deviceIds is too long');
  if (new Set(ids).size !== ids.length) throw new CryptoError('bad_input', 'entry.deviceIds has duplicates');
  const count = new Uint8Array([ids.length >> 8, ids.length & 0xff]);
  return concat(
    common,
    lp8(entry.username, 'entry.username'),
    Uint8Array.of(32),
    entry.identityKey,
    count,
    ...ids.map((id, i) => lp8(id, `entry.deviceIds[${i}]`)),
  );
}

/** Parses an entry; anything but the one canonical encoding of a v1 entry throws `bad_input`. */
export function decodeEntry(data: Uint8Array): DirectoryEntry {
  const r = new Reader(data, 'key transparency entry');
  if (!constantTimeEqual(r.bytes(utf8(ENTRY_DOMAIN).length), utf8(ENTRY_DOMAIN))) {
    throw new CryptoError('bad_input', 'key transparency entry: not a v1 entry');
  }
  const kind = r.u8();
  const seq = r.u32();
  const userId = r.lp8String('userId');
  let entry: DirectoryEntry;
  if (kind === KIND_DELETED) {
    entry = { kind: 'deleted', seq, userId };
  } else if (kind === KIND_ACCOUNT) {
    const username = r.lp8String('username');
    if (r.u8() !== 32) throw new CryptoError('bad_input', 'key transparency entry: identity key must be 32 bytes');
    const identityKey = r.bytes(32).slice();
    const [hi, lo] = r.bytes(2);
    const count = (hi! << 8) | lo!;
    const deviceIds: string[] = [];
    for (let i = 0; i < count; i += 1) deviceIds.push(r.lp8String(`deviceIds[${i}]`));
    entry = { kind: 'account', seq, userId, username, identityKey, deviceIds };
  } else {
    throw new CryptoError('bad_input', 'key transparency entry: unknown kind');
  }
  if (r.remaining() !== 0 || !constantTimeEqual(encodeEntry(entry), data)) {
    throw new CryptoError('bad_input', 'key transparency entry: not canonical');
  }
  return entry;
}
