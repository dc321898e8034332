// groupNotice: a group-info payload's claimed event becomes a notice line only when the relay's group answer bears
// it out, and only when its sender had the right to do it.
import { describe, expect, it } from 'vitest';
import { groupNotice } from '../../src/client/group-events';
import type { GroupEvent } from '../../src/client/groups';
import type { GroupInfo } from '../../src/client/types';

const id = (c: string) => c.repeat(22);
const [ANN, BEN, CAT, DAN, ME] = ['a', 'b', 'c', 'd', 'm'].map(id) as [string, string, string, string, string];
const people = [
  { userId: ANN, username: 'ann' },
  { userId: BEN, username: 'ben' },
  { userId: CAT, username: 'cat' },
  { userId: DAN, username: 'dan' },
  { userId: ME, username: 'me' },
];
const info = (members: string[], admins: string[], name = 'Club'): GroupInfo => ({
  name,
  members: people.filter((p) => members.includes(p.userId)),
  admins,
  left: false,
});
const answer = (members: string[], admins: string[]) => ({ groupId: id('g'), members, admins });

describe('groupNotice', () => {
  const before = info([ANN, BEN, CAT, ME], [ANN]);

  it('says who added you, as unread, when the group is new to this device', () => {
    const current = answer([ANN, BEN, ME], [ANN]);
    expect(
      groupNotice({
        me: ME,
        from: ANN,
        event: { type: 'created' },
        current,
        before: undefined,
        after: info(current.members, current.admins),
        renamed: false,
      }),
    ).toEqual({ text: 'ann added you', unread: true });
  });

  it('shows an admin adding, removing and promoting members when the relay agrees', () => {
    const added = answer([ANN, BEN, CAT, ME, DAN], [ANN]);
    const after = info(added.members, added.admins);
    expect(
      groupNotice({
        me: ME,
        from: ANN,
        event: { type: 'added', users: [DAN] },
        current: added,
        before,
        after,
        renamed: false,
      })?.text,
    ).toBe('ann added dan');
    const removed = answer([ANN, BEN, ME], [ANN]);
    expect(
      groupNotice({
        me: ME,
        from: ANN,
        event: { type: 'removed', users: [CAT] },
        current: removed,
        before,
        after,
        renamed: false,
      })?.text,
    ).toBe('ann removed cat');
    const promoted = answer([ANN, BEN, CAT, ME], [ANN, BEN]);
    expect(
      groupNotice({
        me: ME,
        from: ANN,
        event: { type: 'admin', users: [BEN], admin: true },
        current: promoted,
        before,
        after,
        renamed: false,
      })?.text,
    ).toBe('ann made ben an admin');
  });

  it('drops the same claims from a member who is not an admin', () => {
    const after = info([ANN, BEN, ME], [ANN]);
    const current = answer([ANN, BEN, ME], [ANN]);
    for (const event of [
      { type: 'removed', users: [CAT] },
      { type: 'added', users: [BEN] },
      { type: 'admin', users: [ANN], admin: true },
    ] satisfies GroupEvent[]) {
      expect(groupNotice({ me: ME, from: BEN, event, current, before, after, renamed: false })).toBeNull();
    }
  });

  it('drops claims the relay contradicts', () => {
    const current = answer([ANN, BEN, CAT, ME], [ANN]);
    const after = info(current.members, current.admins);
    expect(
      groupNotice({
        me: ME,
        from: ANN,
        event: { type: 'removed', users: [CAT] },
        current,
        before,
        after,
        renamed: false,
      }),
    ).toBeNull();
    expect(
      groupNotice({
        me: ME,
        from: ANN,
        event: { type: 'added', users: [DAN] },
        current,
        before,
        after,
        renamed: false,
      }),
    ).toBeNull();
    expect(
      groupNotice({ me: ME, from: CAT, event: { type: 'left' }, current, before, after, renamed: false }),
    ).toBeNull();
    expect(
      groupNotice({
        me: ME,
        from: ANN,
        event: { type: 'admin', users: [BEN], admin: true },
        current,
        before,
        after,
        renamed: false,
      }),
    ).toBeNull();
    expect(
      groupNotice({ me: ME, from: ANN, event: { type: 'renamed' }, current, before, after, renamed: false }),
    ).toBeNull();
  });

  it('says who left when they are gone', () => {
    const current = answer([ANN, BEN, ME], [ANN]);
    expect(
      groupNotice({
        me: ME,
        from: CAT,
        event: { type: 'left' },
        current,
        before,
        after: info(current.members, current.admins),
        renamed: false,
      })?.text,
    ).toBe('cat left');
  });

  it('says who became admin when the last admin left', () => {
    const current = answer([BEN, CAT, ME], [BEN]);
    const after = info(current.members, current.admins);
    expect(
      groupNotice({ me: ME, from: ANN, event: { type: 'left' }, current, before, after, renamed: false })?.text,
    ).toBe('ann left; ben is now an admin');
  });
});
