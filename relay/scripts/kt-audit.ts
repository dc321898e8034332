// The key transparency auditor / witness (issue #16): `npm run kt-audit -- <relay url> [--state file]
// [--key verifier-key] [--witness-key file --witness-name name [--submit]] [--follow seconds]`. Each round fetches the relay's
// latest checkpoint, verifies its signature with the pinned key (pinned on first run unless --key gives it), proves
// it consistent with the last checkpoint this auditor saw (kept in the state file), and saves it. With a witness key
// it also co-signs the checkpoint (C2SP tlog-cosignature v1) and prints the cosigned note; with --submit it posts it
// to the relay (POST /api/kt/cosignatures), which then serves it to clients that require this witness (it skips a
// checkpoint the relay already serves with this witness's cosignature). Any failure is loud: the process exits 1 and
// says what the relay did — except, with --follow, a relay that does not answer (RelayUnreachable): it tries again
// on the next round, so a witness outlives a relay restart.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import * as kt from '../../crypto/src/kt/index.js';
import { ready } from '../../crypto/src/sodium.js';
import {
  ktCheckpointAnswerSchema,
  ktConsistencyAnswerSchema,
  ktCosignaturesAnswerSchema,
  type KtCosignaturesAnswer,
} from '../src/protocol.js';

const stateSchema = z.object({
  relay: z.string(),
  verifierKey: z.string(),
  pinned: z.enum(['tofu', 'configured']),
  checkpoint: z.string().nullable(),
});
export type AuditState = z.infer<typeof stateSchema>;

export interface Witness {
  name: string;
  privateKey: KeyObject;
  publicKey: Uint8Array;
}

export interface AuditRound {
  size: number;
  /** The size of the checkpoint it was proven consistent with (null on the first round). */
  from: number | null;
  /** The checkpoint with this auditor's cosignature line added, when it is a witness. */
  cosigned?: string;
  /** With `submit`: whether it was posted (false when the relay already served this witness's cosignature of it). */
  submitted?: boolean;
}

/**
 * The relay did not answer (no connection, a timeout, a 5xx): says nothing about its log. `--follow` tries again on
 * its next round; every other failure (a bad signature, a changed history, a refused answer) stops it loudly.
 */
export class RelayUnreachable extends Error {}

async function fetchOrUnreachable(url: string, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  } catch (e) {
    throw new RelayUnreachable(`${url} did not answer (${(e as Error).message})`);
  }
  if (res.status >= 500) throw new RelayUnreachable(`${url} answered ${res.status}`);
  return res;
}

async function getJson<T>(url: string, schema: z.ZodType<T>): Promise<T> {
  const res = await fetchOrUnreachable(url);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return schema.parse(await res.json());
}

/** Loads (or creates) a witness key file: an Ed25519 private key in PKCS#8 PEM, mode 0600. */
export function loadWitness(file: string, name: string): Witness {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  }
  const privateKey = createPrivateKey(readFileSync(file, 'utf8'));
  const publicKey = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(-32));
  return { name, privateKey, publicKey };
}

/** The witness's cosignature line for a checkpoint body at `timestamp` (seconds). */
export function cosign(witness: Witness, body: string, timestamp: number): string {
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(timestamp));
  const signature = sign(null, kt.cosignedMessage(body, timestamp), witness.privateKey);
  const id = kt.keyIdOf(witness.name, kt.SIG_COSIGNATURE, witness.publicKey);
  return `\u2014 ${witness.name} ${Buffer.concat([id, ts, signature]).toString('base64')}\n`;
}

/** Posts a cosigned checkpoint note to the relay; resolves to the checkpoint it now serves. Throws on refusal. */
export async function submitCosignature(relay: string, cosigned: string): Promise<KtCosignaturesAnswer> {
  const url = `${relay.replace(/\/+$/, '')}/api/kt/cosignatures`;
  const res = await fetchOrUnreachable(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ checkpoint: cosigned }),
  });
  const json: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new Error(`the relay refused the cosignature: ${res.status} ${error?.code ?? ''} ${error?.message ?? ''}`);
  }
  return ktCosignaturesAnswerSchema.parse(json);
}

/** One audit round; throws with a plain sentence when the relay's log is not what it must be. */
export async function auditOnce(
  relay: string,
  state: AuditState | null,
  options: { verifierKey?: string; witness?: Witness; now?: () => number; submit?: boolean } = {},
): Promise<{ state: AuditState; round: AuditRound }> {
  await ready();
  const base = relay.replace(/\/+$/, '');
  const answer = await getJson(`${base}/api/kt/checkpoint`, ktCheckpointAnswerSchema);
  const pinnedKey = state?.verifierKey ?? options.verifierKey ?? answer.verifierKey;
  if (answer.verifierKey !== pinnedKey) {
    throw new Error(`the relay now names another checkpoint key (${answer.verifierKey}); pinned: ${pinnedKey}`);
  }
  const cp = kt.openCheckpoint(answer.checkpoint, kt.parseVerifierKey(pinnedKey));
  let from: number | null = null;
  if (state?.checkpoint) {
    const last = kt.parseCheckpointBody(kt.noteBody(state.checkpoint));
    if (cp.size < last.size) throw new Error(`the relay's log shrank from ${last.size} to ${cp.size} entries`);
    let proof: Uint8Array[] = [];
    if (cp.size > last.size) {
      const p = await getJson(`${base}/api/kt/consistency?from=${last.size}&to=${cp.size}`, ktConsistencyAnswerSchema);
      proof = p.proof.map((h) => new Uint8Array(Buffer.from(h, 'base64url')));
    }
    if (cp.origin !== last.origin || !kt.verifyConsistency(last.size, cp.size, last.root, cp.root, proof)) {
      throw new Error(
        `the relay's log of size ${cp.size} does not extend the one of size ${last.size}: history changed`,
      );
    }
    from = last.size;
  }
  const next: AuditState = {
    relay: base,
    verifierKey: pinnedKey,
    pinned: state?.pinned ?? (options.verifierKey ? 'configured' : 'tofu'),
    checkpoint: answer.checkpoint,
  };
  const round: AuditRound = { size: cp.size, from };
  if (options.witness) {
    const t = Math.floor((options.now ?? Date.now)() / 1000);
    const own = kt.parseVerifierKey(
      kt.formatVerifierKey(options.witness.name, kt.SIG_COSIGNATURE, options.witness.publicKey),
    );
    if (kt.verifyCosignature(answer.checkpoint, own) !== null) {
      // Already cosigned by this witness (an earlier round, or another node's): the note is served as it is.
      round.cosigned = answer.checkpoint;
      if (options.submit) round.submitted = false;
    } else {
      round.cosigned = answer.checkpoint + cosign(options.witness, cp.body, t);
      if (options.submit) {
        await submitCosignature(base, round.cosigned);
        round.submitted = true;
      }
    }
  }
  return { state: next, round };
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: string[]): Promise<number> {
  const relay = args.find((a) => /^https?:\/\//.test(a));
  if (!relay) {
    console.error(
      'usage: npm run kt-audit -- <relay url> [--state file] [--key verifier-key] [--witness-key file --witness-name name [--submit]] [--follow seconds]',
    );
    return 2;
  }
  const stateFile = argValue(args, '--state') ?? 'kt-audit-state.json';
  await ready(); // formatVerifierKey below uses libsodium
  const keyFile = argValue(args, '--witness-key');
  const witness = keyFile ? loadWitness(keyFile, argValue(args, '--witness-name') ?? 'weconnect-witness') : undefined;
  if (witness) {
    console.log(`witness key: ${kt.formatVerifierKey(witness.name, kt.SIG_COSIGNATURE, witness.publicKey)}`);
  }
  const follow = Number(argValue(args, '--follow') ?? 0);
  const verifierKey = argValue(args, '--key');
  for (;;) {
    const state = existsSync(stateFile) ? stateSchema.parse(JSON.parse(readFileSync(stateFile, 'utf8'))) : null;
    try {
      const { state: next, round } = await auditOnce(relay, state, {
        ...(verifierKey ? { verifierKey } : {}),
        ...(witness ? { witness, submit: args.includes('--submit') } : {}),
      });
      writeFileSync(stateFile, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
      console.log(
        round.from === null
          ? `pinned ${next.verifierKey} (${next.pinned}); checkpoint of ${round.size} entries saved`
          : `consistent: ${round.from} → ${round.size} entries`,
      );
      if (round.cosigned) process.stdout.write(round.cosigned);
      if (round.submitted === true) console.log('cosignature submitted to the relay');
      if (round.submitted === false) console.log('already cosigned by this witness: nothing to submit');
    } catch (e) {
      if (e instanceof RelayUnreachable && follow > 0) {
        console.error(`relay unreachable, trying again in ${follow} s: ${e.message}`);
      } else {
        console.error(`KEY TRANSPARENCY AUDIT FAILED for ${relay}: ${(e as Error).message}`);
        return 1;
      }
    }
    if (!(follow > 0)) return 0;
    await new Promise((r) => setTimeout(r, follow * 1000));
  }
}

if (process.argv[1]?.endsWith('kt-audit.ts')) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
