// An account's own devices (issue #14): list them, name the calling device (a name sealed by the client: the relay
// stores opaque bytes), remove another of them. Removal revokes the device's session families, deletes its prekeys,
// mailbox and row (so it leaves bundles and device lists), remembers it as removed (its still-valid access tokens are
// answered `device_removed`), and tells the running relay to drop its sockets on every node.
import { RelayError } from '../errors.js';
import type { DeviceListAnswer, PutDeviceNameBody } from '../protocol.js';
import type { Store } from '../store/store.js';
import { fromBase64url, toBase64url } from './keys.js';
import type { AccessClaims } from './tokens.js';

export interface DeviceEvents {
  /** A device of `userId` was removed; `familyIds` are its session families (their sockets must go). */
  removed(userId: string, deviceId: string, familyIds: string[]): void;
  /** The device list of `userId` changed in another way (a device was named). */
  renamed(userId: string): void;
}

export class DeviceService {
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly events: DeviceEvents,
  ) {}

  /** The caller's own devices, oldest first; nobody can list another account's devices. */
  async list(auth: AccessClaims): Promise<DeviceListAnswer> {
    const devices = await this.store.listDevices(auth.userId);
    return {
      devices: devices.map((d) => ({
        deviceId: d.deviceId,
        createdAt: d.createdAt,
        lastActiveAt: d.lastActiveAt,
        name: d.name ? toBase64url(d.name) : null,
      })),
    };
  }

  /** Stores the calling device's sealed name (only the caller's own device: the path says `self`). */
  async rename(auth: AccessClaims, body: PutDeviceNameBody): Promise<void> {
    if (!(await this.store.setDeviceName(auth.userId, auth.deviceId, fromBase64url(body.name)))) {
      throw new RelayError('unauthorized', 'this device no longer exists');
    }
    this.events.renamed(auth.userId);
  }

  /**
   * Removes another device of the caller's account. The calling device itself is `invalid_input` (that is signing
   * out); a device that is not the caller's, or does not exist, is `not_found` alike (nothing about other accounts'
   * devices is revealed).
   */
  async remove(auth: AccessClaims, deviceId: string): Promise<void> {
    if (deviceId === auth.deviceId) {
      throw new RelayError('invalid_input', 'a device cannot remove itself: sign out on it instead');
    }
    const families = await this.store.removeOwnDevice(auth.userId, deviceId, this.now());
    if (families === null) throw new RelayError('not_found', 'no such device on this account');
    this.events.removed(auth.userId, deviceId, families);
  }
}
