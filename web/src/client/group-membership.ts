// GroupMembership: creating groups, adding and removing members, leaving, and the group-info payload (name and
// member names travel encrypted, pairwise). Membership always comes from the relay (it knows the ids anyway), so a
// member cannot add or remove anyone by message; a removal makes everyone who stays rotate their sender key.

import type { ConvState, EngineContext } from './context';
import { encoder } from './context';
import { ClientError } from './errors';
import type { GroupInfoPayload } from './groups';
import { groupAnswerSchema, groupListAnswerSchema } from '@weconnect/relay/protocol';
import { groupSyncSchema } from './schemas';
import { WriteBatch } from './store';
import type { GroupInfo, Person } from './types';

export class GroupMembership {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  requireOnline(): void {
    if (!this.#ctx.transport.connected) {
      throw new ClientError('relay_unreachable', 'You are offline. Group changes need the relay; try again soon.');
    }
  }

  #group(conv: string): GroupInfo {
    const group = this.#ctx.convs.get(conv)?.group;
    if (!group || group.left) throw new ClientError('invalid_input', 'This is not a group you are in.');
    if (group.placeholder) {
      throw new ClientError('invalid_input', 'This group’s details have not arrived from your other device yet.');
    }
    return group;
  }

  async saveGroup(groupId: string, group: GroupInfo, lastText: string): Promise<void> {
    const ctx = this.#ctx;
    const existing = ctx.convs.get(groupId);
    const next: ConvState = {
      conv: groupId,
      username: group.name,
      group,
      lastText,
      lastTs: ctx.now(),
      unread: existing?.unread ?? 0,
      unreadIds: existing?.unreadIds ?? [],
    };
    const batch = new WriteBatch();
    await ctx.stageConv(batch, next);
    await ctx.store.commit(batch);
    ctx.convs.set(groupId, next);
    ctx.publishConvs();
  }

  /** The group-info payload for a group as this device knows it. */
  infoPayload(groupId: string, group: GroupInfo): Uint8Array {
    const payload: GroupInfoPayload = { v: 1, t: 'group', groupId, name: group.name, members: group.members };
    return encoder.encode(JSON.stringify(payload));
  }

  /** Sends the group's name and member names, encrypted pairwise, to `to` (the relay only knows member ids). */
  async #announce(groupId: string, group: GroupInfo, to: readonly string[]): Promise<void> {
    const body = this.infoPayload(groupId, group);
    for (const peer of new Set([...to, this.#ctx.me.userId])) {
      await this.#ctx.parts.outbound.sendPairwiseNow(peer, { kind: 'chat', body });
    }
  }

  people(ids: readonly string[], known: readonly Person[]): Person[] {
    return ids.map((userId) => known.find((p) => p.userId === userId) ?? { userId, username: 'member' });
  }

  async createGroup(name: string, members: readonly Person[]): Promise<string> {
    const ctx = this.#ctx;
    const title = name.trim();
    if (title.length === 0 || title.length > 100) throw new ClientError('invalid_input', 'Give the group a name.');
    if (members.length < 2) throw new ClientError('invalid_input', 'A group needs at least two other people.');
    this.requireOnline();
    const answer = await ctx.api.call('POST', '/api/groups', groupAnswerSchema, {
      members: members.map((m) => m.userId),
    });
    const known = [{ userId: ctx.me.userId, username: ctx.me.username }, ...members];
    const group: GroupInfo = {
      name: title,
      members: this.people(answer.members, known),
      admins: answer.admins,
      left: false,
    };
    await this.saveGroup(answer.groupId, group, 'You created the group');
    await this.#announce(answer.groupId, group, answer.members);
    return answer.groupId;
  }

  async addGroupMembers(conv: string, people: readonly Person[]): Promise<void> {
    const group = this.#group(conv);
    this.requireOnline();
    const answer = await this.#ctx.api.call('PUT', `/api/groups/${conv}/members`, groupAnswerSchema, {
      add: people.map((p) => p.userId),
    });
    const next: GroupInfo = {
      ...group,
      members: this.people(answer.members, [...group.members, ...people]),
      admins: answer.admins,
    };
    await this.saveGroup(conv, next, `You added ${people.map((p) => p.username).join(', ')}`);
    await this.#announce(conv, next, answer.members);
  }

  async removeGroupMember(conv: string, userId: string): Promise<void> {
    const ctx = this.#ctx;
    const group = this.#group(conv);
    this.requireOnline();
    const answer = await ctx.api.call('PUT', `/api/groups/${conv}/members`, groupAnswerSchema, { remove: [userId] });
    const next: GroupInfo = { ...group, members: this.people(answer.members, group.members), admins: answer.admins };
    const removed = group.members.find((m) => m.userId === userId)?.username ?? 'a member';
    await ctx.queue.run(`group:${conv}`, async () => {
      const batch = new WriteBatch();
      await ctx.groupKeys.rotate(batch, conv, [userId]);
      await ctx.store.commit(batch);
    });
    await this.saveGroup(conv, next, `You removed ${removed}`);
    await this.#announce(conv, next, [...answer.members, userId]);
  }

  async leaveGroup(conv: string): Promise<void> {
    const ctx = this.#ctx;
    const group = this.#group(conv);
    this.requireOnline();
    await ctx.api.call('PUT', `/api/groups/${conv}/members`, null, { remove: [ctx.me.userId] });
    const me = ctx.me.userId;
    const next: GroupInfo = { ...group, members: group.members.filter((m) => m.userId !== me), left: true };
    await ctx.queue.run(`group:${conv}`, async () => {
      const batch = new WriteBatch();
      await ctx.groupKeys.forget(batch, conv);
      await ctx.store.commit(batch);
    });
    await this.saveGroup(conv, next, 'You left the group');
    await this.#announce(
      conv,
      next,
      next.members.map((m) => m.userId),
    );
  }

  /**
   * Group info from `from`. Membership comes from the relay (GET /api/groups: it knows the ids anyway), so a member
   * cannot add or remove anyone by message; the name is taken from an admin only. Someone gone → we rotate.
   */
  async onGroupInfo(from: string, info: GroupInfoPayload): Promise<void> {
    const ctx = this.#ctx;
    const { groups } = await ctx.api.call('GET', '/api/groups', groupListAnswerSchema);
    const current = groups.find((g) => g.groupId === info.groupId);
    await ctx.queue.run(`group:${info.groupId}`, async () => {
      const existing = ctx.convs.get(info.groupId)?.group;
      if (!current) {
        if (!existing || existing.left) return;
        const batch = new WriteBatch();
        await ctx.groupKeys.forget(batch, info.groupId);
        await ctx.store.commit(batch);
        await this.saveGroup(info.groupId, { ...existing, left: true }, 'You are no longer in this group');
        return;
      }
      // Our own other device (telling a new device of ours about the group) is as trusted for the name as an admin.
      const fromOwn = from === ctx.me.userId;
      const trusted = current.admins.includes(from) || fromOwn;
      if (!existing && !trusted) return;
      const known = [...info.members, ...(existing?.members ?? [])];
      const next: GroupInfo = {
        name: trusted ? info.name : (existing?.name ?? info.name),
        members: this.people(current.members, known),
        admins: current.admins,
        left: false,
        ...(existing?.placeholder && !trusted ? { placeholder: true } : {}),
      };
      const removed = (existing?.members ?? []).map((m) => m.userId).filter((id) => !current.members.includes(id));
      if (removed.length > 0) {
        const batch = new WriteBatch();
        await ctx.groupKeys.rotate(batch, info.groupId, removed);
        await ctx.store.commit(batch);
      }
      const sender = known.find((p) => p.userId === from)?.username ?? 'Someone';
      const conv = ctx.convs.get(info.groupId);
      const note = fromOwn
        ? (conv?.lastText ?? 'You are in this group')
        : existing
          ? `${sender} updated the group`
          : `${sender} added you`;
      await this.saveGroup(info.groupId, next, note);
    });
  }

  /** On a device added to an existing account (flag set at sign-in): syncGroups once. */
  async syncGroupsIfNewDevice(): Promise<void> {
    const flag = await this.#ctx.store.read('secrets', 'group-sync', groupSyncSchema);
    if (!flag?.pending) return;
    await this.syncGroups();
    await this.#ctx.store.write('secrets', 'group-sync', { pending: false });
  }

  /**
   * Groups the relay lists us in that this device does not know: a placeholder until our other device sends the
   * name, and our sender key to every member at once — which tells each of them about this device, so they send
   * theirs back. Runs on the first connect of a device signed in to an existing account.
   */
  async syncGroups(): Promise<void> {
    const ctx = this.#ctx;
    const { groups } = await ctx.api.call('GET', '/api/groups', groupListAnswerSchema);
    const me = { userId: ctx.me.userId, username: ctx.me.username };
    for (const g of groups) {
      const added = await ctx.queue.run(`group:${g.groupId}`, async () => {
        if (ctx.convs.has(g.groupId)) return false; // its group info arrived meanwhile
        const members = this.people(g.members, [me]);
        const group: GroupInfo = { name: 'Group', members, admins: g.admins, left: false, placeholder: true };
        await this.saveGroup(g.groupId, group, 'You are in this group');
        return true;
      });
      if (added) await ctx.parts.groupMessages.shareKey(g.groupId);
    }
  }
}
