// A relay that lies "refused": it stores a send for every device but answers that some were refused (their mailboxes
// full), so that the sender sends those devices a copy later. Against real engines behind the malicious relay proxy:
// a copy whose first send was handled shows nothing twice and brings back nothing deleted, and a first send that the
// relay delivers after its copy is dropped.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFUSED_RETRY_MS } from '../../src/client/outbound';
import type { ChatEngineApi } from '../../src/client/types';
import { asClient, boot, history, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { attackerAccount } from '../support/accounts';
import { mailboxEntries, startTestRelay, type TestRelay } from '../support/relay';
import { startMaliciousRelay, type Delivery, type MaliciousRelay } from './malicious-relay';

let relay: TestRelay;
let evil: MaliciousRelay;
let now = Date.now();
const clock = { now: () => now };
const engines: ChatEngineApi[] = [];

beforeAll(async () => {
  relay = await startTestRelay();
  evil = await startMaliciousRelay(relay.url);
  // Every stored send that the relay answered "ok" is said to be refused for every device it went to.
  evil.rewriteAck = (event, _device, payload, answer) => {
    const envelopes = (payload as { envelopes?: { to: string }[] }).envelopes;
    if (event !== 'message:send' || !envelopes || (answer as { ok?: unknown }).ok !== true) return answer;
    return { ...(answer as object), refused: envelopes.map((e) => ({ to: e.to, code: 'mailbox_full' })) };
  };
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await evil?.close();
  await relay?.close();
});

async function user(prefix: string): Promise<TestUser> {
  const u = await signUpUser(evil.url, prefix, clock);
  engines.push(u.engine);
  return u;
}

/** Message ids per text in a conversation. */
async function shown(engine: ChatEngineApi, conv: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const m of await history(engine, conv)) out.set(m.text, [...(out.get(m.text) ?? []), m.id]);
  return out;
}

const unread = (engine: ChatEngineApi, conv: string): number | undefined =>
  engine.getSnapshot().conversations.find((c) => c.conv === conv)?.unread;

/** Waits until every message the sender wrote in `conv` is closed (acknowledged, its copies queued). */
async function allClosed(sender: TestUser, conv: string): Promise<void> {
  await until('every send closed', async () =>
    (await history(sender.engine, conv)).every((m) => m.status !== 'pending'),
  );
}

describe('a relay that lies that it refused a send for some devices', () => {
  it('gets copies sent that show nothing twice and bring back nothing the recipient deleted', async () => {
    const gus = await user('rl_gus');
    const hal = await user('rl_hal');
    await openWith(gus, hal);
    const kept = await gus.engine.send(hal.userId, 'shown once');
    const gone = await gus.engine.send(hal.userId, 'deleted by hal');
    await until('hal got both', async () => (await shown(hal.engine, gus.userId)).has('deleted by hal'));
    await hal.engine.deleteForMe(gus.userId, gone);
    const unreadBefore = unread(hal.engine, gus.userId);
    await allClosed(gus, hal.userId);
    expect(await asClient(gus.engine).dangerousTestOnlyOutboxSize()).toBe(2); // a copy of each, as the lie asked
    const device = hal.engine.getSnapshot().me.deviceId;
    const sentBefore = (evil.sent.get(gus.engine.getSnapshot().me.deviceId) ?? []).length;
    const dropped = asClient(hal.engine).dangerousTestOnlyDuplicatesDropped();

    now += REFUSED_RETRY_MS + 1_000;
    await asClient(gus.engine).flushOutbox();
    expect(await asClient(gus.engine).dangerousTestOnlyOutboxSize()).toBe(0);
    // What the relay holds: two new sends, each one envelope for hal's device alone.
    const copies = (evil.sent.get(gus.engine.getSnapshot().me.deviceId) ?? []).slice(sentBefore);
    expect(copies.map((c) => c.to)).toEqual([device, device]);
    expect(copies.map((c) => c.id)).not.toContain(kept);
    await until('hal took both copies in', () => mailboxEntries(relay, device) === 0);

    const got = await shown(hal.engine, gus.userId);
    expect([got.get('shown once'), got.get('deleted by hal')]).toEqual([[kept], undefined]);
    expect(unread(hal.engine, gus.userId)).toBe(unreadBefore);
    expect(asClient(hal.engine).dangerousTestOnlyDuplicatesDropped()).toBe(dropped + 2);
  });

  it('gets a first send it delivers after its copy dropped: the copy shows, under the first id, once', async () => {
    const ida = await user('rl_ida');
    const jon = await user('rl_jon');
    await openWith(ida, jon);
    await ida.engine.send(jon.userId, 'hello');
    await until('jon got it', async () => (await shown(jon.engine, ida.userId)).has('hello'));
    const device = jon.engine.getSnapshot().me.deviceId;
    await allClosed(ida, jon.userId);
    asClient(jon.engine).close();

    const id = await ida.engine.send(jon.userId, 'first send held back');
    await allClosed(ida, jon.userId);
    const held: Delivery[] = [];
    evil.tamper = (to, batch) => {
      if (to !== device) return batch;
      held.push(...batch.filter((d) => d.id === id));
      return batch.filter((d) => d.id !== id);
    };
    try {
      now += REFUSED_RETRY_MS + 1_000;
      await asClient(ida.engine).flushOutbox(); // the copies of 'hello' and of this one
      expect(await asClient(ida.engine).dangerousTestOnlyOutboxSize()).toBe(0);
      const back = await boot(evil.url, jon.db, clock).unlock(jon.password, false);
      engines.push(back);
      await until('jon took in the copies', () => mailboxEntries(relay, device) === 0 && held.length === 1);
      await until('the copy shows', async () => (await shown(back, ida.userId)).has('first send held back'));
      const dropped = asClient(back).dangerousTestOnlyDuplicatesDropped();
      await evil.inject(device, held); // the first send, last
      expect(asClient(back).dangerousTestOnlyDuplicatesDropped()).toBe(dropped + 1);
      expect((await shown(back, ida.userId)).get('first send held back')).toEqual([id]);
      expect(unread(back, ida.userId)).toBe(2); // 'hello' and this one
    } finally {
      evil.tamper = null;
    }
  });
});

/**
 * Mallory, a contact of vic's (an account whose keys the test holds): vic writes to her first, and she answers on
 * that session with whatever payload she likes. Returns the id of vic's message and a sender of Mallory's payloads.
 */
async function mallory(vic: TestUser) {
  const m = await attackerAccount(relay.url);
  await openWith(vic, { name: m.username, userId: m.userId } as TestUser);
  const mine = await vic.engine.send(m.userId, 'mine');
  // What mallory holds: vic's envelope, which she opens with her own keys, and so the message's id.
  const sent = await until('it went out', () =>
    (evil.sent.get(vic.engine.getSnapshot().me.deviceId) ?? []).find((e) => e.id === mine),
  );
  const env = await m.c.openEnvelope(m.keys.identity, sent.body);
  const info = m.c.readPrekeyMessage(env.payload);
  let side = m.c.acceptSession({
    identity: m.keys.identity,
    localUserId: m.userId,
    localDeviceId: m.deviceId,
    envelope: env,
    signedPrekey: m.keys.signedPrekey,
    oneTimePrekey: m.keys.oneTimePrekeys.find((k) => k.keyId === info.oneTimePrekeyId) ?? null,
    kemPrekey: m.kemPrekey(info.kemPrekeyId),
    expectedPeerIdentityKey: info.identityKey,
  }).session;
  let seq = 9_000_000;
  /** Sends `payload` to vic's device on Mallory's session (as the relay would deliver it); resolves once handled. */
  const send = async (payload: object): Promise<void> => {
    const id = m.c.createMessageId();
    const out = await m.c.encryptToDevice(side, {
      messageId: id,
      content: { kind: 'chat', body: new TextEncoder().encode(JSON.stringify(payload)) },
    });
    side = out.session;
    await evil.inject(vic.engine.getSnapshot().me.deviceId, [{ id, seq: ++seq, ts: now, body: out.body }]);
  };
  return { m, seenId: env.messageId, mine, send };
}

describe('a contact who sends a message marked as a copy', () => {
  it('cannot replace one of our messages with its own: the "copy" is dropped, ours stays', async () => {
    const vic = await user('rl_vic');
    const { m, seenId, mine, send } = await mallory(vic);
    const dropped = asClient(vic.engine).dangerousTestOnlyDuplicatesDropped();
    await send({ v: 1, text: 'not yours', sentAt: now, orig: seenId });
    expect(asClient(vic.engine).dangerousTestOnlyDuplicatesDropped()).toBe(dropped + 1);
    const shownNow = (await history(vic.engine, m.userId)).map((x) => [x.id, x.text, x.mine]);
    expect(shownNow).toEqual([[mine, 'mine', true]]);
  });

  it('cannot post into a group it is not in by calling its message a copy of a group message', async () => {
    const vic = await user('rl_vic');
    const [wes, xan] = [await user('rl_wes'), await user('rl_xan')];
    const members = [wes, xan].map((u) => ({ userId: u.userId, username: u.name.toLowerCase() }));
    const group = await vic.engine.createGroup('Members only', members);
    await vic.engine.send(group, 'members only');
    const { m, send } = await mallory(vic);
    const before = (await history(vic.engine, group)).map((x) => x.id);
    await send({ v: 1, text: 'let me in', sentAt: now, orig: m.c.createMessageId(), group }); // handled once it resolves
    expect((await history(vic.engine, group)).map((x) => x.id)).toEqual(before);
  });
});
