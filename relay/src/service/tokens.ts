// Access tokens (short-lived HS256 JWTs) and refresh tokens (random, stored only as their SHA-256).
import { createHash, createSecretKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import type { RefreshTokenRecord } from '../store/store.js';

/** Who an access token speaks for: a user, one of its devices, and the refresh family it was issued in. */
export interface AccessClaims {
  userId: string;
  deviceId: string;
  familyId: string;
}

const claimsSchema = z.object({ sub: z.string(), dev: z.string(), fam: z.string() });

export class TokenService {
  /** A KeyObject once, so jsonwebtoken does not re-derive (and try asymmetric parses of) the secret per call. */
  private readonly key: KeyObject;

  constructor(
    secret: string,
    readonly accessTtlSeconds: number,
    private readonly refreshTtlSeconds: number,
    private readonly now: () => number,
  ) {
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  issueAccess(claims: AccessClaims): string {
    return jwt.sign({ dev: claims.deviceId, fam: claims.familyId, iat: Math.floor(this.now() / 1000) }, this.key, {
      algorithm: 'HS256',
      subject: claims.userId,
      expiresIn: this.accessTtlSeconds,
    });
  }

  /**
   * The claims of a valid, unexpired HS256 token signed with our secret; null for anything else. With
   * `ignoreExpiration`, an expired one that is otherwise valid counts too (only to tell a removed device so).
   */
  verifyAccess(token: string, ignoreExpiration = false): AccessClaims | null {
    try {
      const payload = jwt.verify(token, this.key, {
        algorithms: ['HS256'],
        clockTimestamp: Math.floor(this.now() / 1000),
        ignoreExpiration,
      });
      const claims = claimsSchema.safeParse(payload);
      return claims.success ? { userId: claims.data.sub, deviceId: claims.data.dev, familyId: claims.data.fam } : null;
    } catch {
      return null;
    }
  }

  /** A fresh refresh token (32 random bytes, base64url) and what the store keeps of it. */
  newRefreshToken(): { token: string; record: RefreshTokenRecord } {
    const token = randomBytes(32).toString('base64url');
    return {
      token,
      record: { tokenHash: hashRefreshToken(token), expiresAt: this.now() + this.refreshTtlSeconds * 1000 },
    };
  }
}

export function hashRefreshToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A relay-assigned id: 16 random bytes as base64url (22 characters). */
export function newId(): string {
  return randomBytes(16).toString('base64url');
}
