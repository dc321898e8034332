// Blocks: PUT/DELETE/GET /api/blocks, and what a block does — the blocked user's direct sends to the blocker's
// devices are dropped before they are stored (and answered as if stored), the blocker's presence is hidden from
// them, and they cannot put the blocker in a group. What the adversary (the blocked user) holds is its answers;
// what the blocker would get is read from the relay's own mailbox rows.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockIndex } from '../src/service/block-index.js';
import { api, connectDevice, messageId, signUp, startRelay, waitFor } from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

let t: TestRelay;
beforeAll(async () => {
  t = await startRelay({ MAILBOX_MAX_ENTRIES: '3' });
});
afterAll(() => t.close());

const put = (who: TestAccount, userId: string) =>
  api(t.url, 'PUT', `/api/blocks/${userId}`, { token: who.accessToken });
const del = (who: TestAccount, userId: string) =>
  api(t.url, 'DELETE', `/api/blocks/${userId}`, { token: who.accessToken });
const list = async (who: TestAccount) => (await api(t.url, 'GET', '/api/blocks', { token: who.accessToken })).body;

/** The ids of the entries stored for a device (what it would get when it connects). */
async function stored(deviceId: string): Promise<string[]> {
  return (await t.relay.store.fetchMailbox(deviceId, 0, 100, 1 << 20)).map((e) => e.id);
}

const direct = (to: string[], id = messageId()) => ({
  id,
  envelopes: to.map((d) => ({ to: d, body: randomBytes(32) })),
});

describe('the block-list routes', () => {
  it('blocks, lists and unblocks a user, each idempotent', async () => {
    const alice = await signUp(t.url);
    const mallory = await signUp(t.url);
    const carol = await signUp(t.url);
    expect(await list(alice)).toEqual({ blocks: [] });
    expect((await put(alice, mallory.userId)).status).toBe(204);
    expect((await put(alice, mallory.userId)).status).toBe(204);
    expect((await put(alice, carol.userId)).status).toBe(204);
    expect(await list(alice)).toEqual({
      blocks: [
        { userId: mallory.userId, username: mallory.username.toLowerCase() },
        { userId: carol.userId, username: carol.username.toLowerCase() },
      ],
    });
    expect((await del(alice, mallory.userId)).status).toBe(204);
    expect((await del(alice, mallory.userId)).status).toBe(204);
    expect(await list(alice)).toEqual({ blocks: [{ userId: carol.userId, username: carol.username.toLowerCase() }] });
  });

  it('rejects a malformed id, the caller itself and an unknown user', async () => {
    const alice = await signUp(t.url);
    for (const bad of ['x', 'not-an-id-at-all-not-an-id', `${alice.userId.slice(0, 21)}B`, '%00']) {
      for (const res of [await put(alice, bad), await del(alice, bad)]) {
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('invalid_input');
      }
    }
    const self = await put(alice, alice.userId);
    expect(self.status).toBe(400);
    expect(self.body.error.code).toBe('invalid_input');
    const unknown = await put(alice, randomBytes(16).toString('base64url'));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    expect(await list(alice)).toEqual({ blocks: [] });
  });

  it('rejects a body other than none or {}', async () => {
    const alice = await signUp(t.url);
    const mallory = await signUp(t.url);
    for (const method of ['PUT', 'DELETE']) {
      for (const body of [{ userId: mallory.userId }, [], 'x', null]) {
        const res = await api(t.url, method, `/api/blocks/${mallory.userId}`, { token: alice.accessToken, body });
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('invalid_input');
      }
    }
    expect(await list(alice)).toEqual({ blocks: [] });
    const empty = await api(t.url, 'PUT', `/api/blocks/${mallory.userId}`, { token: alice.accessToken, body: {} });
    expect(empty.status).toBe(204);
  });

  it('requires authentication', async () => {
    const alice = await signUp(t.url);
    expect((await api(t.url, 'PUT', `/api/blocks/${alice.userId}`)).status).toBe(401);
    expect((await api(t.url, 'DELETE', `/api/blocks/${alice.userId}`)).status).toBe(401);
    expect((await api(t.url, 'GET', '/api/blocks')).status).toBe(401);
  });

  it("shows and changes only the caller's own list", async () => {
    const alice = await signUp(t.url);
    const bob = await signUp(t.url);
    const mallory = await signUp(t.url);
    await put(alice, mallory.userId);
    expect(await list(bob)).toEqual({ blocks: [] });
    // Bob "unblocking" mallory ends only bob's block (there is none): alice's stays, and still drops the sends.
    expect((await del(bob, mallory.userId)).status).toBe(204);
    expect((await list(alice)).blocks).toHaveLength(1);
    const device = await connectDevice(t.url, mallory.accessToken);
    expect(await device.send(direct([alice.deviceId]))).toMatchObject({ ok: true });
    device.close();
    expect(await stored(alice.deviceId)).toEqual([]);
  });
});

describe('a blocked sender', () => {
  let alice: TestAccount;
  let mallory: TestAccount;
  let carol: TestAccount;
  let sender: TestDevice;
  beforeAll(async () => {
    alice = await signUp(t.url);
    mallory = await signUp(t.url);
    carol = await signUp(t.url);
    sender = await connectDevice(t.url, mallory.accessToken);
  });
  afterAll(() => sender.close());

  it('has its direct sends to the blocker dropped, answered exactly as a stored send is', async () => {
    // Baseline: before the block, a send is stored for alice's device.
    const before = await sender.send(direct([alice.deviceId]));
    expect(before).toEqual({ ok: true, ts: expect.any(Number) as number });
    expect(await stored(alice.deviceId)).toHaveLength(1);

    expect((await put(alice, mallory.userId)).status).toBe(204);
    const id = messageId();
    const ack = await sender.send(direct([alice.deviceId], id));
    expect(ack).toEqual({ ok: true, ts: expect.any(Number) as number });
    expect(Object.keys(ack).sort()).toEqual(Object.keys(before).sort());
    expect(await stored(alice.deviceId)).not.toContain(id);
    expect(await stored(alice.deviceId)).toHaveLength(1);
    // A resend is answered with the first ts, as for any stored send.
    expect(await sender.send(direct([alice.deviceId], id))).toEqual(ack);
  });

  it('still reaches the other recipients of the same send', async () => {
    const id = messageId();
    expect(await sender.send(direct([alice.deviceId, carol.deviceId], id))).toMatchObject({ ok: true });
    expect(await stored(carol.deviceId)).toContain(id);
    expect(await stored(alice.deviceId)).not.toContain(id);
  });

  it("is answered ok when the blocker's mailbox is full (no mailbox_full tells it apart)", async () => {
    // Fill alice's mailbox (cap 3 in this relay) from carol.
    const carolDevice = await connectDevice(t.url, carol.accessToken);
    while ((await stored(alice.deviceId)).length < 3) {
      expect(await carolDevice.send(direct([alice.deviceId]))).toMatchObject({ ok: true });
    }
    expect(await carolDevice.send(direct([alice.deviceId]))).toMatchObject({
      ok: false,
      error: { code: 'mailbox_full' },
    });
    carolDevice.close();
    expect(await sender.send(direct([alice.deviceId]))).toEqual({ ok: true, ts: expect.any(Number) as number });
  });

  it('has its ephemeral sends (typing, receipts) dropped too', async () => {
    const bob = await signUp(t.url);
    await put(bob, mallory.userId);
    const bobDevice = await connectDevice(t.url, bob.accessToken);
    const carolDevice = await connectDevice(t.url, carol.accessToken);
    const blockedId = messageId();
    expect(await sender.send({ ...direct([bob.deviceId], blockedId), ephemeral: true })).toMatchObject({ ok: true });
    // The fence: carol's ephemeral, relayed after mallory's, arrives; mallory's never did.
    const fenceId = messageId();
    expect(await carolDevice.send({ ...direct([bob.deviceId], fenceId), ephemeral: true })).toMatchObject({
      ok: true,
    });
    await bobDevice.waitForMessages(1);
    expect(bobDevice.messages.map((m) => m.id)).toEqual([fenceId]);
    bobDevice.close();
    carolDevice.close();
  });

  it('reaches the user again once unblocked', async () => {
    const dave = await signUp(t.url);
    await put(dave, mallory.userId);
    const dropped = messageId();
    await sender.send(direct([dave.deviceId], dropped));
    await del(dave, mallory.userId);
    const kept = messageId();
    expect(await sender.send(direct([dave.deviceId], kept))).toMatchObject({ ok: true });
    expect(await stored(dave.deviceId)).toEqual([kept]);
  });

  it('cannot put the blocker in a group, by creating one or by adding', async () => {
    const erin = await signUp(t.url);
    await put(erin, mallory.userId);
    const created = await api(t.url, 'POST', '/api/groups', {
      token: mallory.accessToken,
      body: { members: [erin.userId, carol.userId] },
    });
    expect(created.status).toBe(201);
    expect(created.body.members).toEqual([mallory.userId, carol.userId]);
    const added = await api(t.url, 'PUT', `/api/groups/${created.body.groupId as string}/members`, {
      token: mallory.accessToken,
      body: { add: [erin.userId] },
    });
    expect(added.status).toBe(200);
    expect(added.body.members).toEqual([mallory.userId, carol.userId]);
    expect((await api(t.url, 'GET', '/api/groups', { token: erin.accessToken })).body).toEqual({ groups: [] });
    // Someone erin does not block can add her.
    const group = await api(t.url, 'POST', '/api/groups', { token: carol.accessToken, body: { members: [] } });
    const byCarol = await api(t.url, 'PUT', `/api/groups/${group.body.groupId as string}/members`, {
      token: carol.accessToken,
      body: { add: [erin.userId] },
    });
    expect(byCarol.body.members).toEqual([carol.userId, erin.userId]);
  });
});

describe('the in-memory block index (no block read per send)', () => {
  /** Counts the store's exact block reads the relay makes from now on. */
  function countBlockReads(store: TestRelay['relay']['store']): { reads: number; restore: () => void } {
    const original = store.devicesBlocking.bind(store);
    const counter = {
      reads: 0,
      restore: () => {
        store.devicesBlocking = original;
      },
    };
    store.devicesBlocking = (sender, deviceIds) => {
      counter.reads++;
      return original(sender, deviceIds);
    };
    return counter;
  }

  it('reads no block list for a sender nobody blocks, and the exact one once somebody does', async () => {
    const fay = await signUp(t.url);
    const gus = await signUp(t.url);
    const gusDevice = await connectDevice(t.url, gus.accessToken);
    const counter = countBlockReads(t.relay.store);
    try {
      const first = messageId();
      expect(await gusDevice.send(direct([fay.deviceId], first))).toMatchObject({ ok: true });
      expect(counter.reads).toBe(0);
      expect(await stored(fay.deviceId)).toEqual([first]);

      await put(fay, gus.userId);
      const second = messageId();
      expect(await gusDevice.send(direct([fay.deviceId], second))).toMatchObject({ ok: true });
      expect(counter.reads).toBe(1);
      expect(await stored(fay.deviceId)).toEqual([first]);

      // Unblocked: the index keeps "maybe" until the next rebuild (the sweep), which drops gus.
      await del(fay, gus.userId);
      await t.relay.sweep();
      const third = messageId();
      expect(await gusDevice.send(direct([fay.deviceId], third))).toMatchObject({ ok: true });
      expect(counter.reads).toBe(1);
      expect(await stored(fay.deviceId)).toEqual([first, third]);
    } finally {
      counter.restore();
      gusDevice.close();
    }
  });

  it('keeps a block across a restart: the index is rebuilt from the store before the first send', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-blocks-restart-'));
    const env = { DATA_DIR: dataDir, JWT_SECRET: randomBytes(32).toString('base64url') };
    try {
      const first = await startRelay(env);
      const hal = await signUp(first.url);
      const ivy = await signUp(first.url);
      expect((await api(first.url, 'PUT', `/api/blocks/${ivy.userId}`, { token: hal.accessToken })).status).toBe(204);
      await first.close();

      const again = await startRelay(env);
      try {
        const ivyDevice = await connectDevice(again.url, ivy.accessToken);
        const id = messageId();
        expect(await ivyDevice.send(direct([hal.deviceId], id))).toEqual({
          ok: true,
          ts: expect.any(Number) as number,
        });
        ivyDevice.close();
        expect(await again.relay.store.fetchMailbox(hal.deviceId, 0, 100, 1 << 20)).toEqual([]);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('BlockIndex', () => {
  it('keeps a user noted while a rebuild was reading the store', async () => {
    let answer: (ids: string[]) => void = () => undefined;
    const index = new BlockIndex({
      blockedUsers: () => new Promise<string[]>((resolve) => (answer = resolve)),
    });
    const rebuilt = index.rebuild();
    index.note('noted-during-the-read');
    answer(['already-stored']);
    await rebuilt;
    expect(index.mayBeBlocked('noted-during-the-read')).toBe(true);
    expect(index.mayBeBlocked('already-stored')).toBe(true);
    expect(index.mayBeBlocked('anyone-else')).toBe(false);
  });
});

describe("the blocker's presence", () => {
  it('is hidden from the blocked user at once and on every later watch, and shown again after unblocking', async () => {
    const alice = await signUp(t.url);
    const mallory = await signUp(t.url);
    const aliceDevice = await connectDevice(t.url, alice.accessToken);
    // Alice has written to mallory: mallory may see her presence.
    expect(await aliceDevice.send(direct([mallory.deviceId]))).toMatchObject({ ok: true });
    const watcher = await connectDevice(t.url, mallory.accessToken);
    const ofAlice = () => watcher.presence.filter((p) => p.userId === alice.userId);
    expect(await watcher.watch([alice.userId])).toEqual({ ok: true });
    await waitFor(() => ofAlice().length === 1, 5000, "alice's state");
    expect(ofAlice()[0]).toMatchObject({ online: true });

    await put(alice, mallory.userId);
    await waitFor(() => ofAlice().length === 2, 5000, 'the hidden state');
    expect(ofAlice()[1]).toEqual({ userId: alice.userId, online: false, lastSeen: null });
    expect(await watcher.watch([alice.userId])).toEqual({ ok: true });
    await waitFor(() => ofAlice().length === 3, 5000, 'the state at a new watch');
    expect(ofAlice()[2]).toEqual({ userId: alice.userId, online: false, lastSeen: null });

    await del(alice, mallory.userId);
    await waitFor(() => ofAlice().length === 4, 5000, 'the real state again');
    expect(ofAlice()[3]).toMatchObject({ online: true });
    watcher.close();
    aliceDevice.close();
  });
});
