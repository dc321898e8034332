// Groups: creation, listing, and membership changes (admins add and remove; any member may remove only
// themselves, which is leaving). Rules live here; the store applies a change with compare-and-set.
import { RelayError } from '../errors.js';
import { LIMITS } from '../protocol.js';
import type { GroupAnswer, UpdateGroupMembersBody } from '../protocol.js';
import type { GroupMemberRecord, GroupRecord, Store } from '../store/store.js';
import { newId } from './tokens.js';
import type { AccessClaims } from './tokens.js';

const toAnswer = (g: { groupId: string; members: GroupMemberRecord[] }): GroupAnswer => ({
  groupId: g.groupId,
  members: g.members.map((m) => m.userId),
  admins: g.members.filter((m) => m.admin).map((m) => m.userId),
});

/** Attempts of a membership change that lost a race with another change. */
const MAX_ATTEMPTS = 5;

export class GroupService {
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  /** The creator becomes the first member and the only admin; the listed users follow in order. */
  async create(auth: AccessClaims, memberIds: string[]): Promise<GroupAnswer> {
    const others = memberIds.filter((id) => id !== auth.userId);
    if (others.length + 1 > LIMITS.groupMembers) {
      throw new RelayError('invalid_input', `a group has at most ${LIMITS.groupMembers} members`);
    }
    await this.requireUsers(others);
    const members = [{ userId: auth.userId, admin: true }, ...others.map((userId) => ({ userId, admin: false }))];
    return toAnswer(await this.store.createGroup(newId(), members, this.now()));
  }

  async list(auth: AccessClaims): Promise<GroupAnswer[]> {
    return (await this.store.listGroups(auth.userId)).map(toAnswer);
  }

  async updateMembers(auth: AccessClaims, groupId: string, change: UpdateGroupMembersBody): Promise<GroupAnswer> {
    const add = change.add ?? [];
    const remove = change.remove ?? [];
    if (add.some((id) => remove.includes(id))) {
      throw new RelayError('invalid_input', 'a user cannot be both added and removed');
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const group = await this.store.getGroup(groupId);
      const actor = group?.members.find((m) => m.userId === auth.userId);
      // A non-member learns nothing about the group, not even that it exists.
      if (!group || !actor) throw new RelayError('not_found', 'no such group');
      const leaving = add.length === 0 && remove.length === 1 && remove[0] === auth.userId;
      if (!actor.admin && !leaving) throw new RelayError('forbidden', 'only admins can change the members');
      if (attempt === 0) await this.requireUsers(add);
      const members = nextMembers(group, add, remove);
      if (members.length > LIMITS.groupMembers) {
        throw new RelayError('invalid_input', `a group has at most ${LIMITS.groupMembers} members`);
      }
      if (await this.store.replaceGroupMembers(groupId, group.version, members, this.now())) {
        return toAnswer({ groupId, members });
      }
    }
    throw new RelayError('internal', 'the group kept changing; try again');
  }

  private async requireUsers(userIds: string[]): Promise<void> {
    if (userIds.length === 0) return;
    const unknown = await this.store.findUnknownUsers(userIds);
    if (unknown.length > 0) throw new RelayError('unknown_recipient', `${unknown.length} of the users do not exist`);
  }
}

/** Members after a change: removals first, additions appended; a group left without admins gets its oldest member. */
function nextMembers(group: GroupRecord, add: string[], remove: string[]): GroupMemberRecord[] {
  const members = group.members.filter((m) => !remove.includes(m.userId)).map((m) => ({ ...m }));
  for (const userId of add) {
    if (!members.some((m) => m.userId === userId)) members.push({ userId, admin: false });
  }
  const first = members[0];
  if (first && !members.some((m) => m.admin)) first.admin = true;
  return members;
}
