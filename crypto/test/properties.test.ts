// Property tests: random interleavings of send / deliver / drop / duplicate / reorder, pairwise and in a group.
// Every delivered message must decrypt to exactly what was sent; every duplicate must be rejected.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createMessageId,
  createSenderKey,
  CryptoError,
  decryptFromDevice,
  decryptGroupMessage,
  encryptGroupMessage,
  encryptToDevice,
  openEnvelope,
  type OwnSenderKey,
  type SenderKeyRecord,
  senderKeyDistribution,
  type Session,
} from '../src/index.js';
import { startConversation, str, text } from './helpers.js';
import { acceptSenderKeyDistribution } from '../src/sender-keys.js';

type Action = { op: 'send' | 'deliver' | 'drop' | 'duplicate'; who: number; pick: number };

const action = (parties: number) =>
  fc.record({
    op: fc.constantFrom<Action['op']>('send', 'send', 'deliver', 'deliver', 'drop', 'duplicate'),
    who: fc.nat({ max: parties - 1 }),
    pick: fc.nat({ max: 1000 }),
  });

interface InFlight {
  body: Uint8Array;
  plaintext: string;
}

function expectRejected(fn: () => unknown, codes: readonly string[]) {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(CryptoError);
  expect(codes).toContain((thrown as CryptoError).code);
}

describe('properties', () => {
  it('delivers every pairwise message exactly once, whatever the interleaving (both directions)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action(2), { maxLength: 40 }), async (actions) => {
        const c = await startConversation();
        const sessions: Session[] = [c.aliceSession, c.bobSession];
        const parties = [c.alice, c.bob];
        // inFlight[i]: messages sent by party i, not yet delivered to the other party.
        const inFlight: InFlight[][] = [[], []];
        const delivered: InFlight[][] = [[], []];
        let counter = 0;
        for (const a of actions) {
          const from = a.who;
          const to = 1 - from;
          if (a.op === 'send') {
            const plaintext = `m${counter++}`;
            const r = await encryptToDevice(sessions[from]!, {
              messageId: createMessageId(),
              content: { kind: 'chat', body: text(plaintext) },
            });
            sessions[from] = r.session;
            inFlight[from]!.push({ body: r.body, plaintext });
          } else if (a.op === 'deliver' || a.op === 'drop') {
            const queue = inFlight[from]!;
            if (queue.length === 0) continue;
            const [m] = queue.splice(a.pick % queue.length, 1);
            if (a.op === 'drop') continue;
            const got = decryptFromDevice(sessions[to]!, await openEnvelope(parties[to]!.keys.identity, m!.body));
            expect(str(got.content.body)).toBe(m!.plaintext);
            sessions[to] = got.session;
            delivered[from]!.push(m!);
          } else {
            const done = delivered[from]!;
            if (done.length === 0) continue;
            const m = done[a.pick % done.length]!;
            const before = sessions[to]!;
            const env = await openEnvelope(parties[to]!.keys.identity, m.body);
            // A replay from a long-finished chain fails authentication instead; both are rejections.
            expectRejected(() => decryptFromDevice(before, env), ['duplicate_message', 'decrypt_failed']);
            expect(sessions[to]).toBe(before);
          }
        }
        // Everything still in flight decrypts at the end, in any order.
        for (const from of [0, 1]) {
          for (const m of inFlight[from]!.reverse()) {
            const to = 1 - from;
            const got = decryptFromDevice(sessions[to]!, await openEnvelope(parties[to]!.keys.identity, m.body));
            expect(str(got.content.body)).toBe(m.plaintext);
            sessions[to] = got.session;
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it('delivers every group message exactly once among three members', () => {
    const GROUP = 'g';
    fc.assert(
      fc.property(fc.array(action(3), { maxLength: 50 }), fc.nat({ max: 2 }), (actions, receiverSeed) => {
        const own: OwnSenderKey[] = [0, 1, 2].map((i) =>
          createSenderKey({ groupId: GROUP, senderUserId: `u${i}`, senderDeviceId: `d${i}` }),
        );
        // records[reader][sender]
        const records: (SenderKeyRecord | null)[][] = [0, 1, 2].map((reader) =>
          [0, 1, 2].map((sender) =>
            reader === sender
              ? null
              : acceptSenderKeyDistribution(`u${sender}`, `d${sender}`, senderKeyDistribution(own[sender]!)),
          ),
        );
        // inFlight[reader]: bodies fanned out to that reader and not yet delivered.
        const inFlight: (InFlight & { sender: number; id: string })[][] = [[], [], []];
        const delivered: (InFlight & { sender: number; id: string })[][] = [[], [], []];
        let counter = 0;
        for (const a of actions) {
          if (a.op === 'send') {
            const plaintext = `g${counter++}`;
            const id = createMessageId();
            const r = encryptGroupMessage(own[a.who]!, {
              messageId: id,
              content: { kind: 'chat', body: text(plaintext) },
            });
            own[a.who] = r.senderKey;
            for (const reader of [0, 1, 2])
              if (reader !== a.who) inFlight[reader]!.push({ body: r.body, plaintext, sender: a.who, id });
            continue;
          }
          const reader = (a.who + receiverSeed) % 3;
          if (a.op === 'deliver' || a.op === 'drop') {
            const queue = inFlight[reader]!;
            if (queue.length === 0) continue;
            const [m] = queue.splice(a.pick % queue.length, 1);
            if (a.op === 'drop') continue;
            const r = decryptGroupMessage(records[reader]![m!.sender]!, {
              groupId: GROUP,
              messageId: m!.id,
              body: m!.body,
            });
            expect(str(r.message.content.body)).toBe(m!.plaintext);
            expect(r.message.senderUserId).toBe(`u${m!.sender}`);
            expect(r.message.messageId).toBe(m!.id);
            records[reader]![m!.sender] = r.record;
            delivered[reader]!.push(m!);
          } else {
            const done = delivered[reader]!;
            if (done.length === 0) continue;
            const m = done[a.pick % done.length]!;
            expectRejected(
              () => decryptGroupMessage(records[reader]![m.sender]!, { groupId: GROUP, messageId: m.id, body: m.body }),
              ['duplicate_message'],
            );
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});
