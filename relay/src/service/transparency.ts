// The key transparency log (issue #16): appends an entry whenever an account's published keys or devices change,
// signs checkpoints (C2SP signed notes) with the relay's Ed25519 key, and answers proofs from stored nodes.
// Appends are serialized in this process and compare-and-set in the store, so several nodes (or the admin tool)
// appending at once all land, each on its own index, and the latest entry of an account matches its state.
import { createHash, sign, type KeyObject } from 'node:crypto';
import { RelayError } from '../errors.js';
import type { Bytes, KtCosignatureRecord, KtLeafRecord, Store } from '../store/store.js';
import {
  appendNodes,
  appendSiblings,
  consistencyProof,
  encodeKtEntry,
  encodeReleaseKtEntry,
  inclusionProof,
  leafHash,
  rootOf,
  withNodes,
  type KtEntry,
} from './kt-tree.js';
import { checkCosignature, parseWitnessKey, splitSignedNote, type WitnessKey } from './kt-witness.js';

export interface KtSigner {
  privateKey: KeyObject;
  /** 32 raw bytes. */
  publicKey: Bytes;
  /** The checkpoint origin (and key name); default `weconnect.kt/<16 hex of the key's hash>`. */
  origin?: string;
}

export interface SignedCheckpoint {
  size: number;
  root: Bytes;
  note: string;
}

/** Cosignatures kept per witness (its newest sizes): what `?witnessed=` answers are made from. */
export const KT_COSIGNATURES_KEPT = 32;
/** The Retry-After of a kt_unwitnessed answer: about how often a following witness cosigns. */
export const KT_UNWITNESSED_RETRY_SECONDS = 5;

/** Most entries of one account one answer carries. */
export const KT_ENTRIES_PAGE = 100;
const MAX_APPEND_ATTEMPTS = 50;

const b64 = (b: Bytes): string => Buffer.from(b).toString('base64');

/** The C2SP key id of an Ed25519 note key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key)[0:4]. */
function keyId(name: string, publicKey: Bytes): Buffer {
  return createHash('sha256').update(`${name}\n`).update(Buffer.of(1)).update(publicKey).digest().subarray(0, 4);
}

/**
 * The store key of a release entry: not an account id (ids are 22 base64url characters; this has a colon), so no
 * account's lookups, backfill or deletion ever touch it.
 */
const releaseOwner = (hashHex: string): string => `release:${hashHex}`;

/** The release key id a manifest document names (64 hex), or '-' when it names none. */
function releaseKeyIdOf(bytes: Bytes): string {
  try {
    const doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as { keyId?: unknown };
    return typeof doc.keyId === 'string' && /^[0-9a-f]{64}$/u.test(doc.keyId) ? doc.keyId : '-';
  } catch {
    return '-';
  }
}

export class KeyTransparency {
  readonly origin: string;
  /** The C2SP verifier key clients pin: `<origin>+<key id hex>+<base64(0x01 ‖ key)>`. */
  readonly verifierKey: string;
  /** The appends of this process, one at a time. */
  private tail: Promise<unknown> = Promise.resolve();
  private cached: SignedCheckpoint | null = null;
  /** The last older checkpoint a witnessed answer was made from (the tree is append-only: it never changes). */
  private olderCached: SignedCheckpoint | null = null;
  /** The witnesses the operator configured (KT_WITNESSES). */
  readonly witnesses: readonly WitnessKey[];
  /** Manifest hashes this process has logged (or is logging). */
  private readonly releases = new Map<string, Promise<KtLeafRecord>>();

  constructor(
    private readonly store: Store,
    private readonly signer: KtSigner,
    witnessKeys: readonly string[] = [],
  ) {
    this.witnesses = witnessKeys.map(parseWitnessKey);
    this.origin =
      signer.origin ?? `weconnect.kt/${createHash('sha256').update(signer.publicKey).digest('hex').slice(0, 16)}`;
    this.verifierKey = `${this.origin}+${keyId(this.origin, signer.publicKey).toString('hex')}+${b64(
      Buffer.concat([Buffer.of(1), signer.publicKey]),
    )}`;
  }

  /**
   * Appends the account's current state (or a tombstone once it is gone) unless its latest entry already says
   * the same. Retries on a lost race until the latest entry matches the state read after the append.
   */
  record(userId: string): Promise<void> {
    return this.append(async (size) => {
      const latest = await this.store.ktLatestOf(userId, size);
      const state = await this.stateOf(userId, latest ? latest.seq + 1 : 0);
      if (state === null) return { result: undefined };
      if (latest && encodeKtEntry({ ...state, seq: latest.seq }).equals(latest.entry)) return { result: undefined };
      return { leaf: { index: size, userId, seq: state.seq, entry: encodeKtEntry(state) }, result: undefined };
    });
  }

  /**
   * The one append path, one at a time on this node: at the current size (after finishing a leaf another node left
   * half-appended), `plan` says what to append, if anything; the append is a compare-and-set, retried on a lost race.
   */
  private append<T>(plan: (size: number) => Promise<{ leaf?: KtLeafRecord; result: T }>): Promise<T> {
    const run = this.tail.then(async () => {
      for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt += 1) {
        const size = await this.store.ktSize();
        const stray = await this.store.ktLeaf(size);
        if (stray) {
          await this.finish(stray);
          continue;
        }
        const { leaf, result } = await plan(size);
        if (!leaf || (await this.store.ktAppend(leaf, await this.nodesFor(leaf))) === 'appended') return result;
      }
      throw new Error('key transparency: could not append after many attempts');
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Logs the release manifest `bytes` (exactly as served) unless it is logged already: one leaf per manifest hash,
   * appended compare-and-set like the accounts' entries, so restarts and several nodes serving the same build all
   * find the one leaf. Resolves once it is in the log; the relay serves a manifest only after this.
   */
  logRelease(bytes: Bytes): Promise<KtLeafRecord> {
    const hash = createHash('sha256').update(bytes).digest();
    const known = this.releases.get(hash.toString('hex'));
    if (known) return known;
    const owner = releaseOwner(hash.toString('hex'));
    const entry = encodeReleaseKtEntry(releaseKeyIdOf(bytes), hash);
    const run = this.append(async (size) => {
      const latest = await this.store.ktLatestOf(owner, size);
      if (latest) return { result: latest };
      const leaf = { index: size, userId: owner, seq: 0, entry };
      return { leaf, result: leaf };
    });
    this.releases.set(hash.toString('hex'), run);
    run.catch(() => this.releases.delete(hash.toString('hex')));
    return run;
  }

  /** The release entry of the manifest with SHA-256 `hashHex` in the tree of `size` leaves, with its proof. */
  async releaseOf(hashHex: string, size: number): Promise<{ leaf: KtLeafRecord; proof: Bytes[] } | null> {
    return this.latestOf(releaseOwner(hashHex), size);
  }

  /**
   * Logs an account that has no entry yet (made before the log existed); true when it now has one. The first request
   * for such an account backfills it, so an upgraded relay needs no migration pass over every account.
   */
  async backfill(userId: string): Promise<boolean> {
    if (await this.store.ktLatestOf(userId, Number.MAX_SAFE_INTEGER)) return false;
    await this.record(userId);
    return (await this.store.ktLatestOf(userId, Number.MAX_SAFE_INTEGER)) !== null;
  }

  /** What the account's next entry says; null when there is nothing to log (no account, never logged or gone). */
  private async stateOf(userId: string, seq: number): Promise<KtEntry | null> {
    const user = await this.store.getUser(userId);
    if (!user) return seq === 0 ? null : { kind: 'deleted', seq, userId };
    const devices = await this.store.listDevices(userId);
    return {
      kind: 'account',
      seq,
      userId,
      username: user.username,
      identityKey: user.identityKey,
      deviceIds: devices.map((d) => d.deviceId),
    };
  }

  private async nodesFor(leaf: KtLeafRecord) {
    const keys = appendSiblings(leaf.index);
    const found = await this.store.ktNodes(keys);
    if (found.length !== keys.length) throw new Error('key transparency: a sibling node is missing');
    return appendNodes(
      leaf.index,
      leafHash(leaf.entry),
      found.map((n) => n.hash),
    );
  }

  /** Completes a leaf stored without its nodes (MongoDB: a crash, or another node mid-append). */
  private async finish(leaf: KtLeafRecord): Promise<void> {
    await this.store.ktFinish(leaf.index + 1, await this.nodesFor(leaf));
  }

  /** The latest checkpoint, signed. Ed25519 is deterministic: one size always gives the same note. */
  async checkpoint(): Promise<SignedCheckpoint> {
    const size = await this.store.ktSize();
    if (this.cached?.size === size) return this.cached;
    const root = await withNodes(
      (keys) => this.store.ktNodes(keys),
      (node) => rootOf(node, size),
    );
    const body = `${this.origin}\n${size}\n${b64(root)}\n`;
    const signature = sign(null, Buffer.from(body, 'utf8'), this.signer.privateKey);
    const line = b64(Buffer.concat([keyId(this.origin, this.signer.publicKey), signature]));
    const signed = { size, root, note: `${body}\n\u2014 ${this.origin} ${line}\n` };
    if (!this.cached || size > this.cached.size) this.cached = signed;
    return signed;
  }

  /** The latest checkpoint, with the witness cosignatures held for it appended: what every answer serves. */
  async servedCheckpoint(): Promise<SignedCheckpoint> {
    const signed = await this.checkpoint();
    if (this.witnesses.length === 0) return signed;
    const held = await this.store.ktCosignatures(this.witnesses.map((w) => w.keyId.toString('hex')));
    return this.withLines(signed, held);
  }

  /**
   * The newest checkpoint that carries a stored cosignature of every witness in `keyIds` (key ids, hex; each must be
   * one of KT_WITNESSES, else `invalid_input`), with every held cosignature of its size appended; null when there is
   * none. Sizes are tried newest first; a stored cosignature whose root is not the log's at its size is ignored.
   */
  async witnessedCheckpoint(keyIds: readonly string[]): Promise<SignedCheckpoint | null> {
    for (const id of keyIds) {
      if (!this.witnesses.some((w) => w.keyId.toString('hex') === id)) {
        throw new RelayError('invalid_input', `query: ${id} is not the key id of a witness this relay takes`);
      }
    }
    const held = await this.store.ktCosignatures(this.witnesses.map((w) => w.keyId.toString('hex')));
    const latest = await this.checkpoint();
    const sizes = [...new Set(held.map((c) => c.size))].filter((n) => n <= latest.size).sort((a, b) => b - a);
    for (const size of sizes) {
      const at = held.filter((c) => c.size === size);
      if (!keyIds.every((id) => at.some((c) => c.keyId === id))) continue;
      const signed = size === latest.size ? latest : await this.checkpointAt(size);
      const rooted = at.filter((c) => Buffer.from(c.root).equals(signed.root));
      if (keyIds.every((id) => rooted.some((c) => c.keyId === id))) return this.withLines(signed, rooted);
    }
    return null;
  }

  /** `signed` with the held cosignature lines of its size and root appended, one per witness in configured order. */
  private withLines(signed: SignedCheckpoint, held: readonly KtCosignatureRecord[]): SignedCheckpoint {
    const lines = this.witnesses.flatMap((w) => {
      const id = w.keyId.toString('hex');
      const c = held.find((h) => h.keyId === id && h.size === signed.size && Buffer.from(h.root).equals(signed.root));
      return c ? [c.line] : [];
    });
    return lines.length === 0 ? signed : { ...signed, note: signed.note + lines.join('') };
  }

  /** The relay's signed checkpoint of the tree of `size` leaves (size ≤ the log's size); the last one is cached. */
  private async checkpointAt(size: number): Promise<SignedCheckpoint> {
    if (this.olderCached?.size === size) return this.olderCached;
    const body = await this.bodyAt(size);
    const root = Buffer.from(body.split('\n')[2]!, 'base64');
    const signature = sign(null, Buffer.from(body, 'utf8'), this.signer.privateKey);
    const line = b64(Buffer.concat([keyId(this.origin, this.signer.publicKey), signature]));
    this.olderCached = { size, root, note: `${body}\n\u2014 ${this.origin} ${line}\n` };
    return this.olderCached;
  }

  /**
   * Takes a witness's cosignature(s) of a checkpoint: the note's body must be the one this relay signs at its size
   * (the tree is append-only and Ed25519 deterministic, so re-deriving the root at that size from the stored nodes
   * tells), every signature line but the relay's own must be a valid cosignature of a configured witness (else
   * `forbidden` for an unknown key, `invalid_input` for a bad one). Each is stored (see KT_COSIGNATURES_KEPT), so
   * every node serves it, after a restart too; a cosignature of an older size replaces nothing newer.
   */
  async addCosignatures(note: string): Promise<void> {
    const { body, lines } = splitSignedNote(note);
    const size = Number(/^[^\n]*\n(0|[1-9][0-9]{0,15})\n/u.exec(body)?.[1] ?? NaN);
    const latest = await this.checkpoint();
    if (!Number.isSafeInteger(size) || size > latest.size || body !== (await this.bodyAt(size))) {
      throw new RelayError('invalid_input', 'checkpoint: not a checkpoint this relay signed');
    }
    const ownId = keyId(this.origin, this.signer.publicKey);
    const found: KtCosignatureRecord[] = [];
    for (const { name, raw } of lines) {
      if (name === this.origin && raw.subarray(0, 4).equals(ownId)) continue;
      const witness = this.witnesses.find((w) => w.name === name && w.keyId.equals(raw.subarray(0, 4)));
      if (!witness) throw new RelayError('forbidden', `checkpoint: ${name} is not a witness this relay takes`);
      const line = checkCosignature(witness, body, raw);
      const root = Buffer.from(body.split('\n')[2]!, 'base64');
      found.push({ keyId: witness.keyId.toString('hex'), size, root, timestamp: Number(raw.readBigUInt64BE(4)), line });
    }
    if (found.length === 0) throw new RelayError('invalid_input', 'checkpoint: no witness cosignature');
    for (const c of found) await this.store.ktPutCosignature(c, KT_COSIGNATURES_KEPT);
  }

  /** The checkpoint body this relay signs for the tree of `size` leaves (size ≤ the log's size). */
  private async bodyAt(size: number): Promise<string> {
    const root = await withNodes(
      (keys) => this.store.ktNodes(keys),
      (node) => rootOf(node, size),
    );
    return `${this.origin}\n${size}\n${b64(root)}\n`;
  }

  inclusion(index: number, size: number): Promise<Bytes[]> {
    return withNodes(
      (keys) => this.store.ktNodes(keys),
      (node) => inclusionProof(node, index, size),
    );
  }

  consistency(size1: number, size2: number): Promise<Bytes[]> {
    return withNodes(
      (keys) => this.store.ktNodes(keys),
      (node) => consistencyProof(node, size1, size2),
    );
  }

  /** The account's latest entry in the tree of `size` leaves with its inclusion proof; null when it has none. */
  async latestOf(userId: string, size: number): Promise<{ leaf: KtLeafRecord; proof: Bytes[] } | null> {
    const leaf = await this.store.ktLatestOf(userId, size);
    return leaf ? { leaf, proof: await this.inclusion(leaf.index, size) } : null;
  }

  /** The index of the account's latest stored entry (also one whose append is not finished), or null. */
  async latestIndexOf(userId: string): Promise<number | null> {
    return (await this.store.ktLatestOf(userId, Number.MAX_SAFE_INTEGER))?.index ?? null;
  }

  /** The account's entries from index `since` in the tree of `size` leaves, each with its inclusion proof. */
  async entriesOf(userId: string, since: number, size: number): Promise<{ leaf: KtLeafRecord; proof: Bytes[] }[]> {
    const leaves = await this.store.ktEntriesOf(userId, since, size, KT_ENTRIES_PAGE);
    return Promise.all(leaves.map(async (leaf) => ({ leaf, proof: await this.inclusion(leaf.index, size) })));
  }
}

/**
 * The store, with every change to what the directory publishes (sign-up, a new device, a removed device, a deleted
 * account) followed by a log append. Every path that makes such a change goes through these store methods, so
 * none can bypass the log — the HTTP routes, the operator's tool and tests alike.
 */
export function loggingStore(store: Store, kt: KeyTransparency): Store {
  const hooks: Partial<Store> = {
    async createAccount(account) {
      const outcome = await store.createAccount(account);
      if (outcome === 'created') await kt.record(account.userId);
      return outcome;
    },
    async startSession(args) {
      const outcome = await store.startSession(args);
      if (outcome === 'started' && args.newDevice) await kt.record(args.userId);
      return outcome;
    },
    async removeOwnDevice(userId, deviceId, now) {
      const families = await store.removeOwnDevice(userId, deviceId, now);
      if (families !== null) await kt.record(userId);
      return families;
    },
    async deleteDevice(deviceId) {
      const owner = await store.getDeviceOwner(deviceId);
      const families = await store.deleteDevice(deviceId);
      if (families !== null && owner !== null) await kt.record(owner);
      return families;
    },
    async deleteUser(userId) {
      const deleted = await store.deleteUser(userId);
      if (deleted) {
        // The deletion is a change in the tree (a tombstone), and then nothing readable of the account stays.
        await kt.record(userId);
        await store.ktForget(userId);
      }
      return deleted;
    },
  };
  return new Proxy(store, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in hooks) return hooks[prop as keyof Store];
      const value: unknown = Reflect.get(target, prop);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
