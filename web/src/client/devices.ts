// Devices (issue #14): this account's devices as the relay lists them, with names sealed under a key derived from the
// account's backup key (the relay stores only ciphertext); naming this device (a default from the user agent);
// removing another device; noticing a new device of ours (a notice) or of a contact (a line in the conversation);
// and telling the engine when this device itself was removed.

import type { RelayApi } from './api';
import { request } from './api';
import type { Crypto } from './crypto-loader';
import { ClientError, describeError } from './errors';
import { backupKeySchema } from './schemas';
import { KeyedSerialQueue } from './serial-queue';
import type { LocalStore } from './store';
import type { Me } from './types';
import { deviceListAnswerSchema, type DeviceSummary } from '@weconnect/relay/protocol';
import { z } from 'zod';

/** One device of this account as the Devices list shows it. */
export interface DeviceView {
  deviceId: string;
  /** The opened name; "Unnamed device" before it named itself, "Unknown device" when it does not open. */
  name: string;
  createdAt: number;
  lastActiveAt: number | null;
  /** This browser. */
  current: boolean;
}

/** What the Settings → Devices section calls. */
export interface DevicesApi {
  list(): Promise<DeviceView[]>;
  /** Renames this device (1–64 UTF-8 bytes). */
  renameThisDevice(name: string): Promise<void>;
  /** Removes another device of this account: its keys stop receiving anything. */
  remove(deviceId: string): Promise<void>;
  /** Checks a contact's device list now (when their conversation is opened): a new device shows in it. */
  checkContact(userId: string): Promise<void>;
}

export const UNNAMED_DEVICE = 'Unnamed device';
const UNKNOWN_DEVICE = 'Unknown device';
/** A new device that has not named itself after this long is announced without a name. */
const NAME_GRACE_MS = 2 * 60_000;
/** A contact's device list is checked at most this often by opening their conversation. */
const CONTACT_CHECK_MS = 5_000;

/** secrets 'known-devices': this account's devices this device has already seen (or announced). */
const knownOwnSchema = z.object({ ids: z.array(z.string()).max(1000) });
/** secrets ['contact-devices', userId]: a contact's devices seen under their identity key. */
const knownContactSchema = z.object({ identityKey: z.string(), ids: z.array(z.string()).max(1000) });

/** A plain default name from the browser: "Chromium on Linux". */
export function defaultDeviceName(nav: unknown = (globalThis as { navigator?: unknown }).navigator): string {
  const n = (nav ?? {}) as {
    userAgent?: string;
    userAgentData?: { brands?: { brand: string }[]; platform?: string };
  };
  const ua = n.userAgent ?? '';
  const brands = (n.userAgentData?.brands ?? []).map((b) => b.brand);
  const browser = brands.includes('Microsoft Edge')
    ? 'Edge'
    : brands.includes('Opera')
      ? 'Opera'
      : brands.includes('Google Chrome')
        ? 'Chrome'
        : brands.includes('Chromium')
          ? 'Chromium'
          : /Firefox\//.test(ua)
            ? 'Firefox'
            : /Edg\//.test(ua)
              ? 'Edge'
              : /Chrom(e|ium)\//.test(ua)
                ? 'Chromium'
                : /Safari\//.test(ua)
                  ? 'Safari'
                  : 'Web browser';
  const platform = n.userAgentData?.platform || ua;
  const system = /Android/i.test(platform)
    ? 'Android'
    : /iPhone|iPad|iOS/i.test(platform)
      ? 'iOS'
      : /Mac/i.test(platform)
        ? 'macOS'
        : /Win/i.test(platform)
          ? 'Windows'
          : /CrOS|Chrome OS/i.test(platform)
            ? 'ChromeOS'
            : /Linux/i.test(platform)
              ? 'Linux'
              : '';
  return system ? `${browser} on ${system}` : browser;
}

export interface DevicesDeps {
  crypto: Crypto;
  store: LocalStore;
  api: RelayApi;
  me: Me;
  now: () => number;
  /** Shows a notice (a new device of ours). */
  notice(text: string): void;
  /** Adds a notice line to a conversation's log, if that conversation exists. */
  logNotice(conv: string, text: string): Promise<void>;
  /** Fetches a contact's device list (no one-time prekeys taken); its result reaches `contactDevicesListed`. */
  fetchDeviceList(userId: string): Promise<void>;
  /** This device was removed from the account by another of its devices. */
  removed(): void;
}

export class Devices implements DevicesApi {
  readonly #d: DevicesDeps;
  readonly #queue = new KeyedSerialQueue();
  readonly #contactChecked = new Map<string, number>();
  #checking: Promise<void> | null = null;
  #checkAgain = false;

  constructor(deps: DevicesDeps) {
    this.#d = deps;
  }

  async #nameKey(): Promise<Uint8Array | null> {
    return (await this.#d.store.read('secrets', 'backup-key', backupKeySchema))?.key ?? null;
  }

  #open(key: Uint8Array | null, d: DeviceSummary): string {
    if (d.name === null) return UNNAMED_DEVICE;
    if (!key) return UNKNOWN_DEVICE;
    try {
      const c = this.#d.crypto;
      return c.openDeviceName(key, this.#d.me.userId, d.deviceId, c.fromBase64Url(d.name));
    } catch {
      return UNKNOWN_DEVICE;
    }
  }

  async #fetch(): Promise<DeviceView[]> {
    const answer = await this.#d.api.call('GET', '/api/devices', deviceListAnswerSchema);
    const key = await this.#nameKey();
    return answer.devices.map((d) => ({
      deviceId: d.deviceId,
      name: this.#open(key, d),
      createdAt: d.createdAt,
      lastActiveAt: d.lastActiveAt,
      current: d.deviceId === this.#d.me.deviceId,
    }));
  }

  async list(): Promise<DeviceView[]> {
    return this.#fetch();
  }

  async renameThisDevice(name: string): Promise<void> {
    const key = await this.#nameKey();
    if (!key) {
      throw new ClientError('not_signed_in', 'Sign in with your password once on this device to name it.');
    }
    const c = this.#d.crypto;
    let sealed: Uint8Array;
    try {
      sealed = c.sealDeviceName(key, this.#d.me.userId, this.#d.me.deviceId, name);
    } catch {
      throw new ClientError('invalid_input', `A device name is 1 to ${c.MAX_DEVICE_NAME_BYTES} characters long.`);
    }
    await this.#d.api.call('PUT', '/api/devices/self/name', null, { name: c.toBase64Url(sealed) });
  }

  async remove(deviceId: string): Promise<void> {
    if (deviceId === this.#d.me.deviceId) {
      throw new ClientError('invalid_input', 'To remove this device, sign out on it.');
    }
    await this.#d.api.call('DELETE', `/api/devices/${encodeURIComponent(deviceId)}`, null);
    const known = await this.#d.store.read('secrets', 'known-devices', knownOwnSchema);
    if (known) {
      await this.#d.store.write('secrets', 'known-devices', { ids: known.ids.filter((id) => id !== deviceId) });
    }
  }

  /**
   * Lists this account's devices and compares them with the ones this device knows: a device it has not seen is
   * announced (once it has a name, or without one after two minutes). Names this device on first run. Runs on every
   * connection and on each `devices:changed`; calls that arrive while one runs make it run once more.
   */
  check(): Promise<void> {
    if (this.#checking) {
      this.#checkAgain = true;
      return this.#checking;
    }
    this.#checking = (async () => {
      do {
        this.#checkAgain = false;
        await this.#checkOnce();
      } while (this.#checkAgain);
    })()
      .catch((e: unknown) => {
        if (e instanceof ClientError && e.code === 'relay_unreachable') return;
        console.warn('the device list was not checked:', describeError(e));
      })
      .finally(() => {
        this.#checking = null;
      });
    return this.#checking;
  }

  async #checkOnce(): Promise<void> {
    const devices = await this.#fetch();
    const self = devices.find((d) => d.current);
    if (self && self.name === UNNAMED_DEVICE && (await this.#nameKey())) {
      await this.renameThisDevice(defaultDeviceName());
    }
    const store = this.#d.store;
    const known = await store.read('secrets', 'known-devices', knownOwnSchema);
    const listed = devices.map((d) => d.deviceId);
    if (!known) {
      // First run on this device: whatever exists now is not news to this user.
      await store.write('secrets', 'known-devices', { ids: listed });
      return;
    }
    const ids = new Set(known.ids.filter((id) => listed.includes(id)));
    for (const d of devices) {
      if (ids.has(d.deviceId) || d.current) {
        ids.add(d.deviceId);
        continue;
      }
      const waiting = d.name === UNNAMED_DEVICE && this.#d.now() - d.createdAt < NAME_GRACE_MS;
      if (waiting) continue; // it names itself in a moment, and the relay tells us then
      this.#d.notice(`A new device was added to your account: ${d.name}`);
      ids.add(d.deviceId);
    }
    await store.write('secrets', 'known-devices', { ids: [...ids] });
  }

  /**
   * A removed device learns it from the relay (`device:removed`, or `device_removed` on a request). When the relay
   * only refused the refresh token, the last access token (expired, but authentic) tells the two apart.
   */
  async probeRemoved(expiredAccessToken: string | null): Promise<boolean> {
    if (!expiredAccessToken) return false;
    try {
      await request(this.#d.api.base, 'GET', '/api/devices', null, undefined, expiredAccessToken);
      return false;
    } catch (e) {
      if (e instanceof ClientError && e.code === 'device_removed') {
        this.#d.removed();
        return true;
      }
      return false;
    }
  }

  async checkContact(userId: string): Promise<void> {
    if (userId === this.#d.me.userId) return;
    const last = this.#contactChecked.get(userId);
    if (last !== undefined && this.#d.now() - last < CONTACT_CHECK_MS) return;
    this.#contactChecked.set(userId, this.#d.now());
    await this.#d.fetchDeviceList(userId).catch((e: unknown) => {
      if (!(e instanceof ClientError && (e.code === 'relay_unreachable' || e.code === 'identity_changed'))) {
        console.warn('the contact device list was not checked:', describeError(e));
      }
    });
  }

  /**
   * A contact's device list (a bundle) under their identity key: a device not seen before, while the key is the one
   * seen with the earlier list, puts "<name> added a new device" in the conversation. A first list, or a list under a
   * changed key (the key-change banner speaks then), is recorded silently.
   */
  contactDevicesListed(
    contact: { userId: string; username: string; identityKey: string },
    ids: string[],
  ): Promise<void> {
    if (contact.userId === this.#d.me.userId) return Promise.resolve();
    return this.#queue.run(contact.userId, async () => {
      const key = ['contact-devices', contact.userId] as const;
      const known = await this.#d.store.read('secrets', key, knownContactSchema);
      if (known && known.identityKey === contact.identityKey) {
        const fresh = ids.filter((id) => !known.ids.includes(id));
        if (fresh.length > 0) await this.#d.logNotice(contact.userId, `${contact.username} added a new device`);
        if (fresh.length === 0 && ids.length === known.ids.length) return;
      }
      await this.#d.store.write('secrets', key, { identityKey: contact.identityKey, ids });
    });
  }

  /**
   * A session started with a contact's device this device had none with (its first message, or a send): news only
   * when the contact's known list (under the same identity key) lacks it. Without a list, the next one is the start.
   */
  contactDeviceSeen(userId: string, deviceId: string): Promise<void> {
    if (userId === this.#d.me.userId) return Promise.resolve();
    return this.#queue.run(userId, async () => {
      const contact = await this.#d.store.contact(userId);
      const key = ['contact-devices', userId] as const;
      const known = await this.#d.store.read('secrets', key, knownContactSchema);
      if (!contact || !known || known.identityKey !== contact.identityKey || known.ids.includes(deviceId)) return;
      await this.#d.logNotice(userId, `${contact.username} added a new device`);
      await this.#d.store.write('secrets', key, { identityKey: known.identityKey, ids: [...known.ids, deviceId] });
    });
  }
}
