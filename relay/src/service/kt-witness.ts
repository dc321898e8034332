// Witness cosignatures on the key transparency log (issue #16): the operator names witness keys (KT_WITNESSES, C2SP
// verifier keys of type 0x04, c2sp.org/tlog-cosignature v1); a witness posts the relay's checkpoint with its
// cosignature line appended, and the relay serves its latest checkpoint with the cosignatures it holds for it.
// Verification with node:crypto (the relay does not load the crypto library); the client checks again with its own.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { RelayError } from '../errors.js';

export interface WitnessKey {
  name: string;
  keyId: Buffer;
  publicKey: KeyObject;
  /** The verifier key as configured. */
  text: string;
}

const SIG_COSIGNATURE = 0x04;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow. */
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

/** Parses one C2SP cosignature verifier key `<name>+<hex key id>+<base64(0x04 ‖ key)>`; throws a plain Error. */
export function parseWitnessKey(text: string): WitnessKey {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/u.exec(text);
  if (!m) throw new Error('a witness key must be name+keyid+base64 key');
  const [, name, idHex, keyB64] = m as unknown as [string, string, string, string];
  const raw = Buffer.from(keyB64, 'base64');
  if (raw.toString('base64') !== keyB64 || raw.length !== 33 || raw[0] !== SIG_COSIGNATURE) {
    throw new Error('a witness key must be an Ed25519 cosignature key (type 0x04)');
  }
  const keyId = createHash('sha256').update(`${name}\n`).update(raw).digest().subarray(0, 4);
  if (keyId.toString('hex') !== idHex) throw new Error('a witness key id does not match its name and key');
  const publicKey = createPublicKey({
    key: Buffer.concat([ED25519_SPKI, raw.subarray(1)]),
    format: 'der',
    type: 'spki',
  });
  return { name, keyId, publicKey, text };
}

/** The signature lines of a note, split from its body (syntax only). Throws RelayError invalid_input. */
export function splitSignedNote(note: string): { body: string; lines: { name: string; raw: Buffer }[] } {
  const at = note.lastIndexOf('\n\n');
  if (at < 0 || !note.endsWith('\n')) throw new RelayError('invalid_input', 'checkpoint: not a signed note');
  const lines = note
    .slice(at + 2, -1)
    .split('\n')
    .map((line) => {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/u.exec(line);
      const raw = m ? Buffer.from(m[2]!, 'base64') : null;
      if (!m || !raw || raw.toString('base64') !== m[2] || raw.length < 5) {
        throw new RelayError('invalid_input', 'checkpoint: malformed signature line');
      }
      return { name: m[1]!, raw };
    });
  return { body: note.slice(0, at + 1), lines };
}

/**
 * The witness's cosignature line (`— name base64\n`) when `raw` (key id ‖ 8-byte timestamp ‖ signature) is its valid
 * cosignature of `body`. Throws RelayError invalid_input otherwise.
 */
export function checkCosignature(witness: WitnessKey, body: string, raw: Buffer): string {
  if (raw.length !== 4 + 8 + 64) throw new RelayError('invalid_input', 'cosignature: wrong length');
  const timestamp = raw.readBigUInt64BE(4);
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) throw new RelayError('invalid_input', 'cosignature: bad time');
  const message = Buffer.from(`cosignature/v1\ntime ${timestamp}\n${body}`, 'utf8');
  if (!verify(null, message, witness.publicKey, raw.subarray(12))) {
    throw new RelayError('invalid_input', `cosignature: not a valid signature by witness ${witness.name}`);
  }
  return `\u2014 ${witness.name} ${raw.toString('base64')}\n`;
}
