// Accounts and sessions: KDF lookup without enumeration, sign-up, sign-in (bcrypt over the auth key, rate limited
// before any bcrypt work), rotating refresh tokens with reuse detection, sign-out, and access-token checks.
import { createHmac, randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';
import { RelayError } from '../errors.js';
import { KDF_PARAMS } from '../protocol.js';
import type { CreateAccountBody, KdfAnswer, RefreshBody, SessionAnswer, SignInBody } from '../protocol.js';
import type { NewSession, Store } from '../store/store.js';
import { checkedSignedPrekey, decodedOneTimePrekeys, fromBase64url, publicKeyFrom, toBase64url } from './keys.js';
import type { InFlightGauge } from '../metrics.js';
import type { SigninLimiter } from './rate-limit.js';
import { hashRefreshToken, newId } from './tokens.js';
import type { AccessClaims, TokenService } from './tokens.js';

export interface AccountServiceOptions {
  store: Store;
  tokens: TokenService;
  signinLimiter: SigninLimiter;
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

  async signUp(body: CreateAccountBody): Promise<SessionAnswer> {
    const username = body.username.toLowerCase();
    const identityKey = publicKeyFrom(body.identityKey, 'identityKey');
    const signedPrekey = checkedSignedPrekey(identityKey, body.signedPrekey);
    const oneTimePrekeys = decodedOneTimePrekeys(body.oneTimePrekeys);
    if (await this.o.store.findUserByUsername(username)) throw new RelayError('username_taken', 'username is taken');

    const authHash = await this.bcrypt(() => bcrypt.hash(bcryptInput(body.authKey), this.o.bcryptCost));
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
      session,
      now: this.o.now(),
    });
    if (outcome === 'username_taken') throw new RelayError('username_taken', 'username is taken');
    return answer;
  }

  /** `address` is the client's network address: failures are counted per username and address. */
  async signIn(body: SignInBody, address: string): Promise<SessionAnswer> {
    const username = body.username.toLowerCase();
    const limitKey = `${username}\n${address}`;
    const admission = await this.o.signinLimiter.admit(limitKey, this.o.now());
    if (!admission.ok) {
      throw new RelayError('rate_limited', 'too many failed sign-ins; try again later', {
        retryAfterSeconds: admission.retryAfterSeconds,
      });
    }
    const { slot } = admission;
    let userId: string;
    try {
      const user = await this.o.store.findUserByUsername(username);
      // An unknown user costs the same bcrypt comparison as a wrong key.
      const matches = await this.bcrypt(() =>
        bcrypt.compare(bcryptInput(body.authKey), user?.authHash ?? this.dummyHash),
      );
      if (!user || !matches) {
        slot.fail(this.o.now());
        throw new RelayError('unauthorized', UNAUTHORIZED);
      }
      slot.succeed();
      // Only after the key matched: a deactivated account is not told apart from a wrong key before that.
      if (user.disabled) throw new RelayError('forbidden', 'this account is deactivated');
      userId = user.userId;
    } catch (err) {
      if (!(err instanceof RelayError)) slot.succeed(); // an internal error is no failure
      throw err;
    }

    const owner = body.deviceId ? await this.o.store.getDeviceOwner(body.deviceId) : null;
    const reuse = body.deviceId !== undefined && owner === userId;
    const deviceId = reuse && body.deviceId ? body.deviceId : newId();
    const { session, answer } = this.newSession({ userId, deviceId });
    await this.o.store.startSession({ userId, deviceId, newDevice: !reuse, session, now: this.o.now() });
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
    if (!claims) throw new RelayError('unauthorized', 'invalid or expired access token');
    const session = await this.o.store.getSession(claims.familyId);
    if (!session || session.revoked || session.userId !== claims.userId || session.deviceId !== claims.deviceId) {
      throw new RelayError('unauthorized', 'the session has ended');
    }
    return claims;
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
