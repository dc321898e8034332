// X3DH (Signal's spec): DH1..DH4 → root secret via labeled BLAKE2b; associated data binding identities and users.

import { concat, lp8, wipe } from './bytes.js';
import { dh } from './keys.js';
import { labeledHash, labelPrefix, LABELS } from './kdf.js';
import type { KeyPair } from './types.js';

/** X3DH's F: 32 0xFF bytes before the DH outputs (domain separation from Ed25519, as in Signal's spec). */
const F = new Uint8Array(32).fill(0xff);

/**
 * The root secret: BLAKE2b over F ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], labelled X3DH; with a KEM shared secret (PQXDH), over
 * F ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS under the PQXDH label, as Signal's PQXDH concatenates SS after the DH outputs.
 */
function deriveSecret(dhs: Uint8Array[], kemSecret: Uint8Array | null): Uint8Array {
  try {
    if (kemSecret) return labeledHash(32, null, LABELS.pqxdh, F, ...dhs, kemSecret);
    return labeledHash(32, null, LABELS.x3dh, F, ...dhs);
  } finally {
    wipe(...dhs);
  }
}

/**
 * Initiator side. DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B).
 * Every peer key is validated and an all-zero DH output is fatal (`invalid_key`).
 */
export function x3dhInitiator(p: {
  identityDhPrivateKey: Uint8Array;
  ephemeral: KeyPair;
  peerIdentityDhKey: Uint8Array;
  peerSignedPrekey: Uint8Array;
  peerOneTimePrekey: Uint8Array | null;
  kemSecret?: Uint8Array | null;
}): Uint8Array {
  const dhs: Uint8Array[] = [];
  try {
    dhs.push(dh(p.identityDhPrivateKey, p.peerSignedPrekey, 'signed prekey'));
    dhs.push(dh(p.ephemeral.privateKey, p.peerIdentityDhKey, 'peer identity key'));
    dhs.push(dh(p.ephemeral.privateKey, p.peerSignedPrekey, 'signed prekey'));
    if (p.peerOneTimePrekey) dhs.push(dh(p.ephemeral.privateKey, p.peerOneTimePrekey, 'one-time prekey'));
  } catch (err) {
    wipe(...dhs);
    throw err;
  }
  return deriveSecret(dhs, p.kemSecret ?? null);
}

/** Responder side: the same four DH values computed with the responder's private keys. */
export function x3dhResponder(p: {
  identityDhPrivateKey: Uint8Array;
  signedPrekey: KeyPair;
  oneTimePrekey: KeyPair | null;
  peerIdentityDhKey: Uint8Array;
  peerBaseKey: Uint8Array;
  kemSecret?: Uint8Array | null;
}): Uint8Array {
  const dhs: Uint8Array[] = [];
  try {
    dhs.push(dh(p.signedPrekey.privateKey, p.peerIdentityDhKey, 'peer identity key'));
    dhs.push(dh(p.identityDhPrivateKey, p.peerBaseKey, 'base key'));
    dhs.push(dh(p.signedPrekey.privateKey, p.peerBaseKey, 'base key'));
    if (p.oneTimePrekey) dhs.push(dh(p.oneTimePrekey.privateKey, p.peerBaseKey, 'base key'));
  } catch (err) {
    wipe(...dhs);
    throw err;
  }
  return deriveSecret(dhs, p.kemSecret ?? null);
}

/**
 * AD = label ‖ IK_initiator ‖ IK_responder ‖ len‖userId_initiator ‖ len‖userId_responder (Ed25519 keys). The label
 * differs for PQXDH sessions, so the protocol version is bound into every message's associated data.
 */
export function x3dhAssociatedData(
  initiatorIdentityKey: Uint8Array,
  responderIdentityKey: Uint8Array,
  initiatorUserId: string,
  responderUserId: string,
  postQuantum = false,
): Uint8Array {
  return concat(
    labelPrefix(postQuantum ? LABELS.pqxdhAd : LABELS.associatedData),
    initiatorIdentityKey,
    responderIdentityKey,
    lp8(initiatorUserId, 'initiator user id'),
    lp8(responderUserId, 'responder user id'),
  );
}
