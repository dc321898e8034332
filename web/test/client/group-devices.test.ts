// Group sender keys reach devices that appear later: a member signs in on a second device; it learns the group from
// its other device, the others send it their sender keys (no rotation), and messages flow both ways from then on.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatEngineApi, Person } from '../../src/client/types';
import { asClient, boot, history, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
const engines: ChatEngineApi[] = [];

const person = (u: TestUser): Person => ({ userId: u.userId, username: u.name.toLowerCase() });

beforeAll(async () => {
  relay = await startTestRelay();
}, 60_000);

afterAll(async () => {
  for (const e of engines) asClient(e).close();
  await relay?.close();
});

async function received(engine: ChatEngineApi, group: string, text: string) {
  return until(`"${text}" decrypted`, async () => (await history(engine, group)).find((m) => m.text === text));
}

describe('group keys for devices that appear later', () => {
  it('a member’s new device reads what others send afterwards, and the others read what it sends', async () => {
    const [ann, ben, cat] = await Promise.all([
      signUpUser(relay.url, 'gd_ann'),
      signUpUser(relay.url, 'gd_ben'),
      signUpUser(relay.url, 'gd_cat'),
    ]);
    engines.push(ann.engine, ben.engine, cat.engine);
    const group = await ann.engine.createGroup('Late devices', [person(ben), person(cat)]);
    await until('ben and cat know the group', () =>
      [ben, cat].every((u) => u.engine.getSnapshot().conversations.some((c) => c.conv === group)),
    );
    // Everyone has sent once: every sender key is already distributed (per member) before the new device exists.
    for (const u of [ann, ben, cat]) await u.engine.send(group, `before from ${u.name}`);
    for (const u of [ann, ben, cat]) {
      await until(`${u.name} has all three`, async () => {
        const texts = (await history(u.engine, group)).map((m) => m.text);
        return [ann, ben, cat].every((x) => texts.includes(`before from ${x.name}`));
      });
    }

    // Ben signs in on a browser that never saw the account.
    const ben2 = await boot(relay.url, `${ben.db}-second`).signIn(ben.name, ben.password);
    engines.push(ben2);
    const ben2Device = ben2.getSnapshot().me.deviceId;
    // It learns the group (name and members) from ben's first device…
    await until('ben2 knows the group by name', () =>
      ben2.getSnapshot().conversations.find((c) => c.conv === group && c.username === 'Late devices'),
    );
    // …and each other member has sent it their current sender key (ann's and cat's keys were not rotated).
    const slot = `${ben.userId}/${ben2Device}`;
    for (const u of [ann, cat, ben]) {
      await until(`${u.name}'s key reached ben2`, async () =>
        (await asClient(u.engine).dangerousTestOnlyGroupKeyDevices(group)).includes(slot),
      );
    }

    await ann.engine.send(group, 'after from ann');
    await cat.engine.send(group, 'after from cat');
    await ben.engine.send(group, 'after from ben');
    for (const text of ['after from ann', 'after from cat', 'after from ben']) {
      const m = await received(ben2, group, text);
      expect(m.failure).toBeUndefined();
    }

    await ben2.send(group, 'hello from ben2');
    for (const u of [ann, cat, ben]) {
      const m = await received(u.engine, group, 'hello from ben2');
      expect(m).toMatchObject({ sender: ben.userId });
      expect(m.failure).toBeUndefined();
    }
    // Nothing on any device failed to decrypt.
    for (const e of [ann.engine, ben.engine, cat.engine, ben2]) {
      expect((await history(e, group)).filter((m) => m.failure)).toEqual([]);
    }
  });
});
