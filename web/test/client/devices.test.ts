// Identity keys and devices against a real relay: safety numbers agree on both sides; a contact's changed key shows
// (and blocks sending to a verified contact until accepted); a new browser restores the identity from the encrypted
// backup and receives what contacts send afterwards; sent messages reach the sender's own other devices.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_CHECK_MS } from '../../src/client/sessions';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, boot, hasText, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import {
  dangerousTestOnlyReplaceIdentity,
  oneTimePrekeyCounts,
  startTestRelay,
  type TestRelay,
} from '../support/relay';

let relay: TestRelay;
let now = Date.now();
const clock = { now: () => now };
const engines: ChatEngineApi[] = [];

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(relay.url, prefix, clock);
  engines.push(u.engine);
  return u;
}

beforeAll(async () => {
  relay = await startTestRelay();
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

async function statusOf(engine: ChatEngineApi, conv: string, text: string) {
  return (await history(engine, conv)).find((m) => m.text === text);
}

describe('safety numbers and key changes', () => {
  it('shows the same safety number on both sides; marking it verified shows in the trust state', async () => {
    const ann = await user('sn_ann');
    const bo = await user('sn_bo');
    await openWith(ann, bo);
    await ann.engine.send(bo.userId, 'hello');
    await until('bo got it', () => hasText(bo.engine, ann.userId, 'hello'));
    const mine = await ann.engine.safetyNumber(bo.userId);
    const theirs = await bo.engine.safetyNumber(ann.userId);
    expect(mine.digits).toMatch(/^\d{60}$/);
    expect(theirs.digits).toBe(mine.digits);
    expect(mine.groups).toHaveLength(12);
    await ann.engine.markVerified(bo.userId, mine.identityKey);
    expect(ann.engine.getSnapshot().trust[bo.userId]).toEqual({ verified: true, keyChanged: false, blocked: false });
  });

  it('blocks sending to a verified contact whose key changed until the user accepts the new key', async () => {
    const ann = await user('kc_ann');
    const bo = await user('kc_bo');
    await openWith(ann, bo);
    await ann.engine.send(bo.userId, 'before the change');
    await until('bo got it', () => hasText(bo.engine, ann.userId, 'before the change'));
    const before = await ann.engine.safetyNumber(bo.userId);
    await ann.engine.markVerified(bo.userId, before.identityKey);

    await dangerousTestOnlyReplaceIdentity(relay, bo.userId);
    // Bo's old device is gone: the relay answers unknown_recipient, ann refetches the bundle and sees the new key.
    await ann.engine.send(bo.userId, 'after the change');
    await until('blocked', () => ann.engine.getSnapshot().trust[bo.userId]?.blocked);
    // The trust state is published as the new key is seen; the message is marked failed just after (same flush).
    const failed = await until(
      'marked failed',
      async () => (await statusOf(ann.engine, bo.userId, 'after the change'))?.failure,
    );
    expect(failed).toMatch(/security key changed/);
    expect(ann.engine.getSnapshot().trust[bo.userId]).toMatchObject({ verified: true, keyChanged: true });
    await expect(ann.engine.send(bo.userId, 'still blocked')).rejects.toMatchObject({ code: 'identity_changed' });
    // The safety number still covers the verified key until the new one is accepted.
    expect((await ann.engine.safetyNumber(bo.userId)).digits).toBe(before.digits);

    await ann.engine.acceptIdentityChange(bo.userId);
    expect(ann.engine.getSnapshot().trust[bo.userId]).toEqual({ verified: false, keyChanged: false, blocked: false });
    expect((await ann.engine.safetyNumber(bo.userId)).digits).not.toBe(before.digits);
    await ann.engine.send(bo.userId, 'after accepting');
    await until(
      'sent to the new key',
      async () => (await statusOf(ann.engine, bo.userId, 'after accepting'))?.status === 'sent',
    );
  });

  it('shows the change of an unverified contact without blocking; the message that found it is held back', async () => {
    const ann = await user('ku_ann');
    const cy = await user('ku_cy');
    await openWith(ann, cy);
    await ann.engine.send(cy.userId, 'first');
    await until('cy got it', () => hasText(cy.engine, ann.userId, 'first'));
    await dangerousTestOnlyReplaceIdentity(relay, cy.userId);
    await ann.engine.send(cy.userId, 'second');
    await until('key change seen', () => ann.engine.getSnapshot().trust[cy.userId]?.keyChanged);
    expect(ann.engine.getSnapshot().trust[cy.userId]?.blocked).toBe(false);
    // As in Signal: the message written before the change showed is not sent to the new key unseen.
    const held = await until('held back', async () => {
      const m = await statusOf(ann.engine, cy.userId, 'second');
      return m?.failure !== undefined ? m : undefined;
    });
    expect(held.failure).toMatch(/security key changed/);
    await ann.engine.send(cy.userId, 'third');
    await until('sent', async () => (await statusOf(ann.engine, cy.userId, 'third'))?.status === 'sent');
    await ann.engine.acceptIdentityChange(cy.userId); // "OK" on the banner
    expect(ann.engine.getSnapshot().trust[cy.userId]?.keyChanged).toBe(false);
  });
});

describe('device checks', () => {
  it("listing a contact's devices again, and our own, takes none of anyone's one-time prekeys", async () => {
    const ann = await user('dc_ann');
    const bo = await user('dc_bo');
    await openWith(ann, bo);
    await ann.engine.send(bo.userId, 'first'); // no session yet: this takes one of bo's
    await until('bo got it', () => hasText(bo.engine, ann.userId, 'first'));
    await bo.engine.send(ann.userId, 'first reply');
    await until('ann got it', () => hasText(ann.engine, bo.userId, 'first reply'));
    const devices = [ann, bo].map((u) => u.engine.getSnapshot().me.deviceId);
    const before = oneTimePrekeyCounts(relay);
    for (let i = 0; i < 3; i++) {
      now += DEVICE_CHECK_MS + 1_000; // both re-list each other's devices, and their own, on their next send
      await ann.engine.send(bo.userId, `again ${i}`);
      await until('bo got it', () => hasText(bo.engine, ann.userId, `again ${i}`));
      await bo.engine.send(ann.userId, `reply ${i}`);
      await until('ann got it', () => hasText(ann.engine, bo.userId, `reply ${i}`));
    }
    const after = oneTimePrekeyCounts(relay);
    expect(devices.map((d) => after.get(d))).toEqual(devices.map((d) => before.get(d)));
  });
});

describe('a new device', () => {
  it('restores the identity from the backup, gets messages sent afterwards, and both devices share what is sent', async () => {
    const dan = await user('nd_dan');
    const eve = await user('nd_eve');
    await openWith(eve, dan);
    await eve.engine.send(dan.userId, 'to the first device');
    await until('dan1 got it', () => hasText(dan.engine, eve.userId, 'to the first device'));
    const numberBefore = (await eve.engine.safetyNumber(dan.userId)).digits;

    // Dan signs in on a browser that never saw the account.
    const dan2 = await boot(relay.url, `${dan.db}-second`, clock).signIn(dan.name, dan.password);
    engines.push(dan2);
    expect(dan2.getSnapshot().me.userId).toBe(dan.userId);
    expect(dan2.getSnapshot().me.deviceId).not.toBe(dan.engine.getSnapshot().me.deviceId);
    await until('dan2 online', () => dan2.getSnapshot().connection === 'online');
    // Same identity: eve's safety number for dan does not change and no key-change banner appears.
    expect((await dan2.safetyNumber(eve.userId)).digits).toBe(numberBefore);

    // Senders re-list a user's devices when their list is older than the check interval.
    now += DEVICE_CHECK_MS + 1_000;
    await eve.engine.send(dan.userId, 'to both devices');
    await until('dan1 got it', () => hasText(dan.engine, eve.userId, 'to both devices'));
    await until('dan2 got it', () => hasText(dan2, eve.userId, 'to both devices'));
    expect(eve.engine.getSnapshot().trust[dan.userId]?.keyChanged ?? false).toBe(false);

    // What dan sends from one device shows on the other as his own message.
    await dan.engine.send(eve.userId, 'from dan1');
    await until('eve got dan1', () => hasText(eve.engine, dan.userId, 'from dan1'));
    const copy = await until('dan2 has the copy', () => statusOf(dan2, eve.userId, 'from dan1'));
    expect(copy).toMatchObject({ mine: true });
    await dan2.send(eve.userId, 'from dan2');
    await until('eve got dan2', () => hasText(eve.engine, dan.userId, 'from dan2'));
    expect(await until('dan1 has the copy', () => statusOf(dan.engine, eve.userId, 'from dan2'))).toMatchObject({
      mine: true,
    });
  });

  it("loses no copy when both devices of one account write at once, each also taking in the other one's", async () => {
    // Each device encrypts a copy of what it sends to the other one while decrypting the other one's copies: the
    // session between the two is shared by every conversation. Dan's first device comes back online with twelve
    // messages queued, while the relay holds twelve copies from the second: its sends and its receipts then overlap.
    const dan = await user('race_dan');
    const eve = await user('race_eve');
    await openWith(dan, eve);
    const dan2 = await boot(relay.url, `${dan.db}-second`, clock).signIn(dan.name, dan.password);
    engines.push(dan2);
    await until('dan2 online', () => dan2.getSnapshot().connection === 'online');
    await openWith({ ...dan, engine: dan2 }, eve);
    await dan2.send(eve.userId, 'from dan2');
    await until('dan1 has the copy', () => hasText(dan.engine, eve.userId, 'from dan2'));
    await dan.engine.send(eve.userId, 'from dan1');
    await until('dan2 has the copy', () => hasText(dan2, eve.userId, 'from dan1'));

    const dan1 = asClient(dan.engine);
    dan1.dangerousTestOnlySetOnline(false);
    await until('dan1 offline', () => dan.engine.getSnapshot().connection === 'offline');
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      sent.push(`first ${i}`, `second ${i}`);
      await dan.engine.send(eve.userId, `first ${i}`);
      await dan2.send(eve.userId, `second ${i}`);
    }
    await until('dan2 sent all', async () => (await asClient(dan2).dangerousTestOnlyOutboxSize()) === 0);
    dan1.dangerousTestOnlySetOnline(true);

    const missing = async (engine: ChatEngineApi, conv: string): Promise<string[]> => {
      const shown = new Set((await history(engine, conv)).map((m) => m.text));
      return sent.filter((t) => !shown.has(t));
    };
    await until('eve got all', async () => (await missing(eve.engine, dan.userId)).length === 0, 30_000);
    await until('dan1 sent all', async () => (await dan1.dangerousTestOnlyOutboxSize()) === 0);
    // Each device has every message of both, as its own; a lost copy would be dropped silently (a reused key).
    const settled = async () => [await missing(dan.engine, eve.userId), await missing(dan2, eve.userId)];
    await until('both devices have all', async () => (await settled()).flat().length === 0, 15_000).catch(
      () => undefined,
    );
    expect(await settled()).toEqual([[], []]);
    for (const engine of [dan.engine, dan2]) {
      const copies = (await history(engine, eve.userId)).filter((m) => sent.includes(m.text));
      expect(copies.every((m) => m.mine)).toBe(true);
      expect(engine.getSnapshot().notices.filter((n) => n.kind === 'error')).toEqual([]);
    }
  });
});

describe('the device cap', () => {
  it('refuses a sign-in on one device too many with a message that says why, and keeps the first device', async () => {
    const capped = await startTestRelay({ DEVICES_PER_ACCOUNT: '1' });
    try {
      const fay = await signUpUser(capped.url, 'cap_fay', clock);
      engines.push(fay.engine);
      const second = boot(capped.url, `${fay.db}-second`, clock).signIn(fay.name, fay.password);
      await expect(second).rejects.toMatchObject({
        code: 'device_limit',
        message: 'This account already has 1 device. Remove one in Settings → Devices on another device.',
      });
      expect(fay.engine.getSnapshot().connection).toBe('online');
    } finally {
      await capped.close();
    }
  });
});

describe('a message that cannot be decrypted', () => {
  it('shows in the existing conversation, and asked for again comes again to the device that asked', async () => {
    const fay = await user('ud_fay');
    const gus = await user('ud_gus');
    await openWith(fay, gus);
    await fay.engine.send(gus.userId, 'start');
    await until('gus got it', () => hasText(gus.engine, fay.userId, 'start'));
    await gus.engine.send(fay.userId, 'reply'); // fay's session is now past its prekey phase
    await until('fay got it', () => hasText(fay.engine, gus.userId, 'reply'));

    // Gus loses his session with fay (a restored profile, a storage fault): her next message cannot be decrypted.
    // He has a conversation with her, so the failure shows there (with no conversation, only a notice would).
    await asClient(gus.engine).dangerousTestOnlyForgetSessions(fay.userId);
    const id = await fay.engine.send(gus.userId, 'please read me');
    const failed = await until('shown as undecryptable', async () =>
      (await history(gus.engine, fay.userId)).find((m) => m.id === id && m.failure),
    );
    expect(failed.failure).toMatch(/could not be decrypted/);
    expect(failed.senderDevice).toBe(fay.engine.getSnapshot().me.deviceId);
    expect(gus.engine.getSnapshot().conversations.find((c) => c.conv === fay.userId)?.lastText).toMatch(/could not/);

    // "Ask to resend" deletes no session; gus has none with fay, so the request starts one, and fay re-sends her
    // message (sent to that device under that key less than a day ago) over it.
    await gus.engine.requestResend(fay.userId, id);
    await until('the message arrives again', () => hasText(gus.engine, fay.userId, 'please read me'));
    expect((await history(gus.engine, fay.userId)).find((m) => m.id === id)?.failure).toMatch(/Asked the sender/);
    await fay.engine.send(gus.userId, 'and after');
    await until('the conversation goes on', () => hasText(gus.engine, fay.userId, 'and after'));
  });
});
