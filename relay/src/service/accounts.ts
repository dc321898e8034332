// Accounts and sessions: KDF lookup without enumeration, sign-up (registration mode, per-address rate), sign-in
// (bcrypt over the auth key, rate limited per username and address and per address before any bcrypt work, every
// hash through one fair queue), the device cap, rotating refresh tokens with reuse detection, sign-out, and
// access-token checks.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';
import { RelayError } from '../errors.js';
import { KDF_PARAMS, LIMITS } from '../protocol.js';
import type {
  ChangePasswordBody,
  CreateAccountBody,
  KdfAnswer,
  RefreshBody,
  SessionAnswer,
  SignInBody,
} from '../protocol.js';
import type { NewSession, Store, UserRecord } from '../store/store.js';
import { deleteAccount } from './admin.js';
import {
  checkedKemUpload,
  checkedSignedPrekey,
  decodedOneTimePrekeys,
  fromBase64url,
  publicKeyFrom,
  toBase64url,
} from './keys.js';
import type { InFlightGauge } from '../metrics.js';
import type { HashQueue } from './hash-queue.js';
import { inviteHash } from './invites.js';
import { addressKey } from './rate-limit.js';
import type { EventLimiter, SigninLimiter } from './rate-limit.js';
import { hashRefreshToken, newId } from './tokens.js';
import type { AccessClaims, TokenService } from './tokens.js';

export interface AccountServiceOptions {
  store: Store;
  tokens: TokenService;
  /** Failed sign-ins per username and address. */
  signinLimiter: SigninLimiter;
  /** Failed sign-ins per address (IPv6: /64) across usernames. */
  addressLimiter: SigninLimiter;
  /** Sign-ups per address (IPv6: /64). */
  signupLimiter: EventLimiter;
  /** Where every bcrypt hash and comparison waits its turn. */
  hashQueue: HashQueue;
  registration: 'open' | 'closed' | 'invite';
  /** Devices per account; a sign-in that would add one more is refused (device_limit). */
  maxDevices: number;
  bcryptCost: number;
  /** A sign-in's refresh family ends this long after it started, however often it was refreshed. */
  sessionMaxAgeMs: number;
  /** Key of the keyed hash that makes the stable fake salts of unknown usernames. */
  fakeSaltKey: Buffer;
  now: () => number;
  /** Counts bcrypt work queued or running (the metrics' bcrypt queue). */
  bcryptInFlight?: InFlightGauge;
  /** Called after a refresh family was revoked (sign-out, token reuse), e.g. to drop its sockets. */
  onFamilyRevoked: (familyId: string) => void;
  /** Called after a sign-in created a new device of the account (its other devices are told). */
  onDeviceAdded?: (userId: string, deviceId: string) => void;
}

const UNAUTHORIZED = 'wrong username or auth key';

/**
 * bcrypt stops at the first NUL byte, so it never sees the raw 32 auth-key bytes: it hashes their lower-case hex
 * (64 characters, below bcrypt's 72-byte limit), which is a one-to-one encoding.
 */
function bcryptInput(authKey: string): string {
  return fromBase64url(authKey).toString('hex');
}

export class AccountService {
  private dummyHash = '';

  constructor(private readonly o: AccountServiceOptions) {}

  /** Prepares the hash that unknown usernames are compared against, at the configured cost. */
  async init(): Promise<void> {
    this.dummyHash = await bcrypt.hash(randomBytes(32).toString('hex'), this.o.bcryptCost);
  }

  /** The salt of an existing account, or a stable fake one: both answers look the same. */
  async kdf(username: string): Promise<KdfAnswer> {
    const name = username.toLowerCase();
    const user = await this.o.store.findUserByUsername(name);
    const salt = user
      ? user.salt
      : createHmac('sha256', this.o.fakeSaltKey).update(name, 'utf8').digest().subarray(0, 16);
    return { salt: toBase64url(salt), ...KDF_PARAMS };
  }

  /** `address` is the client's network address: sign-ups are counted per address (IPv6: per /64). */
  async signUp(body: CreateAccountBody, address: string): Promise<SessionAnswer> {
    const username = body.username.toLowerCase();
    if (this.o.registration === 'closed') {
      throw new RelayError('registration_closed', 'this relay takes no new accounts');
    }
    if (this.o.registration === 'invite' && body.inviteToken === undefined) {
      throw new RelayError('invite_invalid', 'this relay takes new accounts by invitation only');
    }
    const from = addressKey(address);
    const signupKey = `signup:${createHash('sha256').update(from, 'utf8').digest('base64url')}`;
    if (!(await this.o.signupLimiter.take(signupKey, this.o.now()))) {
      throw new RelayError('rate_limited', 'too many sign-ups from this address; try again later', {
        retryAfterSeconds: 60,
      });
    }
    const identityKey = publicKeyFrom(body.identityKey, 'identityKey');
    const signedPrekey = checkedSignedPrekey(identityKey, body.signedPrekey);
    const oneTimePrekeys = decodedOneTimePrekeys(body.oneTimePrekeys);
    const kem = checkedKemUpload(identityKey, body);
    if (await this.o.store.findUserByUsername(username)) throw new RelayError('username_taken', 'username is taken');

    const authHash = await this.bcrypt(() =>
      this.o.hashQueue.run(from, () => bcrypt.hash(bcryptInput(body.authKey), this.o.bcryptCost)),
    );
    // The invite is spent last, just before the account is written, and given back if the name was taken meanwhile.
    const invite = this.o.registration === 'invite' && body.inviteToken ? inviteHash(body.inviteToken) : null;
    const inviteExpiry = invite ? await this.o.store.takeInvite(invite, this.o.now()) : null;
    if (invite && inviteExpiry === null)
      throw new RelayError('invite_invalid', 'the invite is unknown, used or expired');
    const userId = newId();
    const deviceId = newId();
    const { session, answer } = this.newSession({ userId, deviceId });
    const outcome = await this.o.store.createAccount({
      userId,
      username,
      salt: fromBase64url(body.salt),
      authHash,
      identityKey,
      deviceId,
      signedPrekey,
      oneTimePrekeys,
      ...kem,
      session,
      now: this.o.now(),
    });
    if (outcome === 'username_taken') {
      if (invite && inviteExpiry !== null) await this.o.store.putInvite(invite, inviteExpiry);
      throw new RelayError('username_taken', 'username is taken');
    }
    return answer;
  }

  /**
   * `address` is the client's network address: failures are counted per username and address, and per address
   * (IPv6: per /64) across usernames; the bcrypt comparison waits in the fair queue.
   */
  /**
   * Checks `authKey` against the account of `username` as a sign-in does, under the same limits: failures counted per
   * username and address and per address, every attempt refused while limited, the bcrypt check in the fair queue,
   * an unknown user costing the same as a wrong key. The user when it matches; `unauthorized` otherwise.
   */
  private async provePassword(username: string, authKey: string, address: string): Promise<UserRecord> {
    const from = addressKey(address);
    const byAddress = await this.o.addressLimiter.admit(from, this.o.now());
    if (!byAddress.ok) {
      throw new RelayError('rate_limited', 'too many failed sign-ins from this address; try again later', {
        retryAfterSeconds: byAddress.retryAfterSeconds,
      });
    }
    const admission = await this.o.signinLimiter.admit(`${username}\n${address}`, this.o.now());
    if (!admission.ok) {
      byAddress.slot.cancel();
      throw new RelayError('rate_limited', 'too many failed sign-ins; try again later', {
        retryAfterSeconds: admission.retryAfterSeconds,
      });
    }
    const { slot } = admission;
    let judged = false;
    try {
      const user = await this.o.store.findUserByUsername(username);
      // An unknown user costs the same bcrypt comparison as a wrong key.
      // The gauge counts the check from when it joins the queue: queued and running alike.
      const matches = await this.bcrypt(() =>
        this.o.hashQueue.run(from, () => bcrypt.compare(bcryptInput(authKey), user?.authHash ?? this.dummyHash)),
      );
      judged = true;
      if (!user || !matches) {
        slot.fail(this.o.now());
        byAddress.slot.fail(this.o.now());
        throw new RelayError('unauthorized', UNAUTHORIZED);
      }
      slot.succeed();
      // One good account must not wipe the address's failures with other names: the attempt just counts for nothing.
      byAddress.slot.cancel();
      return user;
    } catch (err) {
      // An internal error or a full queue judged nothing: the failure history stays as it was.
      if (!judged) {
        slot.cancel();
        byAddress.slot.cancel();
      }
      throw err;
    }
  }

  /**
   * Replaces the password of the signed-in account: proves the current auth key (limited like sign-in failures),
   * then writes the new salt, the hash of the new auth key and the re-wrapped key backup in one atomic store write,
   * on the condition that the hash is still the one just checked (two concurrent changes: the second is refused).
   * Sessions stay valid: the account's other devices stay signed in.
   */
  async changePassword(auth: AccessClaims, body: ChangePasswordBody, address: string): Promise<void> {
    const backup = fromBase64url(body.backup);
    if (backup.length > LIMITS.backupBytes) {
      throw new RelayError('payload_too_large', `backup must be at most ${LIMITS.backupBytes} bytes`);
    }
    const user = await this.provePasswordOf(auth, body.authKey, address);
    const authHash = await this.bcrypt(() =>
      this.o.hashQueue.run(addressKey(address), () => bcrypt.hash(bcryptInput(body.newAuthKey), this.o.bcryptCost)),
    );
    const changed = await this.o.store.changePassword(user.userId, user.authHash, {
      salt: fromBase64url(body.newSalt),
      authHash,
      backup,
    });
    if (!changed) throw new RelayError('unauthorized', 'the password was changed meanwhile');
  }

  /**
   * Erases the signed-in account after proving its auth key (limited like sign-in failures): everything of it goes
   * (the operator's deleteAccount), and its sockets are dropped.
   */
  async deleteOwnAccount(auth: AccessClaims, authKey: string, address: string): Promise<void> {
    const user = await this.provePasswordOf(auth, authKey, address);
    const families = await deleteAccount(this.o.store, user.userId);
    if (families === null) throw new RelayError('not_found', 'no such account');
    for (const familyId of families) this.o.onFamilyRevoked(familyId);
  }

  private async provePasswordOf(auth: AccessClaims, authKey: string, address: string): Promise<UserRecord> {
    const account = await this.o.store.getUser(auth.userId);
    if (!account) throw new RelayError('unauthorized', 'the session has ended');
    const user = await this.provePassword(account.username, authKey, address);
    if (user.userId !== auth.userId) throw new RelayError('unauthorized', UNAUTHORIZED);
    return user;
  }

  async signIn(body: SignInBody, address: string): Promise<SessionAnswer> {
    const user = await this.provePassword(body.username.toLowerCase(), body.authKey, address);
    // Only after the key matched: a deactivated account is not told apart from a wrong key before that.
    if (user.disabled) throw new RelayError('forbidden', 'this account is deactivated');
    const userId = user.userId;

    const owner = body.deviceId ? await this.o.store.getDeviceOwner(body.deviceId) : null;
    const reuse = body.deviceId !== undefined && owner === userId;
    // A device its owner removed does not come back under its old id (only after the right key, as above): the
    // client learns it was removed and wipes what it holds, instead of carrying old keys into a new device.
    if (body.deviceId !== undefined && owner === null) await this.throwIfRemoved(body.deviceId);
    const deviceId = reuse && body.deviceId ? body.deviceId : newId();
    const { session, answer } = this.newSession({ userId, deviceId });
    const started = await this.o.store.startSession({
      userId,
      deviceId,
      newDevice: !reuse,
      session,
      now: this.o.now(),
      maxDevices: this.o.maxDevices,
    });
    if (started === 'device_limit') {
      throw new RelayError(
        'device_limit',
        `this account has ${this.o.maxDevices} devices, the most this relay allows: remove one, or sign in on a device it already has`,
      );
    }
    await this.touch(deviceId);
    if (!reuse) this.o.onDeviceAdded?.(userId, deviceId);
    return answer;
  }

  async refresh(body: RefreshBody): Promise<SessionAnswer> {
    const { token, record } = this.o.tokens.newRefreshToken();
    const now = this.o.now();
    const outcome = await this.o.store.rotateRefreshToken(
      hashRefreshToken(body.refreshToken),
      record,
      now,
      now - this.o.sessionMaxAgeMs,
    );
    if (outcome.status === 'reused') {
      this.o.onFamilyRevoked(outcome.familyId);
      throw new RelayError('unauthorized', 'refresh token was already used; the session is revoked');
    }
    if (outcome.status === 'invalid') throw new RelayError('unauthorized', 'refresh token is not valid');
    const { userId, deviceId, familyId } = outcome.session;
    await this.touch(deviceId);
    return {
      userId,
      deviceId,
      accessToken: this.o.tokens.issueAccess({ userId, deviceId, familyId }),
      refreshToken: token,
      expiresIn: this.o.tokens.accessTtlSeconds,
    };
  }

  async signOut(auth: AccessClaims): Promise<void> {
    await this.o.store.revokeFamily(auth.familyId);
    this.o.onFamilyRevoked(auth.familyId);
  }

  /**
   * The claims of a valid access token whose family is not revoked and whose account and device still exist.
   * Throws `unauthorized` for anything else (`token` is untrusted input).
   */
  async authenticate(token: unknown): Promise<AccessClaims> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) {
      throw new RelayError('unauthorized', 'missing or malformed access token');
    }
    const claims = this.o.tokens.verifyAccess(token);
    if (!claims) {
      // An authentic token that only expired: its device may have been removed, which the client must learn (it
      // wipes its keys then, instead of asking for the password). The store is read only for such tokens.
      const expired = this.o.tokens.verifyAccess(token, true);
      if (expired) await this.throwIfRemoved(expired.deviceId);
      throw new RelayError('unauthorized', 'invalid or expired access token');
    }
    const session = await this.o.store.getSession(claims.familyId);
    if (!session || session.revoked || session.userId !== claims.userId || session.deviceId !== claims.deviceId) {
      if (!session) await this.throwIfRemoved(claims.deviceId);
      throw new RelayError('unauthorized', 'the session has ended');
    }
    return claims;
  }

  /** Records activity of a device: at sign-in, token refresh and socket connection (never per message). */
  async touch(deviceId: string): Promise<void> {
    await this.o.store.touchDevice(deviceId, this.o.now());
  }

  private async throwIfRemoved(deviceId: string): Promise<void> {
    if ((await this.o.store.deviceRemovedAt(deviceId)) !== null) {
      throw new RelayError('device_removed', 'this device was removed from its account by another of its devices');
    }
  }

  /** Of these refresh families, the ones that no longer authorize anything (revoked, or their device is gone). */
  async endedFamilies(familyIds: readonly string[]): Promise<string[]> {
    const ended: string[] = [];
    for (const familyId of new Set(familyIds)) {
      const session = await this.o.store.getSession(familyId);
      if (!session || session.revoked) ended.push(familyId);
    }
    return ended;
  }

  private async bcrypt<T>(work: () => Promise<T>): Promise<T> {
    this.o.bcryptInFlight?.inc();
    try {
      return await work();
    } finally {
      this.o.bcryptInFlight?.dec();
    }
  }

  private newSession(ids: { userId: string; deviceId: string }): { session: NewSession; answer: SessionAnswer } {
    const familyId = newId();
    const { token, record } = this.o.tokens.newRefreshToken();
    return {
      session: { familyId, refresh: record },
      answer: {
        ...ids,
        accessToken: this.o.tokens.issueAccess({ ...ids, familyId }),
        refreshToken: token,
        expiresIn: this.o.tokens.accessTtlSeconds,
      },
    };
  }
}
