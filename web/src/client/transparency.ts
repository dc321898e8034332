// Key transparency on the client (issue #16): every bundle and device list the relay serves is checked against the
// relay's public log — the account's latest logged entry, included in a signed checkpoint that is consistent with
// the last checkpoint this device saw — and this device watches its own account's entries for devices it does not
// know. A failed check is a ClientError('transparency_failed') and a lasting block on the contact, never a log line.
//
// The relay's checkpoint key is pinned on first use (stored sealed with the last checkpoint), unless configured.
import {
  bundleAnswerSchema,
  deviceListAnswerSchema,
  ktAccountAnswerSchema,
  ktCheckpointAnswerSchema,
  ktConsistencyAnswerSchema,
  ktEntriesAnswerSchema,
  ktReleaseAnswerSchema,
  type BundleAnswer,
} from '@weconnect/relay/protocol';
import { z } from 'zod';
import type { RelayApi } from './api';
import type { Crypto } from './crypto-loader';
import { assertTest } from './context';
import { ClientError } from './errors';
import type { LocalStore } from './store';
import { MAX_WITNESSES, parseLogKey, parseWitnessKeys, signs } from './transparency-keys';

type Kt = Crypto['kt'];
type Checkpoint = ReturnType<Kt['openCheckpoint']>;

const MAX_DISPUTED = 8;

/** secrets 'kt-state': the pinned relay key, the newest verified checkpoint, how far our own entries were read. */
const ktStateSchema = z.object({
  verifierKey: z.string().max(512),
  /** 'tofu': pinned from the relay's first answer; 'configured': given by the user or the deployment. */
  pinned: z.enum(['tofu', 'configured']),
  checkpoint: z.string().max(8192).nullable(),
  /** Own entries with a smaller index were checked. */
  selfChecked: z.number().int().min(0),
  /** Every device id of ours this device has seen in its own device list. */
  knownDevices: z.array(z.string()).max(10_000),
  /**
   * Checkpoints signed with the pinned key that the relay could not show to extend the stored one (a fork, a
   * rewrite, or a split view a contact carried): a re-check lifts no block until the relay proves each consistent.
   */
  disputed: z.array(z.string().max(8192)).max(MAX_DISPUTED).optional(),
  /** Witness cosignature keys the user configured in Settings (required besides the deployment's). */
  witnessKeys: z.array(z.string().max(512)).max(MAX_WITNESSES).optional(),
});
type KtState = z.infer<typeof ktStateSchema>;
const STATE_KEY = 'kt-state';

export interface TransparencyOptions {
  /** The relay's C2SP verifier key; without it the first one the relay names is pinned (trust on first use). */
  verifierKey?: string;
  /** Witness cosignature keys (C2SP, type 0x04): a checkpoint must carry a valid cosignature of each. */
  witnessKeys?: string[];
  /**
   * Test-only: no checks, for tests of the layers beneath key transparency (a lying relay that forges bundles is
   * caught here first; those tests study what happens when it is not, e.g. a forged key the relay did log).
   */
  dangerousTestOnlySkipChecks?: boolean;
}

export interface TransparencyEvents {
  /** A contact's keys failed the check: block sending to them and say why in the conversation. */
  contactFailed(bundle: BundleAnswer, reason: string): Promise<void>;
  /** Something about our own account or the relay's log is wrong: show it to the user. */
  alarm(text: string): void;
  /** A contact's re-check passed (`recheck`): lift the block. Runs before any other check can start. */
  contactPassed?(userId: string): Promise<void>;
}

export class KeyTransparency {
  readonly #c: Crypto;
  readonly #api: RelayApi;
  readonly #store: LocalStore;
  readonly #me: { userId: string; deviceId: string };
  readonly #options: TransparencyOptions;
  readonly #events: TransparencyEvents;
  readonly #ownIdentityKey: string;
  /** State changes one at a time (two checks must not both move the checkpoint from the same old one). */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(deps: {
    crypto: Crypto;
    api: RelayApi;
    store: LocalStore;
    me: { userId: string; deviceId: string };
    /** Our identity key in wire form (base64url): the only one our account's entries may name. */
    ownIdentityKey: string;
    options?: TransparencyOptions;
    events: TransparencyEvents;
  }) {
    this.#ownIdentityKey = deps.ownIdentityKey;
    if (deps.options?.dangerousTestOnlySkipChecks) assertTest();
    this.#c = deps.crypto;
    this.#api = deps.api;
    this.#store = deps.store;
    this.#me = deps.me;
    this.#options = deps.options ?? {};
    this.#events = deps.events;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #state(): Promise<KtState> {
    const stored = await this.#store.read('secrets', STATE_KEY, ktStateSchema);
    if (stored) return stored;
    let verifierKey = this.#options.verifierKey;
    const pinned = verifierKey ? 'configured' : 'tofu';
    verifierKey ??= (await this.#api.call('GET', '/api/kt/checkpoint', ktCheckpointAnswerSchema)).verifierKey;
    const state: KtState = { verifierKey, pinned, checkpoint: null, selfChecked: 0, knownDevices: [] };
    await this.#store.write('secrets', STATE_KEY, state);
    return state;
  }

  /**
   * Verifies a checkpoint note with the pinned key (and, unless `witnesses` is false, the required witnesses) and
   * proves it consistent with the newest one seen, which it replaces when larger. Throws `transparency_failed`.
   */
  async #accept(state: KtState, note: string, witnesses = true): Promise<Checkpoint> {
    const kt = this.#c.kt;
    let cp: Checkpoint;
    try {
      cp = kt.openCheckpoint(note, kt.parseVerifierKey(state.verifierKey));
      for (const w of witnesses ? this.#witnesses(state) : []) {
        if (kt.verifyCosignature(note, kt.parseVerifierKey(w)) === null) throw new Error('no witness cosignature');
      }
    } catch (e) {
      throw failure(`the relay's log checkpoint is not signed as required (${(e as Error).message})`);
    }
    if (state.checkpoint !== null) {
      const last = kt.parseCheckpointBody(kt.noteBody(state.checkpoint));
      const [small, big] = cp.size <= last.size ? [cp, last] : [last, cp];
      let ok: boolean;
      if (cp.origin !== last.origin) ok = false;
      else if (small.size === big.size) ok = kt.verifyConsistency(small.size, big.size, small.root, big.root, []);
      else {
        const answer = await this.#api
          .call('GET', `/api/kt/consistency?from=${small.size}&to=${big.size}`, ktConsistencyAnswerSchema)
          .catch((e: unknown) => {
            // A relay that cannot prove consistency (it refuses a size it signed) fails the check; an outage does not.
            if (e instanceof ClientError && TRANSIENT.has(e.code)) throw e;
            // Kept as disputed: a re-check asks for this proof again (an honest relay that failed once gives it then).
            return this.#dispute(state, note).then(() => {
              throw failure(
                `the relay cannot prove that its log of size ${big.size} extends the one of size ${small.size}`,
              );
            });
          });
        const proof = answer.proof.map((h) => this.#c.fromBase64Url(h, 32));
        ok = kt.verifyConsistency(small.size, big.size, small.root, big.root, proof);
      }
      if (!ok) {
        await this.#dispute(state, note);
        throw failure(
          `the relay's log of size ${cp.size} does not extend the one of size ${last.size} this device saw: its history changed`,
        );
      }
    }
    if (state.checkpoint === null || cp.size > kt.parseCheckpointBody(kt.noteBody(state.checkpoint)).size) {
      state.checkpoint = note;
      await this.#store.write('secrets', STATE_KEY, state);
    }
    return cp;
  }

  /** Decodes a leaf and checks its inclusion proof in the checkpoint. */
  #included(cp: Checkpoint, leaf: { index: number; entry: string; proof: string[] }) {
    const kt = this.#c.kt;
    const bytes = this.#c.fromBase64Url(leaf.entry);
    const proof = leaf.proof.map((h) => this.#c.fromBase64Url(h, 32));
    if (!kt.verifyInclusion(leaf.index, cp.size, kt.leafHash(bytes), proof, cp.root)) {
      throw failure(`an entry of the relay's log is not in its signed checkpoint`);
    }
    try {
      return kt.decodeEntry(bytes);
    } catch {
      throw failure('the relay logged an entry this app cannot read');
    }
  }

  /**
   * Checks a bundle (or device list) just received: the account's latest logged entry names the same user, username
   * and identity key, lists every device the bundle has, and has no device the bundle leaves out (unless the relay
   * names it as having no keys yet). A logged device left out is read again once (it may have been added after the
   * bundle was read) before it fails. On failure the contact is blocked and this throws.
   */
  async verifyBundle(bundle: BundleAnswer): Promise<void> {
    if (this.#options.dangerousTestOnlySkipChecks) return;
    await this.#reported(bundle, () =>
      this.#serial(async () => {
        const state = await this.#state();
        if ((await this.#check(state, bundle)).length === 0) return;
        await this.#checkAgain(state, bundle.userId);
      }),
    );
  }

  /**
   * Re-runs the check of a contact that failed it ("Check again"): every disputed checkpoint first — the relay must
   * now prove it consistent with the stored one, which it cannot do for a fork or a rewrite, so those stay — then a
   * fresh bundle (no one-time prekey taken) against a fresh checkpoint and proofs. When all pass, `contactPassed`
   * lifts the block; otherwise the contact stays blocked with the new reason and this throws `transparency_failed`.
   */
  async recheck(userId: string): Promise<void> {
    if (this.#options.dangerousTestOnlySkipChecks) return;
    const contact = await this.#store.contact(userId);
    if (!contact) throw new ClientError('invalid_input', 'This is not a contact.');
    const known = { userId, username: contact.username, identityKey: contact.identityKey, devices: [] };
    await this.#reported(known, () =>
      this.#serial(async () => {
        const state = await this.#state();
        for (const note of [...(state.disputed ?? [])]) {
          await this.#accept(state, note, false);
          state.disputed = (state.disputed ?? []).filter((n) => n !== note);
          await this.#store.write('secrets', STATE_KEY, state);
        }
        await this.#checkAgain(state, userId);
        await this.#events.contactPassed?.(userId);
      }),
    );
  }

  /** Checks a freshly read bundle (no one-time prekey taken); throws when any logged device is still left out. */
  async #checkAgain(state: KtState, userId: string): Promise<void> {
    const fresh = await this.#api.call(
      'GET',
      `/api/users/${encodeURIComponent(userId)}/bundle?devices=`,
      bundleAnswerSchema,
    );
    if (fresh.userId !== userId) throw failure('the relay answered with another account');
    const hidden = await this.#check(state, fresh);
    if (hidden.length > 0) {
      throw failure(
        hidden.length === 1
          ? 'the relay left out a device of this account that is in its public log'
          : `the relay left out ${hidden.length} devices of this account that are in its public log`,
      );
    }
  }

  /**
   * Checks a bundle against the account's latest logged entry in a checkpoint consistent with the stored one; throws
   * on any mismatch, and resolves to the logged devices the bundle accounts for neither as served nor as pending.
   */
  async #check(state: KtState, bundle: BundleAnswer): Promise<string[]> {
    const answer = await this.#api
      .call(
        'GET',
        `/api/kt/accounts/${encodeURIComponent(bundle.userId)}${this.#witnessed(state, '?')}`,
        ktAccountAnswerSchema,
      )
      .catch((e: unknown) => {
        if (e instanceof ClientError && e.code === 'not_found') throw failure('the account is not in the log');
        if (e instanceof ClientError && e.code === 'kt_unwitnessed') throw unwitnessed(bundle.username);
        throw this.#witnessRefused(state, e);
      });
    const cp = await this.#accept(state, answer.checkpoint);
    const entry = this.#included(cp, answer.leaf);
    if (entry.kind !== 'account' || entry.userId !== bundle.userId) throw failure('the log says this account is gone');
    if (entry.username !== bundle.username) throw failure('the log names this account differently');
    if (this.#c.toBase64Url(entry.identityKey) !== bundle.identityKey) {
      throw failure('the security key the relay served is not the one in its public log');
    }
    const logged = new Set(entry.deviceIds);
    if (bundle.devices.some((d) => !logged.has(d.deviceId))) {
      throw failure('the relay served a device that is not in its public log');
    }
    // A device without keys yet (signed in, prekeys not uploaded) is logged but cannot be in `devices`.
    const accounted = new Set([...bundle.devices.map((d) => d.deviceId), ...(bundle.pendingDevices ?? [])]);
    return entry.deviceIds.filter((d) => !accounted.has(d));
  }

  /** Runs a check of `bundle`'s account; a failure blocks the contact (or alarms, for our own account) and throws. */
  async #reported(bundle: BundleAnswer, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (e) {
      if (e instanceof ClientError && e.code === 'transparency_failed' && bundle.userId !== this.#me.userId) {
        await this.#events.contactFailed(bundle, e.message);
      } else if (e instanceof ClientError && e.code === 'transparency_failed') {
        this.#events.alarm(e.message);
      }
      throw e;
    }
  }

  /** Keeps a checkpoint the relay signed but could not show to extend the stored one (at most MAX_DISPUTED). */
  async #dispute(state: KtState, note: string): Promise<void> {
    const disputed = state.disputed ?? [];
    if (disputed.includes(note) || disputed.length >= MAX_DISPUTED) return;
    state.disputed = [...disputed, note];
    await this.#store.write('secrets', STATE_KEY, state);
  }

  /** The witnesses whose cosignatures a checkpoint must carry: the deployment's and the user's. */
  #witnesses(state: KtState): string[] {
    return [...new Set([...(this.#options.witnessKeys ?? []), ...(state.witnessKeys ?? [])])];
  }

  /**
   * Whether the relay can answer the account's latest entry in a checkpoint the required witnesses cosigned (always
   * true without witnesses): a cheap probe before a send retries, so waiting takes no one-time prekeys. Proves
   * nothing; `verifyBundle` still checks everything.
   */
  async witnessed(userId: string): Promise<boolean> {
    if (this.#options.dangerousTestOnlySkipChecks) return true;
    const state = await this.#state();
    if (this.#witnessIds(state).length === 0) return true;
    return this.#api
      .call(
        'GET',
        `/api/kt/accounts/${encodeURIComponent(userId)}${this.#witnessed(state, '?')}`,
        ktAccountAnswerSchema,
      )
      .then(
        () => true,
        (e: unknown) => !(e instanceof ClientError && e.code === 'kt_unwitnessed'),
      );
  }

  /** The C2SP key ids (hex) of the required witnesses; a malformed configured key fails the check. */
  #witnessIds(state: KtState): string[] {
    try {
      const kt = this.#c.kt;
      return this.#witnesses(state).map((w) =>
        Array.from(kt.parseVerifierKey(w).keyId, (b) => b.toString(16).padStart(2, '0')).join(''),
      );
    } catch (e) {
      throw failure(`a configured witness key is not valid (${(e as Error).message})`);
    }
  }

  /** A relay that refuses the witnesses we require (it keeps none of theirs) fails the check; other errors pass on. */
  #witnessRefused(state: KtState, e: unknown): unknown {
    if (e instanceof ClientError && e.code === 'invalid_input' && this.#witnessIds(state).length > 0) {
      return failure(
        'the relay does not keep cosignatures of the witnesses this app requires (no witness cosignature)',
      );
    }
    return e;
  }

  /** `<sep>witnessed=<ids>` when witnesses are required (see "Witnessed proofs" in PROTOCOL.md), else ''. */
  #witnessed(state: KtState, sep: '?' | '&'): string {
    const ids = this.#witnessIds(state);
    return ids.length === 0 ? '' : `${sep}witnessed=${ids.join(',')}`;
  }

  /**
   * Self-monitoring: reads our account's entries since the last check and raises an alarm for any identity key that
   * is not ours or any device this device never saw in its own device list (a device added behind our back, or one
   * the relay hides from us). Returns the alarms raised.
   */
  checkOwnAccount(): Promise<string[]> {
    if (this.#options.dangerousTestOnlySkipChecks) return Promise.resolve([]);
    return this.#serial(async () => {
      const state = await this.#state();
      const listed = await this.#api.call('GET', '/api/devices', deviceListAnswerSchema);
      const known = new Set([...state.knownDevices, ...listed.devices.map((d) => d.deviceId)]);
      const alarms: string[] = [];
      let since = state.selfChecked;
      for (;;) {
        const answer = await this.#api
          .call('GET', `/api/kt/self/entries?since=${since}${this.#witnessed(state, '&')}`, ktEntriesAnswerSchema)
          .catch((e: unknown) => {
            // Our newest entries are not cosigned yet: they are checked on a later round, not an alarm now.
            if (e instanceof ClientError && e.code === 'kt_unwitnessed') return null;
            throw this.#witnessRefused(state, e);
          });
        if (answer === null) break;
        const cp = await this.#accept(state, answer.checkpoint);
        for (const leaf of answer.entries) {
          if (leaf.index < since) throw failure('the relay answered with entries it was not asked for');
          const entry = this.#included(cp, leaf);
          if (entry.userId !== this.#me.userId) throw failure("the relay answered with another account's entries");
          if (entry.kind !== 'account') continue;
          if (this.#c.toBase64Url(entry.identityKey) !== this.#ownIdentityKey) {
            alarms.push('The relay published a security key for your account that is not yours.');
          }
          const unknown = entry.deviceIds.filter((d) => !known.has(d));
          if (unknown.length > 0) {
            alarms.push(
              unknown.length === 1
                ? "A device you don't know was added to your account."
                : `${unknown.length} devices you don't know were added to your account.`,
            );
            for (const d of unknown) known.add(d);
          }
        }
        since = answer.entries.length > 0 ? answer.entries[answer.entries.length - 1]!.index + 1 : cp.size;
        if (!answer.more) {
          since = Math.max(since, cp.size);
          break;
        }
      }
      // A witnessed checkpoint may be older than what an earlier round checked: never move back.
      state.selfChecked = Math.max(state.selfChecked, since);
      state.knownDevices = [...known].slice(-10_000);
      await this.#store.write('secrets', STATE_KEY, state);
      for (const a of alarms) this.#events.alarm(a);
      return alarms;
    });
  }

  /**
   * Gossip: a peer's checkpoint from an end-to-end encrypted payload. Signed by the relay's key, it must be the same
   * tree as ours at the same size, or one the relay proves consistent with ours; otherwise the relay shows different
   * logs to different people (a split view) and the conversation is stopped. Resolves to the failure, or null.
   */
  async compareGossip(from: string, note: string): Promise<string | null> {
    if (this.#options.dangerousTestOnlySkipChecks) return null;
    try {
      await this.#serial(async () => {
        const state = await this.#state();
        // A peer's checkpoint need not carry our witnesses' cosignatures (the peer may require none, or have seen
        // it before a witness cosigned): gossip checks the relay's signature and consistency, which is what tells
        // a split view. Our own checks (bundles, own entries) still require the witnesses.
        await this.#accept(state, note, false);
      });
      return null;
    } catch (e) {
      if (!(e instanceof ClientError && e.code === 'transparency_failed')) return null;
      const reason =
        "Key transparency check failed: this contact and you were shown different versions of the relay's key log, so the relay may be showing different keys to different people.";
      const contact = await this.#store.contact(from);
      if (contact)
        await this.#events.contactFailed(
          { userId: from, username: contact.username, identityKey: contact.identityKey, devices: [] },
          reason,
        );
      this.#events.alarm(reason);
      return reason;
    }
  }

  /**
   * The page checks its own release (issue #16): the release manifest `manifestBytes`, exactly as the relay served
   * it, must have a release entry in the relay's log, included in a checkpoint signed by the pinned key (and the
   * required witnesses) and consistent with the newest one this device holds. A relay that serves a manifest it did
   * not log, or a log history that changed, fails with `transparency_failed`; an outage throws its own code.
   * This proves what the relay committed to publicly, not that the running code is honest: code that checks itself
   * is no defence against hostile code.
   */
  verifyRelease(manifestBytes: Uint8Array): Promise<{ index: number; treeSize: number; keyId: string }> {
    return this.#serial(async () => {
      const kt = this.#c.kt;
      const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.from(manifestBytes)));
      const hex = [...hash].map((b) => b.toString(16).padStart(2, '0')).join('');
      const state = await this.#state();
      const answer = await this.#api
        .call('GET', `/api/kt/releases/${hex}`, ktReleaseAnswerSchema)
        .catch((e: unknown) => {
          if (e instanceof ClientError && e.code === 'not_found') {
            throw failure('the release manifest this relay serves is not in its public log');
          }
          throw e;
        });
      const cp = await this.#accept(state, answer.checkpoint);
      const bytes = this.#c.fromBase64Url(answer.leaf.entry);
      const proof = answer.leaf.proof.map((h) => this.#c.fromBase64Url(h, 32));
      if (!kt.verifyInclusion(answer.leaf.index, cp.size, kt.leafHash(bytes), proof, cp.root)) {
        throw failure(`the release manifest's log entry is not in the relay's signed checkpoint`);
      }
      let entry: ReturnType<Kt['decodeReleaseEntry']>;
      try {
        entry = kt.decodeReleaseEntry(bytes);
      } catch {
        throw failure('the relay answered with a log entry that is not a release');
      }
      if (!this.#c.constantTimeEqual(entry.manifestHash, hash)) {
        throw failure('the log entry the relay answered with is for another release manifest');
      }
      return { index: answer.leaf.index, treeSize: cp.size, keyId: entry.keyId };
    });
  }

  /** The newest checkpoint this device verified (for gossip), or null. */
  async latestCheckpoint(): Promise<string | null> {
    return (await this.#store.read('secrets', STATE_KEY, ktStateSchema))?.checkpoint ?? null;
  }

  /**
   * Settings: the relay's log key, given by the user (C2SP verifier key of an Ed25519 note key). Saved, as
   * 'configured', when it is the pinned key or the checkpoint this device holds verifies under it (a relay signing
   * with both). Otherwise nothing changes and this resolves to 'mismatch' — unless `replace` (asked for only after a
   * loud warning): then the key is pinned and the held checkpoint and disputes, which it cannot check, are dropped.
   * Throws `invalid_input` for a key that is not a log key.
   */
  async configureLogKey(text: string, replace = false): Promise<'saved' | 'mismatch'> {
    const kt = this.#c.kt;
    const { key, parsed } = parseLogKey(kt, text);
    return this.#serial(async () => {
      const stored = await this.#store.read('secrets', STATE_KEY, ktStateSchema);
      let state: KtState;
      if (!stored) {
        state = { verifierKey: key, pinned: 'configured', checkpoint: null, selfChecked: 0, knownDevices: [] };
      } else if (stored.verifierKey === key || (stored.checkpoint !== null && signs(kt, parsed, stored.checkpoint))) {
        state = { ...stored, verifierKey: key, pinned: 'configured' };
      } else if (!replace) {
        return 'mismatch';
      } else {
        // Another key is another log: its indices say nothing about the old one, so our own entries are read anew.
        const fresh = { checkpoint: null, disputed: [], selfChecked: 0 };
        state = { ...stored, ...fresh, verifierKey: key, pinned: 'configured' };
        this.#events.alarm(
          "You replaced the relay's log key. Checks start over from the relay's next checkpoint under the new key.",
        );
      }
      await this.#store.write('secrets', STATE_KEY, state);
      return 'saved';
    });
  }

  /**
   * Settings: the witness cosignature keys (C2SP, type 0x04) the user requires, one per entry (blank entries are
   * skipped; an empty list requires none besides the deployment's). Throws `invalid_input` naming the first bad line.
   */
  async configureWitnesses(lines: string[]): Promise<void> {
    const keys = parseWitnessKeys(this.#c.kt, lines);
    return this.#serial(async () => {
      const state = await this.#state();
      state.witnessKeys = keys;
      await this.#store.write('secrets', STATE_KEY, state);
    });
  }

  /** The witnesses required, for Settings: those the deployment names and those the user configured. */
  async witnessKeys(): Promise<{ deployment: string[]; configured: string[] }> {
    const s = await this.#store.read('secrets', STATE_KEY, ktStateSchema);
    return { deployment: [...(this.#options.witnessKeys ?? [])], configured: s?.witnessKeys ?? [] };
  }

  /** How the relay's key was pinned, and the key, for Settings. */
  async pinnedKey(): Promise<{ verifierKey: string; pinned: 'tofu' | 'configured' } | null> {
    const s = await this.#store.read('secrets', STATE_KEY, ktStateSchema);
    return s ? { verifierKey: s.verifierKey, pinned: s.pinned } : null;
  }
}

/** Errors that say nothing about the log (the check is retried on the next fetch). */
const TRANSIENT = new Set<string>(['relay_unreachable', 'rate_limited', 'unauthorized', 'device_removed']);

function failure(reason: string): ClientError {
  return new ClientError('transparency_failed', `Key transparency check failed: ${reason}.`);
}

/** The contact's newest log entry is not cosigned by the required witnesses yet: wait, do not block. */
function unwitnessed(username: string): ClientError {
  return new ClientError(
    'kt_unwitnessed',
    `Waiting for the log's witness: ${username}'s newest keys are not cosigned yet. The message will be sent once they are.`,
  );
}
