// Public data types of the protocol library. Every state is a plain immutable value: functions return new ones.

/**
 * A Curve25519 key pair (X25519). `privateKey` is secret.
 */
export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/**
 * An account's identity: one Ed25519 key shared by all devices of the account, plus its X25519 form
 * (derived with libsodium's Ed25519→Curve25519 conversion) used for X3DH and for sealed envelopes.
 * Everything except `publicKey` and `dhPublicKey` is secret; persist it with {@link serializeIdentity} and
 * wrap it with the wrap key.
 */
export interface Identity {
  /** Ed25519 public key (32 bytes): the account's identity key as published to the relay. */
  readonly publicKey: Uint8Array;
  /** Ed25519 secret key in libsodium's 64-byte form (seed ‖ public key). */
  readonly signingKey: Uint8Array;
  /** X25519 form of `publicKey` (32 bytes). */
  readonly dhPublicKey: Uint8Array;
  /** X25519 form of the secret key (32 bytes). */
  readonly dhPrivateKey: Uint8Array;
}

/** A device's signed prekey: an X25519 key pair whose public key is signed by the identity key. */
export interface SignedPrekey {
  /** Unsigned 32-bit id chosen by the device. */
  readonly keyId: number;
  readonly keyPair: KeyPair;
  /** Ed25519 signature by the identity key over the 32 public-key bytes (64 bytes). */
  readonly signature: Uint8Array;
}

/** A one-time prekey: an X25519 key pair handed out once by the relay. */
export interface OneTimePrekey {
  /** Unsigned 32-bit id chosen by the device. */
  readonly keyId: number;
  readonly keyPair: KeyPair;
}

/** `signedPrekey` as it travels in PROTOCOL.md (base64url without padding). */
export interface WireSignedPrekey {
  keyId: number;
  publicKey: string;
  signature: string;
}

/** A one-time prekey as it travels in PROTOCOL.md. */
export interface WireOneTimePrekey {
  keyId: number;
  publicKey: string;
}

/** What a new account uploads in `POST /api/accounts` (plus `username`, `salt`, `authKey`). */
export interface AccountUpload {
  identityKey: string;
  signedPrekey: WireSignedPrekey;
  oneTimePrekeys: WireOneTimePrekey[];
}

/** The keys of a new account's first device, and the public parts in wire shape. */
export interface AccountKeys {
  readonly identity: Identity;
  readonly signedPrekey: SignedPrekey;
  readonly oneTimePrekeys: readonly OneTimePrekey[];
  readonly upload: AccountUpload;
}

/** A verified prekey bundle of one remote device (signature checked, keys validated). */
export interface PrekeyBundle {
  /** Ed25519 identity key of the remote account. */
  readonly identityKey: Uint8Array;
  readonly signedPrekey: { readonly keyId: number; readonly publicKey: Uint8Array };
  readonly oneTimePrekey: { readonly keyId: number; readonly publicKey: Uint8Array } | null;
  /** The device's signed ML-KEM-768 prekey (one-time, else its last-resort one): the session is then PQXDH. */
  readonly kemPrekey?: VerifiedKemPrekey | null;
}

/** A signed ML-KEM-768 prekey of this device (private: the secret key). */
export interface KemPrekey {
  readonly keyId: number;
  /** The last-resort key is handed out when no one-time KEM prekey is left; it is not deleted on use. */
  readonly lastResort: boolean;
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  /** Ed25519 by the identity key over label ‖ KEM type ‖ last-resort flag ‖ key id ‖ public key. */
  readonly signature: Uint8Array;
}

/** A KEM prekey whose signature was checked against the account's identity key. */
export interface VerifiedKemPrekey {
  readonly keyId: number;
  readonly lastResort: boolean;
  readonly publicKey: Uint8Array;
}

/** A KEM prekey as the relay carries it (base64url). */
export interface WireKemPrekey {
  keyId: number;
  lastResort: boolean;
  publicKey: string;
  signature: string;
}

/** The X3DH fields of a prekey message, readable before any key is loaded. */
export interface PrekeyMessageInfo {
  /** The initiator's Ed25519 identity key (compare it with the key you trust for the claimed sender). */
  readonly identityKey: Uint8Array;
  /** The initiator's ephemeral X25519 key; identifies this session start. */
  readonly baseKey: Uint8Array;
  /** Which of your signed prekeys the initiator used. */
  readonly signedPrekeyId: number;
  /** Which of your one-time prekeys the initiator used, or null if the bundle had none. */
  readonly oneTimePrekeyId: number | null;
  /** PQXDH: which of your KEM prekeys the initiator encapsulated to; null for a classic (X3DH) session start. */
  readonly kemPrekeyId: number | null;
}

/** One direction's symmetric chain of the Double Ratchet. */
export interface ChainState {
  readonly key: Uint8Array;
  /** Number of messages already derived from this chain. */
  readonly counter: number;
}

/**
 * A pairwise Double Ratchet session between this device and one remote device. Treat it as opaque and
 * immutable: every operation returns a new Session; persist the new one only after the operation succeeded.
 */
export interface Session {
  readonly version: 1;
  readonly localUserId: string;
  readonly localDeviceId: string;
  readonly peerUserId: string;
  readonly peerDeviceId: string;
  /** Our Ed25519 identity key. */
  readonly localIdentityKey: Uint8Array;
  /** The peer account's Ed25519 identity key (what the safety number covers). */
  readonly peerIdentityKey: Uint8Array;
  /** X25519 form of `peerIdentityKey`: envelopes to the peer are sealed to it. */
  readonly peerIdentityDhKey: Uint8Array;
  /** X3DH associated data: both identity keys and both user ids, initiator first. */
  readonly associatedData: Uint8Array;
  /** The initiator's X3DH ephemeral public key: identifies this session start. */
  readonly baseKey: Uint8Array;
  readonly rootKey: Uint8Array;
  readonly dhSelf: KeyPair;
  readonly dhRemote: Uint8Array | null;
  readonly sendChain: ChainState | null;
  readonly recvChain: ChainState | null;
  /** Length of the previous sending chain (PN in the Double Ratchet spec). */
  readonly previousCounter: number;
  /** Skipped message keys, oldest first, keyed by `base64url(ratchet key) + ':' + counter`. */
  readonly skipped: ReadonlyMap<string, Uint8Array>;
  /** Recent remote ratchet keys (base64url), to tell replays of old chains from forgeries. */
  readonly previousRemoteKeys: readonly string[];
  /** Set on the initiator until the first reply decrypts: outgoing messages are prekey messages. */
  readonly pendingPrekey: {
    readonly signedPrekeyId: number;
    readonly oneTimePrekeyId: number | null;
    /** PQXDH: the KEM prekey encapsulated to and the ciphertext, repeated in every prekey message. */
    readonly kem?: { readonly keyId: number; readonly ciphertext: Uint8Array };
  } | null;
  /** True when the session was set up with PQXDH (an ML-KEM shared secret in the root secret). */
  readonly postQuantum?: boolean;
  /** Post-quantum rekeying state (PQXDH sessions only); see {@link PqRatchetState}. */
  readonly pqRatchet?: PqRatchetState;
}

/**
 * Post-quantum rekeying of the Double Ratchet. Every `KEM_REKEY_STEPS` DH ratchet steps one side offers a fresh
 * ML-KEM-768 public key in the headers of its sending chains; the peer encapsulates to it at its next ratchet step and
 * sends the ciphertext in every header of the sending chain that step made; both mix the shared secret into that
 * step's root KDF. One offer is outstanding at a time per side.
 */
export interface PqRatchetState {
  /** DH ratchet steps since an ML-KEM secret last entered the root key (PQXDH counts as one). */
  readonly steps: number;
  /** Our outstanding offer, sent with every message until the peer's answer arrives. */
  readonly offer: { readonly id: number; readonly publicKey: Uint8Array; readonly secretKey: Uint8Array } | null;
  /** The id our next offer gets (ids start at 1). */
  readonly nextOfferId: number;
  /** Our answer to the peer's offer: the ciphertext sent with every message of the current sending chain. */
  readonly reply: { readonly id: number; readonly ciphertext: Uint8Array } | null;
  /** The highest offer id of the peer's we answered (0: none). */
  readonly answered: number;
  /** Rekeyings completed (ML-KEM secrets mixed in after the session started), in both directions. */
  readonly epochs: number;
}

/**
 * Inner type of a sealed envelope: how to decrypt its payload.
 * - `prekey`: an X3DH prekey message (starts a session; see {@link PrekeyMessageInfo}) around a ratchet message.
 * - `message`: a Double Ratchet message of an established session.
 */
export type EnvelopeType = 'prekey' | 'message';

/**
 * What a decrypted payload is (the first byte of every padded plaintext, authenticated by the ratchet or the
 * sender key):
 * - `chat`: an application message (stored, shown).
 * - `sender_key`: a sender-key distribution for a group ({@link senderKeyDistribution}); pairwise only.
 * - `control`: ephemeral-like control data (typing, read receipts): application-defined, never stored.
 */
export type ContentKind = 'chat' | 'sender_key' | 'control';

/** A decrypted payload. */
export interface Content {
  readonly kind: ContentKind;
  readonly body: Uint8Array;
}

/** An opened sealed envelope. The sender fields are claims until the payload decrypts with the right session. */
export interface Envelope {
  readonly version: 1;
  readonly type: EnvelopeType;
  readonly senderUserId: string;
  readonly senderDeviceId: string;
  /** The client-made message id (22 base64url characters). */
  readonly messageId: string;
  readonly payload: Uint8Array;
}

/** This device's own sender key for one group: used to encrypt and sign group messages. */
export interface OwnSenderKey {
  readonly version: 2;
  readonly groupId: string;
  /** This device's user and device ids: named (signed) in the distribution and in every group message. */
  readonly senderUserId: string;
  readonly senderDeviceId: string;
  /** Random 16-byte id of this sender-key chain. */
  readonly distributionId: Uint8Array;
  readonly chainKey: Uint8Array;
  /** Index of the next message key. */
  readonly iteration: number;
  /** Ed25519 public key (32 bytes) members verify group messages with. */
  readonly signingPublicKey: Uint8Array;
  /** Ed25519 secret key (64 bytes). */
  readonly signingKey: Uint8Array;
}

/**
 * Another member device's sender key for one group, as received in a distribution. Identified by
 * (senderUserId, senderDeviceId, distributionId): a distribution id alone is chosen by the sender and proves nothing.
 */
export interface SenderKeyRecord {
  readonly version: 2;
  readonly groupId: string;
  readonly senderUserId: string;
  readonly senderDeviceId: string;
  readonly distributionId: Uint8Array;
  readonly chainKey: Uint8Array;
  /** Index of the next message key the chain will derive. */
  readonly iteration: number;
  readonly signingPublicKey: Uint8Array;
  /** Skipped message keys by iteration, oldest first. */
  readonly skipped: ReadonlyMap<number, Uint8Array>;
}

/** The clear (signed) header of a group message: which record to look up, and the message id it claims. */
export interface GroupMessageHeader {
  readonly senderUserId: string;
  readonly senderDeviceId: string;
  /** base64url of the 16-byte distribution id. */
  readonly distributionId: string;
  readonly iteration: number;
  /** 22 base64url characters. */
  readonly messageId: string;
}

/** A decrypted group message. */
export interface GroupMessage {
  readonly senderUserId: string;
  readonly senderDeviceId: string;
  readonly messageId: string;
  readonly content: Content;
}

/** A safety number for one pair of accounts. Both sides compute the same value. */
export interface SafetyNumber {
  /** 60 decimal digits. */
  readonly digits: string;
  /** The same digits in 12 groups of 5, for display. */
  readonly groups: readonly string[];
  /** Bytes for the QR code: version ‖ our 32-byte fingerprint ‖ the peer's 32-byte fingerprint (65 bytes). */
  readonly qr: Uint8Array;
}

/** Argon2id parameters (PROTOCOL.md's kdf answer). */
export interface KdfParams {
  /** 16 bytes, or base64url of 16 bytes. */
  readonly salt: Uint8Array | string;
  readonly opslimit: number;
  readonly memlimit: number;
}

/** The two keys split from the password's master key. */
export interface PasswordKeys {
  /** 32 bytes, what the relay authenticates (it stores a bcrypt hash of it). */
  readonly authKey: Uint8Array;
  /** `authKey` as base64url, the `authKey` field of PROTOCOL.md. */
  readonly authKeyBase64Url: string;
  /** 32 bytes, never sent: seals the key backup and the private material in IndexedDB. */
  readonly wrapKey: Uint8Array;
}

/** What the user decided about one contact's identity key. */
export interface ContactVerification {
  readonly userId: string;
  /** The contact's Ed25519 identity key, base64url. */
  readonly identityKey: string;
  /** True once the user compared safety numbers. */
  readonly verified: boolean;
}

/** The key backup stored (encrypted) on the relay: the identity key and the verification state. */
export interface KeyBackup {
  readonly identity: Identity;
  readonly contacts: readonly ContactVerification[];
}

/** A format-2 key backup: bound to one account, and numbered so a device can refuse an older one. */
export interface AccountBackup extends KeyBackup {
  readonly userId: string;
  /** Bumped by every write (read, merge, write revision + 1); a device remembers the highest it has seen. */
  readonly revision: number;
}
