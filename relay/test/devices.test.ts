// GET /api/devices, PUT /api/devices/self/name, DELETE /api/devices/:deviceId and the `devices:changed` /
// `device:removed` events (issue #14): bad input, authorization (nobody lists, names or removes another account's
// devices), and what removal takes away (sockets, tokens, bundle entry, mailbox) from what the relay holds.
import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  connectDevice,
  connectError,
  messageId,
  signIn,
  signInWithKeys,
  signUp,
  startRelay,
  waitFor,
} from './helpers.js';
import type { TestRelay } from './helpers.js';

let t: TestRelay;
beforeAll(async () => {
  t = await startRelay();
});
afterAll(async () => {
  await t.close();
});

/** A sealed name as a client would send it: opaque bytes, base64url. */
const sealedName = (bytes = 105): string => randomBytes(bytes).toString('base64url');

describe('GET /api/devices', () => {
  it("lists the caller's own devices, oldest first, with added and last-active times and no name yet", async () => {
    const alice = await signUp(t.url);
    const second = await signIn(t.url, alice);
    const res = await api(t.url, 'GET', '/api/devices', { token: alice.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual([alice.deviceId, second.deviceId]);
    for (const d of res.body.devices) {
      expect(d.name).toBeNull();
      expect(typeof d.createdAt).toBe('number');
    }
    // Sign-in counts as activity; sign-up made the first device before any.
    expect(res.body.devices[1].lastActiveAt).toEqual(expect.any(Number));
  });

  it("never shows another account's devices", async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    await signIn(t.url, bob);
    const res = await api(t.url, 'GET', '/api/devices', { token: alice.accessToken });
    expect(res.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual([alice.deviceId]);
  });

  it('refuses a request without a valid access token', async () => {
    expect((await api(t.url, 'GET', '/api/devices')).status).toBe(401);
    expect((await api(t.url, 'GET', '/api/devices', { token: 'not.a.token' })).body.error.code).toBe('unauthorized');
  });

  it('records last activity when a device connects its socket', async () => {
    const alice = await signUp(t.url);
    const before = (await api(t.url, 'GET', '/api/devices', { token: alice.accessToken })).body.devices[0];
    expect(before.lastActiveAt).toBeNull();
    const device = await connectDevice(t.url, alice.accessToken);
    try {
      await expect
        .poll(async () => (await api(t.url, 'GET', '/api/devices', { token: alice.accessToken })).body.devices[0])
        .toMatchObject({ lastActiveAt: expect.any(Number) });
    } finally {
      device.close();
    }
  });
});

describe('PUT /api/devices/self/name', () => {
  it('stores the sealed name of the calling device only, as the bytes it was given', async () => {
    const alice = await signUp(t.url);
    const second = await signIn(t.url, alice);
    const name = sealedName();
    const res = await api(t.url, 'PUT', '/api/devices/self/name', { token: second.accessToken, body: { name } });
    expect(res.status).toBe(204);
    const list = (await api(t.url, 'GET', '/api/devices', { token: alice.accessToken })).body.devices;
    expect(list.find((d: { deviceId: string }) => d.deviceId === second.deviceId).name).toBe(name);
    expect(list.find((d: { deviceId: string }) => d.deviceId === alice.deviceId).name).toBeNull();
    // What the store holds is exactly the client's ciphertext.
    const stored = await t.relay.store.listDevices(alice.userId);
    expect(Buffer.from(stored.find((d) => d.deviceId === second.deviceId)?.name ?? []).toString('base64url')).toBe(
      name,
    );
  });

  it('refuses a name over 256 bytes, an empty or non-base64url one, and unknown keys', async () => {
    const alice = await signUp(t.url);
    const put = (body: unknown) => api(t.url, 'PUT', '/api/devices/self/name', { token: alice.accessToken, body });
    for (const body of [
      { name: sealedName(257) },
      { name: '' },
      { name: 'not base64url!' },
      { name: 42 },
      {},
      { name: sealedName(), deviceId: alice.deviceId },
    ]) {
      const res = await put(body);
      expect(res.status, JSON.stringify(body).slice(0, 60)).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
    expect((await put({ name: sealedName(256) })).status).toBe(204);
    expect((await api(t.url, 'PUT', '/api/devices/self/name', { body: { name: sealedName() } })).status).toBe(401);
  });

  it("tells the account's connected devices that the list changed, and nobody else", async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    const second = await signIn(t.url, alice);
    const first = await connectDevice(t.url, alice.accessToken);
    const stranger = await connectDevice(t.url, bob.accessToken);
    const seen: unknown[] = [];
    const strangerSeen: unknown[] = [];
    first.socket.on('devices:changed', (e: unknown) => seen.push(e));
    stranger.socket.on('devices:changed', (e: unknown) => strangerSeen.push(e));
    try {
      await api(t.url, 'PUT', '/api/devices/self/name', { token: second.accessToken, body: { name: sealedName() } });
      await waitFor(() => seen.length > 0, 5000, 'devices:changed');
      expect(seen).toEqual([{ reason: 'renamed' }]);
      // Bob's own change reaches bob; by then alice's event would have reached him too, had it been sent.
      await api(t.url, 'PUT', '/api/devices/self/name', { token: bob.accessToken, body: { name: sealedName() } });
      await waitFor(() => strangerSeen.length > 0, 5000, "bob's own event");
      expect(strangerSeen).toEqual([{ reason: 'renamed' }]);
    } finally {
      first.close();
      stranger.close();
    }
  });
});

describe('signing in on a new device', () => {
  it("tells the account's other connected devices at once", async () => {
    const alice = await signUp(t.url);
    const first = await connectDevice(t.url, alice.accessToken);
    const seen: unknown[] = [];
    first.socket.on('devices:changed', (e: unknown) => seen.push(e));
    try {
      await signIn(t.url, alice, alice.deviceId); // the same device again: nothing new
      await signIn(t.url, alice);
      await waitFor(() => seen.length > 0, 5000, 'devices:changed');
      expect(seen).toEqual([{ reason: 'added' }]);
    } finally {
      first.close();
    }
  });
});

describe('DELETE /api/devices/:deviceId', () => {
  it('removes another device: its sockets are told and dropped, its tokens and refresh token stop working', async () => {
    const alice = await signUp(t.url);
    const second = await signInWithKeys(t.url, alice);
    const removed = await connectDevice(t.url, second.accessToken);
    const told: unknown[] = [];
    const reasons: string[] = [];
    removed.socket.on('device:removed', () => told.push(true));
    removed.socket.on('disconnect', (reason) => reasons.push(reason));
    try {
      const res = await api(t.url, 'DELETE', `/api/devices/${second.deviceId}`, { token: alice.accessToken });
      expect(res.status).toBe(204);
      await waitFor(() => reasons.length > 0, 5000, 'the disconnect');
      expect(told).toEqual([true]);
      expect(reasons).toEqual(['io server disconnect']);
    } finally {
      removed.close();
    }
    // Its access token is still unexpired: every use says the device was removed.
    const again = await api(t.url, 'GET', '/api/devices', { token: second.accessToken });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('device_removed');
    expect(await connectError(t.url, second.accessToken)).toMatchObject({ error: { code: 'device_removed' } });
    const refresh = await api(t.url, 'POST', '/api/sessions/refresh', { body: { refreshToken: second.refreshToken } });
    expect(refresh.status).toBe(401);
    // The remaining device is untouched.
    const list = await api(t.url, 'GET', '/api/devices', { token: alice.accessToken });
    expect(list.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual([alice.deviceId]);
  });

  it('answers an expired but authentic token of a removed device with device_removed too', async () => {
    const alice = await signUp(t.url);
    const second = await signIn(t.url, alice);
    await api(t.url, 'DELETE', `/api/devices/${second.deviceId}`, { token: alice.accessToken });
    const claims = jwt.decode(second.accessToken, { json: true });
    const expired = jwt.sign({ dev: claims?.dev, fam: claims?.fam, iat: 1_000_000 }, t.jwtSecret, {
      algorithm: 'HS256',
      subject: alice.userId,
      expiresIn: 60,
    });
    const res = await api(t.url, 'GET', '/api/devices', { token: expired });
    expect(res.body.error.code).toBe('device_removed');
    // An expired token of a device that was not removed is a plain `unauthorized`.
    const own = jwt.decode(alice.accessToken, { json: true });
    const plain = jwt.sign({ dev: own?.dev, fam: own?.fam, iat: 1_000_000 }, t.jwtSecret, {
      algorithm: 'HS256',
      subject: alice.userId,
      expiresIn: 60,
    });
    expect((await api(t.url, 'GET', '/api/devices', { token: plain })).body.error.code).toBe('unauthorized');
  });

  it("drops the device from its account's bundle and deletes its prekeys and mailbox", async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    const second = await signInWithKeys(t.url, alice);
    // Bob writes to the second device; it never reads it.
    const sender = await connectDevice(t.url, bob.accessToken);
    try {
      const ack = await sender.send({
        id: messageId(),
        envelopes: [{ to: second.deviceId, body: Buffer.from('for the second device') }],
      });
      expect(ack.ok).toBe(true);
    } finally {
      sender.close();
    }
    const bundle = async () =>
      (await api(t.url, 'GET', `/api/users/${alice.userId}/bundle?devices=`, { token: bob.accessToken })).body
        .devices as { deviceId: string }[];
    expect((await bundle()).map((d) => d.deviceId)).toContain(second.deviceId); // baseline
    expect(await t.relay.store.countMailbox(second.deviceId)).toBe(1);
    expect((await t.relay.store.countPrekeys(second.deviceId)).oneTimePrekeys).toBe(2);

    expect((await api(t.url, 'DELETE', `/api/devices/${second.deviceId}`, { token: alice.accessToken })).status).toBe(
      204,
    );
    expect((await bundle()).map((d) => d.deviceId)).toEqual([alice.deviceId]);
    expect(await t.relay.store.countMailbox(second.deviceId)).toBe(0);
    expect(await t.relay.store.countPrekeys(second.deviceId)).toEqual({
      oneTimePrekeys: 0,
      signedPrekeyId: null,
      kemOneTimePrekeys: 0,
      kemLastResortPrekeyId: null,
    });
    expect(await t.relay.store.getDeviceOwner(second.deviceId)).toBeNull();
    // A send naming it now fails as for any unknown device.
    const later = await connectDevice(t.url, bob.accessToken);
    try {
      const ack = await later.send({ id: messageId(), envelopes: [{ to: second.deviceId, body: Buffer.from('x') }] });
      expect(ack).toMatchObject({ ok: false, error: { code: 'unknown_recipient' } });
    } finally {
      later.close();
    }
  });

  it("never removes another account's device: not_found, and the device keeps working", async () => {
    const alice = await signUp(t.url);
    const mallory = await signUp(t.url);
    const res = await api(t.url, 'DELETE', `/api/devices/${alice.deviceId}`, { token: mallory.accessToken });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    expect((await api(t.url, 'GET', '/api/devices', { token: alice.accessToken })).status).toBe(200);
    expect(await t.relay.store.getDeviceOwner(alice.deviceId)).toBe(alice.userId);
    // An unknown device id reads the same.
    const unknown = randomBytes(16).toString('base64url');
    expect((await api(t.url, 'DELETE', `/api/devices/${unknown}`, { token: mallory.accessToken })).status).toBe(404);
  });

  it('refuses removing the calling device itself, a malformed id, and no token', async () => {
    const alice = await signUp(t.url);
    const self = await api(t.url, 'DELETE', `/api/devices/${alice.deviceId}`, { token: alice.accessToken });
    expect(self.status).toBe(400);
    expect(self.body.error.code).toBe('invalid_input');
    const bad = await api(t.url, 'DELETE', '/api/devices/not-an-id', { token: alice.accessToken });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_input');
    expect((await api(t.url, 'DELETE', `/api/devices/${alice.deviceId}`)).status).toBe(401);
    expect(await t.relay.store.getDeviceOwner(alice.deviceId)).toBe(alice.userId);
  });

  it("tells the account's remaining devices that the list changed", async () => {
    const alice = await signUp(t.url);
    const second = await signIn(t.url, alice);
    const first = await connectDevice(t.url, alice.accessToken);
    const seen: unknown[] = [];
    first.socket.on('devices:changed', (e: unknown) => seen.push(e));
    try {
      await api(t.url, 'DELETE', `/api/devices/${second.deviceId}`, { token: alice.accessToken });
      await waitFor(() => seen.length > 0, 5000, 'devices:changed');
      expect(seen).toEqual([{ reason: 'removed' }]);
    } finally {
      first.close();
    }
  });
});

describe('signing in again on a removed device', () => {
  it('is answered device_removed after the right key, and creates no device', async () => {
    const alice = await signUp(t.url);
    const second = await signIn(t.url, alice);
    await api(t.url, 'DELETE', `/api/devices/${second.deviceId}`, { token: alice.accessToken });
    const again = await api(t.url, 'POST', '/api/sessions', {
      body: { username: alice.username, authKey: alice.authKey, deviceId: second.deviceId },
    });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('device_removed');
    expect(await t.relay.store.countDevices(alice.userId)).toBe(1);
    // A wrong key learns nothing about the device.
    const wrong = await api(t.url, 'POST', '/api/sessions', {
      body: { username: alice.username, authKey: randomBytes(32).toString('base64url'), deviceId: second.deviceId },
    });
    expect(wrong.body.error.code).toBe('unauthorized');
  });
});
