// Groups: creation, listing, and membership changes (admins add and remove; any member may remove only
// themselves, which is leaving). Rules live here; the store applies a change with compare-and-set.
// A user who blocks the actor is left out of a creation or an add (withoutBlockers).
// Limits against spam: a user is a member of at most `groupsPerUser` groups (a creation or an add that would pass it
// is refused with group_limit, and nothing changes), and one account adds at most `addsPerHour` users to groups
// (creations included; a token bucket per account on this node). The cap is checked before the compare-and-set, so
// concurrent adds of one user on several nodes can pass it by the number of racing requests.
import { RelayError } from '../errors.js';
import { LIMITS } from '../protocol.js';
import type { GroupAnswer, UpdateGroupAdminsBody, UpdateGroupMembersBody } from '../protocol.js';
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

export interface GroupLimits {
  groupsPerUser: number;
  addsPerHour: number;
}

const HOUR_MS = 3600 * 1000;

export class GroupService {
  /** Per account: adds left, refilled continuously up to addsPerHour, and when last refilled. */
  private readonly budgets = new Map<string, { left: number; at: number }>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly limits: GroupLimits = {
      groupsPerUser: LIMITS.groupsPerUser,
      addsPerHour: LIMITS.groupAddsPerHour,
    },
  ) {}

  /** The creator becomes the first member and the only admin; the listed users follow in order. */
  async create(auth: AccessClaims, memberIds: string[]): Promise<GroupAnswer> {
    const others = await this.withoutBlockers(
      auth.userId,
      memberIds.filter((id) => id !== auth.userId),
    );
    if (others.length + 1 > LIMITS.groupMembers) {
      throw new RelayError('invalid_input', `a group has at most ${LIMITS.groupMembers} members`);
    }
    await this.requireUsers(others);
    await this.requireRoom([auth.userId, ...others], auth.userId);
    this.spendAdds(auth.userId, others.length);
    const members = [{ userId: auth.userId, admin: true }, ...others.map((userId) => ({ userId, admin: false }))];
    return toAnswer(await this.store.createGroup(newId(), members, this.now()));
  }

  async list(auth: AccessClaims): Promise<GroupAnswer[]> {
    return (await this.store.listGroups(auth.userId)).map(toAnswer);
  }

  async updateMembers(auth: AccessClaims, groupId: string, change: UpdateGroupMembersBody): Promise<GroupAnswer> {
    const remove = change.remove ?? [];
    if ((change.add ?? []).some((id) => remove.includes(id))) {
      throw new RelayError('invalid_input', 'a user cannot be both added and removed');
    }
    const add = await this.withoutBlockers(auth.userId, change.add ?? []);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const group = await this.store.getGroup(groupId);
      const actor = group?.members.find((m) => m.userId === auth.userId);
      // A non-member learns nothing about the group, not even that it exists.
      if (!group || !actor) throw new RelayError('not_found', 'no such group');
      const leaving = add.length === 0 && remove.length === 1 && remove[0] === auth.userId;
      if (!actor.admin && !leaving) throw new RelayError('forbidden', 'only admins can change the members');
      const added = add.filter((id) => !group.members.some((m) => m.userId === id));
      if (attempt === 0) await this.requireUsers(add);
      const members = nextMembers(group, add, remove);
      if (members.length > LIMITS.groupMembers) {
        throw new RelayError('invalid_input', `a group has at most ${LIMITS.groupMembers} members`);
      }
      await this.requireRoom(added, auth.userId);
      if (attempt === 0) this.spendAdds(auth.userId, added.length);
      if (await this.store.replaceGroupMembers(groupId, group.version, members, this.now())) {
        return toAnswer({ groupId, members });
      }
    }
    throw new RelayError('internal', 'the group kept changing; try again');
  }

  /**
   * Promotes (`add`) and demotes (`remove`) members; admins only, any admin may change any member, themselves
   * included. A change that would leave no admin is refused (last_admin): demoting is never a way to orphan a group
   * (leaving is: then the longest-standing member is promoted, see nextMembers).
   */
  async updateAdmins(auth: AccessClaims, groupId: string, change: UpdateGroupAdminsBody): Promise<GroupAnswer> {
    const add = change.add ?? [];
    const remove = change.remove ?? [];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const group = await this.store.getGroup(groupId);
      const actor = group?.members.find((m) => m.userId === auth.userId);
      if (!group || !actor) throw new RelayError('not_found', 'no such group');
      if (!actor.admin) throw new RelayError('forbidden', 'only admins can change who is an admin');
      const strangers = [...add, ...remove].filter((id) => !group.members.some((m) => m.userId === id));
      if (strangers.length > 0) {
        throw new RelayError('invalid_input', `${strangers.length} of the users are not members of this group`);
      }
      const members = group.members.map((m) => ({
        userId: m.userId,
        admin: add.includes(m.userId) ? true : remove.includes(m.userId) ? false : m.admin,
      }));
      if (!members.some((m) => m.admin)) {
        throw new RelayError('last_admin', 'a group keeps at least one admin; make someone else admin first');
      }
      if (await this.store.replaceGroupMembers(groupId, group.version, members, this.now())) {
        return toAnswer({ groupId, members });
      }
    }
    throw new RelayError('internal', 'the group kept changing; try again');
  }

  /** Refuses (group_limit) when any of these users is already in groupsPerUser groups. */
  private async requireRoom(userIds: string[], actorId: string): Promise<void> {
    if (userIds.length === 0) return;
    const counts = await this.store.countGroups(userIds);
    const max = this.limits.groupsPerUser;
    if ((counts.get(actorId) ?? 0) >= max && userIds.includes(actorId)) {
      throw new RelayError('group_limit', `you are a member of ${max} groups, the most allowed`);
    }
    const full = userIds.filter((id) => (counts.get(id) ?? 0) >= max).length;
    if (full > 0) throw new RelayError('group_limit', `${full} of the users are members of ${max} groups already`);
  }

  /** Takes `count` adds from the account's hourly budget, or refuses (rate_limited) taking none. */
  private spendAdds(userId: string, count: number): void {
    if (count === 0) return;
    const now = this.now();
    const rate = this.limits.addsPerHour;
    const budget = this.budgets.get(userId) ?? { left: rate, at: now };
    budget.left = Math.min(rate, budget.left + (Math.max(0, now - budget.at) / HOUR_MS) * rate);
    budget.at = now;
    if (budget.left < count) {
      this.budgets.set(userId, budget);
      const retryAfterSeconds = Math.max(1, Math.ceil(((count - budget.left) / rate) * 3600));
      throw new RelayError('rate_limited', `too many users added to groups; at most ${rate} an hour`, {
        retryAfterSeconds,
      });
    }
    budget.left -= count;
    if (budget.left >= rate) this.budgets.delete(userId);
    else this.budgets.set(userId, budget);
  }

  /**
   * `userIds` minus the users who block `actorId`: they are left out of the group it creates or adds to, silently
   * (the answer lists the members, so the actor sees they are missing, but not why: see PROTOCOL.md "Blocks").
   */
  private async withoutBlockers(actorId: string, userIds: string[]): Promise<string[]> {
    if (userIds.length === 0) return userIds;
    const blocking = new Set(await this.store.usersBlocking(actorId, userIds));
    return blocking.size === 0 ? userIds : userIds.filter((id) => !blocking.has(id));
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
