// Key transparency settings as the user types them (issue #16): the relay's log key and the witness keys, parsed and
// checked (C2SP verifier key syntax, key id, and the right key type) into the strings KeyTransparency stores. Pure.
import type { Crypto } from './crypto-loader';
import { ClientError } from './errors';

type Kt = Crypto['kt'];
export type VerifierKey = ReturnType<Kt['parseVerifierKey']>;

/** Most witness keys a user may configure. */
export const MAX_WITNESSES = 16;

const ED25519 = 1;
const COSIGNATURE = 4;

/** A log key (an Ed25519 note key, type 0x01), trimmed. Throws `invalid_input` saying what is wrong. */
export function parseLogKey(kt: Kt, text: string): { key: string; parsed: VerifierKey } {
  const key = text.trim();
  let parsed: VerifierKey;
  try {
    parsed = kt.parseVerifierKey(key);
  } catch (e) {
    throw new ClientError('invalid_input', `This is not a log key: ${(e as Error).message}.`);
  }
  if (parsed.type !== ED25519) {
    throw new ClientError('invalid_input', 'This is a witness key (type 0x04), not a log key (Ed25519, type 0x01).');
  }
  return { key, parsed };
}

/**
 * Witness cosignature keys (type 0x04), one per line: blank lines skipped, repeats dropped, at most MAX_WITNESSES.
 * Throws `invalid_input` naming the first bad line (counted from 1).
 */
export function parseWitnessKeys(kt: Kt, lines: readonly string[]): string[] {
  const keys: string[] = [];
  lines.forEach((line, i) => {
    const key = line.trim();
    if (key === '') return;
    let type: number;
    try {
      type = kt.parseVerifierKey(key).type;
    } catch (e) {
      throw new ClientError('invalid_input', `Line ${i + 1} is not a witness key: ${(e as Error).message}.`);
    }
    if (type !== COSIGNATURE) {
      throw new ClientError('invalid_input', `Line ${i + 1} is a log key (type 0x01), not a witness key (type 0x04).`);
    }
    if (!keys.includes(key)) keys.push(key);
  });
  if (keys.length > MAX_WITNESSES) throw new ClientError('invalid_input', `At most ${MAX_WITNESSES} witness keys.`);
  return keys;
}

/** Whether `note` carries a valid signature by `key`. */
export function signs(kt: Kt, key: VerifierKey, note: string): boolean {
  try {
    kt.openCheckpoint(note, key);
    return true;
  } catch {
    return false;
  }
}
