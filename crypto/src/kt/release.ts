// Release manifest entries of the key transparency log (issue #16): a leaf that says "this relay served the release
// manifest whose exact bytes hash to H, signed by the release key with id K". Same domain as the directory entries
// with its own kind byte (3), so a release leaf is never read as an account's entry (decodeEntry refuses kind 3) and
// an account's entry never as a release.
import { concat, constantTimeEqual, lp8, Reader, u32be, utf8 } from '../bytes.js';
import { CryptoError } from '../errors.js';
import { ENTRY_DOMAIN } from './entry.js';

const KIND_RELEASE = 3;

export interface ReleaseEntry {
  kind: 'release';
  /** The release key id the manifest names (SHA-256 of the release public key, hex), or '-' when it names none. */
  keyId: string;
  /** SHA-256 of the manifest document exactly as served (32 bytes). */
  manifestHash: Uint8Array;
}

/** domain ‖ 0x03 ‖ u32 0 ‖ lp8(keyId) ‖ 0x20 ‖ SHA-256(manifest bytes). */
export function encodeReleaseEntry(entry: ReleaseEntry): Uint8Array {
  if (entry.manifestHash.length !== 32) throw new CryptoError('bad_input', 'release entry: hash must be 32 bytes');
  return concat(
    utf8(ENTRY_DOMAIN),
    Uint8Array.of(KIND_RELEASE),
    u32be(0),
    lp8(entry.keyId, 'entry.keyId'),
    Uint8Array.of(32),
    entry.manifestHash,
  );
}

/** Parses a release entry; anything but the one canonical encoding of a v1 release entry throws `bad_input`. */
export function decodeReleaseEntry(data: Uint8Array): ReleaseEntry {
  const r = new Reader(data, 'release entry');
  if (!constantTimeEqual(r.bytes(utf8(ENTRY_DOMAIN).length), utf8(ENTRY_DOMAIN))) {
    throw new CryptoError('bad_input', 'release entry: not a v1 entry');
  }
  if (r.u8() !== KIND_RELEASE) throw new CryptoError('bad_input', 'release entry: not a release entry');
  if (r.u32() !== 0) throw new CryptoError('bad_input', 'release entry: not canonical');
  const keyId = r.lp8String('keyId');
  if (r.u8() !== 32) throw new CryptoError('bad_input', 'release entry: hash must be 32 bytes');
  const manifestHash = r.bytes(32).slice();
  const entry: ReleaseEntry = { kind: 'release', keyId, manifestHash };
  if (r.remaining() !== 0 || !constantTimeEqual(encodeReleaseEntry(entry), data)) {
    throw new CryptoError('bad_input', 'release entry: not canonical');
  }
  return entry;
}
