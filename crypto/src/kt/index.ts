// Key transparency verification (issue #16): Merkle proofs, directory entries and signed checkpoints.
export {
  emptyRoot,
  HASH_BYTES,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';
export { decodeReleaseEntry, encodeReleaseEntry, type ReleaseEntry } from './release.js';
export { decodeEntry, encodeEntry, ENTRY_DOMAIN, MAX_ENTRY_DEVICES, type DirectoryEntry } from './entry.js';
export {
  cosignedMessage,
  formatVerifierKey,
  keyIdOf,
  noteBody,
  openCheckpoint,
  parseCheckpointBody,
  parseVerifierKey,
  SIG_COSIGNATURE,
  SIG_ED25519,
  splitNote,
  verifyCosignature,
  type Checkpoint,
  type NoteSignature,
  type VerifierKey,
} from './note.js';
