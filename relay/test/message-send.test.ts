// The `message:send` event: direct and group sends, durability before the ack, idempotency, ephemeral, limits.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  connectDevice,
  messageId,
  signIn,
  signInWithKeys,
  signUp,
  sleep,
  startRelay,
  waitFor,
} from './helpers.js';
import type { TestAccount, TestDevice, TestRelay } from './helpers.js';

let t: TestRelay;
let alice: TestAccount;
let bob: TestAccount;
let sender: TestDevice;
beforeAll(async () => {
  t = await startRelay();
  [alice, bob] = await Promise.all([signUp(t.url), signUp(t.url)]);
  sender = await connectDevice(t.url, alice.accessToken);
});
afterAll(async () => {
  sender.close();
  await t.close();
});

const stored = (deviceId: string) => t.relay.store.countMailbox(deviceId);

describe('message:send to devices', () => {
  it('acks {ok, ts} and pushes {id, seq, ts, body} to the connected recipient, without a sender', async () => {
    const receiver = await connectDevice(t.url, bob.accessToken);
    const id = messageId();
    const body = randomBytes(300);
    const before = Date.now();
    const ack = await sender.send({ id, envelopes: [{ to: bob.deviceId, body }] });
    expect(ack).toEqual({ ok: true, ts: expect.any(Number) });
    if (!ack.ok) return;
    expect(ack.ts).toBeGreaterThanOrEqual(before - 1000);
    const [message] = await receiver.waitForMessages(1);
    expect(Object.keys(message ?? {}).sort()).toEqual(['body', 'id', 'seq', 'ts']);
    expect(message).toMatchObject({ id, ts: ack.ts });
    expect(Buffer.from(message?.body as Uint8Array)).toEqual(body);
    receiver.close();
  });

  it('has the entry durably stored when the ack arrives', async () => {
    const carol = await signUp(t.url);
    const ack = await sender.send({ id: messageId(), envelopes: [{ to: carol.deviceId, body: randomBytes(10) }] });
    expect(ack.ok).toBe(true);
    expect(await stored(carol.deviceId)).toBe(1);
  });

  it('stores one entry per envelope, each device its own body', async () => {
    const bobSecond = await signIn(t.url, bob);
    const a = randomBytes(5);
    const b = randomBytes(6);
    const ack = await sender.send({
      id: messageId(),
      envelopes: [
        { to: bob.deviceId, body: a },
        { to: bobSecond.deviceId, body: b },
      ],
    });
    expect(ack.ok).toBe(true);
    const second = await connectDevice(t.url, bobSecond.accessToken);
    const [message] = await second.waitForMessages(1);
    expect(Buffer.from(message?.body as Uint8Array)).toEqual(b);
    second.close();
  });

  it('answers a resend of the same id with the same ts and stores nothing new', async () => {
    const dave = await signUp(t.url);
    const payload = { id: messageId(), envelopes: [{ to: dave.deviceId, body: randomBytes(8) }] };
    const first = await sender.send(payload);
    await sleep(5);
    const again = await sender.send({ ...payload, envelopes: [{ to: dave.deviceId, body: randomBytes(9) }] });
    expect(again).toEqual(first);
    expect(await stored(dave.deviceId)).toBe(1);
  });

  it('answers unknown_recipient for an unknown device and stores nothing', async () => {
    const erin = await signUp(t.url);
    const ack = await sender.send({
      id: messageId(),
      envelopes: [
        { to: erin.deviceId, body: randomBytes(8) },
        { to: randomBytes(16).toString('base64url'), body: randomBytes(8) },
      ],
    });
    expect(ack).toEqual({ ok: false, error: { code: 'unknown_recipient', message: expect.any(String) } });
    expect(await stored(erin.deviceId)).toBe(0);
  });

  it('delivers an ephemeral envelope to a connected device without storing it', async () => {
    const frank = await signUp(t.url);
    const receiver = await connectDevice(t.url, frank.accessToken);
    const id = messageId();
    const ack = await sender.send({ id, envelopes: [{ to: frank.deviceId, body: randomBytes(4) }], ephemeral: true });
    expect(ack.ok).toBe(true);
    const [message] = await receiver.waitForMessages(1);
    expect(message).toMatchObject({ id, seq: 0 });
    expect(await stored(frank.deviceId)).toBe(0);
    receiver.close();
  });

  it('drops an ephemeral envelope to an offline device', async () => {
    const gina = await signUp(t.url);
    const ack = await sender.send({
      id: messageId(),
      envelopes: [{ to: gina.deviceId, body: randomBytes(4) }],
      ephemeral: true,
    });
    expect(ack.ok).toBe(true);
    expect(await stored(gina.deviceId)).toBe(0);
    const late = await connectDevice(t.url, gina.accessToken);
    const marker = messageId(); // stored after the ephemeral one: it arrives, and nothing before it
    expect((await sender.send({ id: marker, envelopes: [{ to: gina.deviceId, body: randomBytes(4) }] })).ok).toBe(true);
    await late.waitForMessages(1);
    expect(late.messages.map((m) => m.id)).toEqual([marker]);
    late.close();
  });

  it('commits sends that arrive together in fewer transactions than sends', async () => {
    const hank = await signUp(t.url);
    const commitsBefore = t.relay.commits();
    const acks = await Promise.all(
      Array.from({ length: 50 }, () =>
        sender.send({ id: messageId(), envelopes: [{ to: hank.deviceId, body: randomBytes(20) }] }),
      ),
    );
    expect(acks.every((a) => a.ok)).toBe(true);
    expect(await stored(hank.deviceId)).toBe(50);
    expect(t.relay.commits() - commitsBefore).toBeLessThan(50);
  });
});

describe('message:send to a group', () => {
  let groupId: string;
  let carol: TestAccount;
  let aliceSecond: TestDevice;
  beforeAll(async () => {
    carol = await signUp(t.url);
    const second = await signInWithKeys(t.url, alice);
    aliceSecond = await connectDevice(t.url, second.accessToken);
    groupId = (
      await api(t.url, 'POST', '/api/groups', {
        token: alice.accessToken,
        body: { members: [bob.userId, carol.userId] },
      })
    ).body.groupId as string;
  });
  afterAll(() => aliceSecond.close());

  it('fans out to every member device except the sending one, marked with the group', async () => {
    const id = messageId();
    const body = randomBytes(64);
    const bobBefore = await stored(bob.deviceId); // bob is offline: his entries stay stored
    const ack = await sender.send({ id, group: groupId, body });
    expect(ack.ok).toBe(true);
    const [own] = await aliceSecond.waitForMessages(1);
    expect(own).toMatchObject({ id, group: groupId });
    expect(await stored(bob.deviceId)).toBe(bobBefore + 1);
    // The sending device: nothing stored, and nothing pushed before a marker sent to it afterwards.
    expect(await stored(alice.deviceId)).toBe(0);
    const marker = messageId();
    expect(await aliceSecond.send({ id: marker, envelopes: [{ to: alice.deviceId, body: randomBytes(4) }] })).toEqual({
      ok: true,
      ts: expect.any(Number),
    });
    await waitFor(() => sender.messages.some((m) => m.id === marker), 5000, 'the marker');
    expect(sender.messages.map((m) => m.id)).not.toContain(id);
    const carolDevice = await connectDevice(t.url, carol.accessToken);
    const [received] = await carolDevice.waitForMessages(1);
    expect(received).toMatchObject({ id, group: groupId });
    expect(Buffer.from(received?.body as Uint8Array)).toEqual(body);
    carolDevice.close();
  });

  it('answers forbidden to a sender who is not a member, and not_found for an unknown group', async () => {
    const outsider = await signUp(t.url);
    const device = await connectDevice(t.url, outsider.accessToken);
    const forbidden = await device.send({ id: messageId(), group: groupId, body: randomBytes(4) });
    expect(forbidden).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    const missing = await device.send({
      id: messageId(),
      group: randomBytes(16).toString('base64url'),
      body: randomBytes(4),
    });
    expect(missing).toMatchObject({ ok: false, error: { code: 'not_found' } });
    const ephemeral = await device.send({ id: messageId(), group: groupId, body: randomBytes(4), ephemeral: true });
    expect(ephemeral).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    device.close();
  });

  it('relays an ephemeral group message to connected members only', async () => {
    const before = await stored(carol.deviceId);
    const id = messageId();
    const ack = await sender.send({ id, group: groupId, body: randomBytes(4), ephemeral: true });
    expect(ack.ok).toBe(true);
    await aliceSecond.waitForMessages(2);
    expect(aliceSecond.messages.at(-1)).toMatchObject({ id, seq: 0, group: groupId });
    expect(await stored(carol.deviceId)).toBe(before);
  });
});

describe('message:send with bad input', () => {
  const body = () => randomBytes(8);
  const cases: [string, () => unknown][] = [
    ['no payload', () => undefined],
    ['a string payload', () => 'hello'],
    ['a missing id', () => ({ envelopes: [{ to: bob.deviceId, body: body() }] })],
    ['an id of the wrong length', () => ({ id: 'abc', envelopes: [{ to: bob.deviceId, body: body() }] })],
    ['an id that is not base64url', () => ({ id: '!'.repeat(22), envelopes: [{ to: bob.deviceId, body: body() }] })],
    [
      'an extra field',
      () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: body() }], from: alice.userId }),
    ],
    ['an extra envelope field', () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: body(), x: 1 }] })],
    ['a body as a string', () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: 'aGVsbG8' }] })],
    ['an empty body', () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: Buffer.alloc(0) }] })],
    [
      'a body over 64 KiB',
      () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: randomBytes(64 * 1024 + 1) }] }),
    ],
    ['no envelopes', () => ({ id: messageId(), envelopes: [] })],
    [
      '101 envelopes',
      () => ({
        id: messageId(),
        envelopes: Array.from({ length: 101 }, () => ({
          to: randomBytes(16).toString('base64url'),
          body: Buffer.alloc(1),
        })),
      }),
    ],
    [
      'the same device twice',
      () => ({
        id: messageId(),
        envelopes: [
          { to: bob.deviceId, body: body() },
          { to: bob.deviceId, body: body() },
        ],
      }),
    ],
    [
      'both envelopes and a group',
      () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: body() }], group: bob.userId, body: body() }),
    ],
    [
      'ephemeral as a string',
      () => ({ id: messageId(), envelopes: [{ to: bob.deviceId, body: body() }], ephemeral: 'yes' }),
    ],
  ];
  for (const [what, payload] of cases) {
    it(`answers invalid_input for ${what} and stores nothing`, async () => {
      const before = await stored(bob.deviceId);
      const ack = await sender.send(payload());
      expect(ack).toEqual({ ok: false, error: { code: 'invalid_input', message: expect.any(String) } });
      expect(await stored(bob.deviceId)).toBe(before);
    });
  }
});

describe('message:send rate limit', () => {
  it('answers rate_limited beyond the burst, then recovers at the refill rate', async () => {
    const limited = await startRelay({ SEND_RATE_BURST: '5', SEND_RATE_PER_SEC: '20' });
    try {
      const a = await signUp(limited.url);
      const b = await signUp(limited.url);
      const device = await connectDevice(limited.url, a.accessToken);
      const send = () => device.send({ id: messageId(), envelopes: [{ to: b.deviceId, body: randomBytes(4) }] });
      const acks = await Promise.all(Array.from({ length: 8 }, send));
      expect(acks.filter((x) => x.ok)).toHaveLength(5);
      expect(acks.filter((x) => !x.ok)).toEqual(
        Array(3).fill({ ok: false, error: { code: 'rate_limited', message: expect.any(String) } }),
      );
      await sleep(120);
      expect((await send()).ok).toBe(true);
      device.close();
    } finally {
      await limited.close();
    }
  });
});

describe('sends the relay holds', () => {
  it('counts a send as unanswered until its ack, and as waiting on the store while its commit runs', async () => {
    const store = t.relay.store;
    const applyWrites = store.applyWrites.bind(store);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    store.applyWrites = async (batch, now) => {
      await gate;
      return applyWrites(batch, now);
    };
    try {
      expect([t.relay.sendsUnanswered(), t.relay.sendsWaitingOnStore()]).toEqual([0, 0]);
      const id = messageId();
      const acked = sender.send({ id, envelopes: [{ to: bob.deviceId, body: randomBytes(32) }] });
      await waitFor(() => t.relay.sendsWaitingOnStore() === 1, 5000, 'the send in the held commit');
      expect(t.relay.sendsUnanswered()).toBe(1);
      release();
      expect(await acked).toMatchObject({ ok: true });
      expect([t.relay.sendsUnanswered(), t.relay.sendsWaitingOnStore()]).toEqual([0, 0]);
      // A refused send is answered too.
      expect(await sender.send({ id: 'not an id', envelopes: [] })).toMatchObject({ ok: false });
      expect(t.relay.sendsUnanswered()).toBe(0);
    } finally {
      release();
      store.applyWrites = applyWrites;
    }
  });
});
