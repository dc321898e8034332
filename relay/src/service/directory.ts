// The key directory and per-account data: prekey uploads and counts, bundles (each one-time prekey handed out
// once), user search, the encrypted key backup, and settings.
import { RelayError } from '../errors.js';
import { LIMITS } from '../protocol.js';
import type { BundleAnswer, PrekeyCountAnswer, PutPrekeysBody, SettingsAnswer, UserSearchAnswer } from '../protocol.js';
import type { Store } from '../store/store.js';
import { checkedKemUpload, checkedSignedPrekey, decodedOneTimePrekeys, fromBase64url, toBase64url } from './keys.js';
import type { AccessClaims } from './tokens.js';

export class DirectoryService {
  constructor(
    private readonly store: Store,
    /** Told when a user changes sharePresence (the PresenceService). */
    private readonly onSharingChanged: (userId: string, share: boolean) => void,
  ) {}

  async putPrekeys(auth: AccessClaims, body: PutPrekeysBody): Promise<void> {
    const user = await this.requireUser(auth.userId);
    const signedPrekey = body.signedPrekey ? checkedSignedPrekey(user.identityKey, body.signedPrekey) : undefined;
    const oneTimePrekeys = body.oneTimePrekeys ? decodedOneTimePrekeys(body.oneTimePrekeys) : undefined;
    const keys = {
      ...(signedPrekey ? { signedPrekey } : {}),
      ...(oneTimePrekeys ? { oneTimePrekeys } : {}),
      ...checkedKemUpload(user.identityKey, body),
    };
    const outcome = await this.store.putPrekeys(auth.deviceId, keys, {
      oneTime: LIMITS.oneTimePrekeysStored,
      kemOneTime: LIMITS.kemOneTimePrekeysStored,
    });
    if (outcome === 'too_many') {
      throw new RelayError(
        'invalid_input',
        `a device holds at most ${LIMITS.oneTimePrekeysStored} one-time prekeys and ` +
          `${LIMITS.kemOneTimePrekeysStored} one-time KEM prekeys`,
      );
    }
  }

  prekeyCount(auth: AccessClaims): Promise<PrekeyCountAnswer> {
    return this.store.countPrekeys(auth.deviceId);
  }

  /** `takeFor`: the devices to take a one-time prekey for (null: every device). */
  async bundle(userId: string, takeFor: ReadonlySet<string> | null = null): Promise<BundleAnswer> {
    const bundle = await this.store.takeBundle(userId, takeFor);
    if (!bundle) throw new RelayError('not_found', 'no such user');
    // Every device of the account is in one list or the other (issue #16: the client checks them against the log).
    // Read after the bundle, so a device added or keyed in between is named here as not ready, never left out.
    const served = new Set(bundle.devices.map((d) => d.deviceId));
    const pendingDevices = (await this.store.listDevices(userId))
      .map((d) => d.deviceId)
      .filter((id) => !served.has(id));
    return {
      userId: bundle.userId,
      username: bundle.username,
      identityKey: toBase64url(bundle.identityKey),
      devices: bundle.devices.map((d) => ({
        deviceId: d.deviceId,
        signedPrekey: {
          keyId: d.signedPrekey.keyId,
          publicKey: toBase64url(d.signedPrekey.publicKey),
          signature: toBase64url(d.signedPrekey.signature),
        },
        oneTimePrekey: d.oneTimePrekey
          ? { keyId: d.oneTimePrekey.keyId, publicKey: toBase64url(d.oneTimePrekey.publicKey) }
          : null,
        kemPrekey: d.kemPrekey
          ? {
              keyId: d.kemPrekey.keyId,
              lastResort: d.kemPrekey.lastResort,
              publicKey: toBase64url(d.kemPrekey.publicKey),
              signature: toBase64url(d.kemPrekey.signature),
            }
          : null,
      })),
      pendingDevices,
    };
  }

  async search(prefix: string): Promise<UserSearchAnswer> {
    return { users: await this.store.searchUsers(prefix.toLowerCase(), LIMITS.userSearchResults) };
  }

  async putBackup(auth: AccessClaims, backup: string): Promise<void> {
    const bytes = fromBase64url(backup);
    if (bytes.length > LIMITS.backupBytes) {
      throw new RelayError('payload_too_large', `the backup is larger than ${LIMITS.backupBytes} bytes`);
    }
    await this.store.putBackup(auth.userId, bytes);
  }

  async getBackup(auth: AccessClaims): Promise<{ backup: string }> {
    const backup = await this.store.getBackup(auth.userId);
    if (!backup) throw new RelayError('not_found', 'no backup stored');
    return { backup: toBase64url(backup) };
  }

  async getSettings(auth: AccessClaims): Promise<SettingsAnswer> {
    const user = await this.requireUser(auth.userId);
    return { sharePresence: user.sharePresence };
  }

  async putSettings(auth: AccessClaims, settings: SettingsAnswer): Promise<void> {
    await this.store.setSharePresence(auth.userId, settings.sharePresence);
    this.onSharingChanged(auth.userId, settings.sharePresence);
  }

  private async requireUser(userId: string) {
    const user = await this.store.getUser(userId);
    if (!user) throw new RelayError('unauthorized', 'the account no longer exists');
    return user;
  }
}
