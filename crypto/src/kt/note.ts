// C2SP signed notes (c2sp.org/signed-note) carrying tlog checkpoints (c2sp.org/tlog-checkpoint), and witness
// cosignatures (c2sp.org/tlog-cosignature v1). Verification only: the relay and the auditor sign with node:crypto.
import { concat, constantTimeEqual, utf8 } from '../bytes.js';
import { CryptoError } from '../errors.js';
import { sodium } from '../sodium.js';
import { HASH_BYTES } from './merkle.js';

/** Signature types of C2SP verifier keys: 0x01 Ed25519 note signature, 0x04 timestamped Ed25519 cosignature. */
export const SIG_ED25519 = 0x01;
export const SIG_COSIGNATURE = 0x04;

export interface VerifierKey {
  name: string;
  type: typeof SIG_ED25519 | typeof SIG_COSIGNATURE;
  keyId: Uint8Array;
  publicKey: Uint8Array;
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
  /** The signed text: origin, size and root hash lines, each ending in a newline. */
  body: string;
}

export interface NoteSignature {
  name: string;
  keyId: Uint8Array;
  /** Everything after the 4 key-id bytes. */
  signature: Uint8Array;
}

function b64(data: Uint8Array): string {
  return sodium().to_base64(data, sodium().base64_variants.ORIGINAL);
}

function fromB64(text: string, name: string): Uint8Array {
  let out: Uint8Array;
  try {
    out = sodium().from_base64(text, sodium().base64_variants.ORIGINAL);
  } catch {
    throw new CryptoError('bad_input', `${name} is not base64`);
  }
  if (b64(out) !== text) throw new CryptoError('bad_input', `${name} is not canonical base64`);
  return out;
}

/** The 4-byte key id: SHA-256(name ‖ "\n" ‖ type ‖ public key)[0:4]. */
export function keyIdOf(name: string, type: number, publicKey: Uint8Array): Uint8Array {
  return sodium()
    .crypto_hash_sha256(concat(utf8(name), utf8('\n'), Uint8Array.of(type), publicKey))
    .subarray(0, 4);
}

function checkName(name: string): void {
  if (name.length === 0 || /[\s+]/u.test(name)) {
    throw new CryptoError('bad_input', 'a key name must be non-empty, without spaces or "+"');
  }
}

/** The C2SP verifier key string `<name>+<hex key id>+<base64(type ‖ public key)>` of an Ed25519 key. */
export function formatVerifierKey(name: string, type: VerifierKey['type'], publicKey: Uint8Array): string {
  checkName(name);
  if (publicKey.length !== 32) throw new CryptoError('bad_input', 'publicKey must be 32 bytes');
  const id = Array.from(keyIdOf(name, type, publicKey), (b) => b.toString(16).padStart(2, '0')).join('');
  return `${name}+${id}+${b64(concat(Uint8Array.of(type), publicKey))}`;
}

/** Parses a verifier key string; its key id must match its name and key. */
export function parseVerifierKey(text: string): VerifierKey {
  const m = /^([^+]+)\+([^+]+)\+(.+)$/su.exec(text);
  if (!m) throw new CryptoError('bad_input', 'verifier key must be name+keyid+key');
  const [, name, idHex, keyB64] = m as unknown as [string, string, string, string];
  checkName(name);
  const key = fromB64(keyB64, 'verifier key');
  const type = key[0];
  if ((type !== SIG_ED25519 && type !== SIG_COSIGNATURE) || key.length !== 33) {
    throw new CryptoError('bad_input', 'verifier key: only Ed25519 (0x01) and cosignature (0x04) keys');
  }
  const publicKey = key.slice(1);
  const keyId = keyIdOf(name, type, publicKey);
  if (
    !/^[0-9a-f]{8}$/u.test(idHex) ||
    parseInt(idHex, 16) !== new DataView(keyId.buffer, keyId.byteOffset).getUint32(0)
  ) {
    throw new CryptoError('bad_input', 'verifier key: key id does not match');
  }
  return { name, type, keyId, publicKey };
}

/** Splits a note into its text and its signature lines (syntax only; nothing is verified). */
export function splitNote(note: string): { body: string; signatures: NoteSignature[] } {
  const at = note.lastIndexOf('\n\n');
  if (at < 0 || !note.endsWith('\n')) throw new CryptoError('bad_input', 'note: no signature block');
  const body = note.slice(0, at + 1);
  const lines = note.slice(at + 2, -1).split('\n');
  const signatures = lines.map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw new CryptoError('bad_input', 'note: malformed signature line');
    const raw = fromB64(m[2]!, 'note signature');
    if (raw.length < 5) throw new CryptoError('bad_input', 'note: signature too short');
    return { name: m[1]!, keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  if (signatures.length === 0) throw new CryptoError('bad_input', 'note: no signature');
  return { body, signatures };
}

/** Parses a checkpoint body: origin, decimal size and base64 root hash lines (extension lines are refused). */
export function parseCheckpointBody(body: string): Checkpoint {
  const lines = body.split('\n');
  if (lines.length !== 4 || lines[3] !== '') throw new CryptoError('bad_input', 'checkpoint: expected three lines');
  const [origin, sizeText, rootText] = lines as [string, string, string];
  if (origin.length === 0) throw new CryptoError('bad_input', 'checkpoint: empty origin');
  if (!/^(0|[1-9][0-9]{0,15})$/u.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new CryptoError('bad_input', 'checkpoint: bad tree size');
  }
  const root = fromB64(rootText, 'checkpoint root');
  if (root.length !== HASH_BYTES) throw new CryptoError('bad_input', 'checkpoint: root hash must be 32 bytes');
  return { origin, size: Number(sizeText), root, body };
}

function matches(sig: NoteSignature, key: VerifierKey): boolean {
  return sig.name === key.name && constantTimeEqual(sig.keyId, key.keyId);
}

/**
 * Parses a checkpoint note and verifies the relay's signature with `key` (type 0x01). Throws `invalid_signature`
 * when no signature of that key verifies, `bad_input` when the note or checkpoint is malformed.
 */
export function openCheckpoint(note: string, key: VerifierKey): Checkpoint {
  if (key.type !== SIG_ED25519) throw new CryptoError('bad_input', 'key must be an Ed25519 note key');
  const { body, signatures } = splitNote(note);
  const checkpoint = parseCheckpointBody(body);
  const ok = signatures.some(
    (s) =>
      matches(s, key) &&
      s.signature.length === 64 &&
      sodium().crypto_sign_verify_detached(s.signature, utf8(body), key.publicKey),
  );
  if (!ok) throw new CryptoError('invalid_signature', `checkpoint: no valid signature by ${key.name}`);
  return checkpoint;
}

/** The message a witness signs: "cosignature/v1\ntime <t>\n" ‖ checkpoint body. */
export function cosignedMessage(body: string, timestamp: number): Uint8Array {
  return utf8(`cosignature/v1\ntime ${timestamp}\n${body}`);
}

/**
 * The timestamp (seconds) of a valid cosignature by the witness `key` (type 0x04) on this note, or null when the
 * note carries none.
 */
export function verifyCosignature(note: string, key: VerifierKey): number | null {
  if (key.type !== SIG_COSIGNATURE) throw new CryptoError('bad_input', 'key must be a cosignature key');
  const { body, signatures } = splitNote(note);
  for (const s of signatures) {
    if (!matches(s, key) || s.signature.length !== 72) continue;
    const view = new DataView(s.signature.buffer, s.signature.byteOffset, 8);
    const timestamp = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
    if (!Number.isSafeInteger(timestamp)) continue;
    if (
      sodium().crypto_sign_verify_detached(s.signature.subarray(8), cosignedMessage(body, timestamp), key.publicKey)
    ) {
      return timestamp;
    }
  }
  return null;
}

/** A note's text without its signatures, for comparing two checkpoints (gossip). */
export function noteBody(note: string): string {
  return splitNote(note).body;
}
