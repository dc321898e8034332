// GroupMembership: creating groups, adding and removing members, leaving, renaming, admin roles and the group
// picture, and the group-info payload (name and member names travel encrypted, pairwise). Membership and admin
// roles always come from the relay (it knows the ids anyway), so a member cannot add or remove anyone by message,
// and a rename or picture is taken only from a member the relay lists as admin; a removal makes everyone who stays
// rotate their sender key. Every change leaves a notice line in each member's log (group-events.ts).

import type { ConvState, EngineContext } from './context';
import { encoder } from './context';
import { ClientError } from './errors';
import { newMessageId } from './bytes';
import { groupNotice, type ArrivedEntry, type NoticeLine } from './group-events';
import { GroupPictures } from './group-picture';
import type { GroupEvent, GroupInfoPayload, GroupPayload } from './groups';
import { groupAnswerSchema, groupListAnswerSchema } from '@weconnect/relay/protocol';
import { groupSyncSchema } from './schemas';
import { WriteBatch } from './store';
import type { ChatMessage, GroupInfo, Person } from './types';

export class GroupMembership {
  readonly #ctx: EngineContext;
  /** Group pictures: set by admins, received from them (it needs this part's group, save and send steps). */
  readonly pictures: GroupPictures;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
    this.pictures = new GroupPictures(ctx, {
      locally: (conv, change) => this.#locally(conv, change),
      requireOnline: () => this.requireOnline(),
      save: (groupId, group, lastText, notice) => this.saveGroup(groupId, group, lastText, notice),
      own: (text) => this.#own(text),
      sendTo: (to, body) => this.#sendTo(to, body),
    });
  }

  requireOnline(): void {
    if (!this.#ctx.transport.connected) {
      throw new ClientError('relay_unreachable', 'You are offline. Group changes need the relay; try again soon.');
    }
  }

  /**
   * Runs a change this device makes to group `conv` (ask the relay, store the result) in the group's queue, with the
   * group as memory holds it there. Group info from others is handled in that queue too: a change that read the group
   * before a removal was handled, and stored it after, would put the removed member back, and our next sender key
   * would go to them. Announcing the change (sends to members, which wait for their peers' queues) comes after.
   */
  #locally<T>(conv: string, change: (group: GroupInfo) => Promise<T>): Promise<T> {
    return this.#ctx.queue.run(`group:${conv}`, () => change(this.#group(conv)));
  }

  #group(conv: string): GroupInfo {
    const group = this.#ctx.convs.get(conv)?.group;
    if (!group || group.left) throw new ClientError('invalid_input', 'This is not a group you are in.');
    if (group.placeholder) {
      throw new ClientError('invalid_input', 'This group’s details have not arrived from your other device yet.');
    }
    return group;
  }

  async saveGroup(groupId: string, group: GroupInfo, lastText: string, notice?: NoticeLine): Promise<void> {
    const ctx = this.#ctx;
    const batch = new WriteBatch();
    let line: ChatMessage | null = null;
    if (notice) {
      const ts = ctx.arrivalTs(groupId, notice.ts);
      line = { id: notice.id, conv: groupId, mine: false, text: notice.text, ts, status: 'delivered', kind: 'notice' };
      await ctx.store.stageMessage(batch, line, ts);
    }
    const unread = notice?.unread ?? false;
    const lastTs = Math.max(ctx.now(), line?.ts ?? 0);
    const start: ConvState = { conv: groupId, username: group.name, lastText: '', lastTs: 0, unread: 0, unreadIds: [] };
    // What else the conversation holds (its disappearing timer) stays, and so does its last line without a notice:
    // `lastText` is only for a conversation this device does not have yet.
    const { settle } = await ctx.stageConvChange(batch, start, (c) => ({
      ...c,
      username: group.name,
      group,
      ...(line ? { lastText: line.text, lastId: line.id } : c === start ? { lastText } : {}),
      lastTs,
      unread: c.unread + (unread ? 1 : 0),
      unreadIds: [...c.unreadIds, ...(unread && line ? [line.id] : [])].slice(-1000),
      ...(line ? { lastArrival: line.ts } : {}),
    }));
    await ctx.store.commit(batch);
    settle();
    ctx.publishConvs();
    if (line) ctx.emitMessages(groupId, [line]);
  }

  /** A notice for something this device did ("You added ben"): a new id, now. */
  #own(text: string): NoticeLine {
    return { id: newMessageId(), ts: this.#ctx.now(), text, unread: false };
  }

  /** The group-info payload for a group as this device knows it. */
  infoPayload(groupId: string, group: GroupInfo, event?: GroupEvent): Uint8Array {
    const payload: GroupInfoPayload = {
      v: 1,
      t: 'group',
      groupId,
      name: group.name,
      members: group.members,
      ...(event ? { event } : {}),
    };
    return encoder.encode(JSON.stringify(payload));
  }

  /** The group picture payload (null: removed), for members who need it. */
  picturePayload(groupId: string, picture: Uint8Array | null, quiet = false): Uint8Array {
    return GroupPictures.payload(groupId, picture, quiet);
  }

  /** Admins: a new group picture (checked image bytes) or none, for every member. */
  setGroupPicture(conv: string, picture: Uint8Array | null): Promise<void> {
    return this.pictures.set(conv, picture);
  }

  /**
   * Sends the group's name and member names with what we did, encrypted pairwise, to `to` and our own other
   * devices (the relay only knows member ids).
   */
  async #announce(groupId: string, group: GroupInfo, to: readonly string[], event: GroupEvent): Promise<void> {
    await this.#sendTo(to, this.infoPayload(groupId, group, event));
  }

  async #sendTo(to: readonly string[], body: Uint8Array): Promise<void> {
    for (const peer of new Set([...to, this.#ctx.me.userId])) {
      await this.#ctx.parts.outbound.sendPairwiseNow(peer, { kind: 'chat', body });
    }
  }

  #requireAdmin(group: GroupInfo): void {
    if (!group.admins.includes(this.#ctx.me.userId)) {
      throw new ClientError('invalid_input', 'Only admins can change this group.');
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
    await this.saveGroup(answer.groupId, group, 'You created the group', this.#own('You created the group'));
    await this.#announce(answer.groupId, group, answer.members, { type: 'created' });
    return answer.groupId;
  }

  async addGroupMembers(conv: string, people: readonly Person[]): Promise<void> {
    const { next, answer } = await this.#locally(conv, async (group) => {
      this.requireOnline();
      const answer = await this.#ctx.api.call('PUT', `/api/groups/${conv}/members`, groupAnswerSchema, {
        add: people.map((p) => p.userId),
      });
      const next: GroupInfo = {
        ...group,
        members: this.people(answer.members, [...group.members, ...people]),
        admins: answer.admins,
      };
      const text = `You added ${people.map((p) => p.username).join(', ')}`;
      await this.saveGroup(conv, next, text, this.#own(text));
      return { next, answer };
    });
    const added = people.filter((p) => answer.members.includes(p.userId));
    if (added.length > 0) {
      await this.#announce(conv, next, answer.members, { type: 'added', users: added.map((p) => p.userId) });
    }
    if (next.picture && added.length > 0) {
      await this.#sendTo(
        added.map((p) => p.userId),
        this.picturePayload(conv, next.picture, true),
      );
    }
  }

  async removeGroupMember(conv: string, userId: string): Promise<void> {
    const ctx = this.#ctx;
    const { next, answer } = await this.#locally(conv, async (group) => {
      this.requireOnline();
      const answer = await ctx.api.call('PUT', `/api/groups/${conv}/members`, groupAnswerSchema, { remove: [userId] });
      const next: GroupInfo = { ...group, members: this.people(answer.members, group.members), admins: answer.admins };
      const removed = group.members.find((m) => m.userId === userId)?.username ?? 'a member';
      const batch = new WriteBatch();
      await ctx.groupKeys.rotate(batch, conv, [userId]);
      await ctx.store.commit(batch);
      await this.saveGroup(conv, next, `You removed ${removed}`, this.#own(`You removed ${removed}`));
      return { next, answer };
    });
    await this.#announce(conv, next, [...answer.members, userId], { type: 'removed', users: [userId] });
  }

  async leaveGroup(conv: string): Promise<void> {
    const ctx = this.#ctx;
    const next = await this.#locally(conv, async (group) => {
      this.requireOnline();
      await ctx.api.call('PUT', `/api/groups/${conv}/members`, null, { remove: [ctx.me.userId] });
      const me = ctx.me.userId;
      const next: GroupInfo = { ...group, members: group.members.filter((m) => m.userId !== me), left: true };
      const batch = new WriteBatch();
      await ctx.groupKeys.forget(batch, conv);
      await ctx.store.commit(batch);
      await this.saveGroup(conv, next, 'You left the group', this.#own('You left the group'));
      return next;
    });
    await this.#announce(
      conv,
      next,
      next.members.map((m) => m.userId),
      { type: 'left' },
    );
  }

  /** Admins: a new name for every member (who take it only from an admin the relay lists). */
  async renameGroup(conv: string, name: string): Promise<void> {
    const title = name.trim();
    const done = await this.#locally(conv, async (group) => {
      this.#requireAdmin(group);
      if (title.length === 0 || title.length > 100) throw new ClientError('invalid_input', 'Give the group a name.');
      if (title === group.name) return null;
      this.requireOnline();
      // The relay's current list: who gets the name, and whether we are still an admin there.
      const { groups } = await this.#ctx.api.call('GET', '/api/groups', groupListAnswerSchema);
      const current = groups.find((g) => g.groupId === conv);
      if (!current?.admins.includes(this.#ctx.me.userId)) {
        throw new ClientError('invalid_input', 'Only admins can rename this group.');
      }
      const next: GroupInfo = { ...group, name: title, admins: current.admins };
      const text = `You renamed the group to “${title}”`;
      await this.saveGroup(conv, next, text, this.#own(text));
      return { next, to: current.members };
    });
    if (done) await this.#announce(conv, done.next, done.to, { type: 'renamed' });
  }

  /** Admins: makes `userId` an admin, or a plain member (the relay refuses to leave the group without one). */
  async setGroupAdmin(conv: string, userId: string, admin: boolean): Promise<void> {
    const { next, answer } = await this.#locally(conv, async (group) => {
      this.#requireAdmin(group);
      this.requireOnline();
      const answer = await this.#ctx.api.call(
        'PUT',
        `/api/groups/${conv}/admins`,
        groupAnswerSchema,
        admin ? { add: [userId] } : { remove: [userId] },
      );
      const next: GroupInfo = { ...group, members: this.people(answer.members, group.members), admins: answer.admins };
      const who =
        userId === this.#ctx.me.userId
          ? 'yourself'
          : (group.members.find((m) => m.userId === userId)?.username ?? 'a member');
      const text = admin ? `You made ${who} an admin` : `You removed ${who} as admin`;
      await this.saveGroup(conv, next, text, this.#own(text));
      return { next, answer };
    });
    await this.#announce(conv, next, answer.members, { type: 'admin', users: [userId], admin });
  }

  /** A group payload from `from` (inbound hands over both kinds). */
  onGroupPayload(from: string, payload: GroupPayload, entry: ArrivedEntry): Promise<void> {
    return payload.t === 'group' ? this.onGroupInfo(from, payload, entry) : this.pictures.receive(from, payload, entry);
  }

  /**
   * Group info from `from`. Membership and admins come from the relay (GET /api/groups: it knows the ids anyway), so
   * a member cannot add or remove anyone by message; a name change is taken from an admin only (or our own other
   * device), and only with a `renamed` event or by a member who did not know the group yet. Someone gone → we
   * rotate. What happened is stored as a notice line when the relay's answer bears it out.
   */
  async onGroupInfo(from: string, info: GroupInfoPayload, entry: ArrivedEntry): Promise<void> {
    const ctx = this.#ctx;
    await ctx.queue.run(`group:${info.groupId}`, async () => {
      // Asked in the queue: a change of ours to the group (handled there too) that came in between is in the answer.
      const { groups } = await ctx.api.call('GET', '/api/groups', groupListAnswerSchema);
      const current = groups.find((g) => g.groupId === info.groupId);
      const existing = ctx.convs.get(info.groupId)?.group;
      const fromOwn = from === ctx.me.userId;
      // About a group we know, only its members speak (or one who just left or was removed, for the notice): someone
      // who was never in it, but learned its id, would otherwise move it up our list and have us store the answer.
      const member = (id: string) => current?.members.includes(id) || existing?.members.some((m) => m.userId === id);
      if (existing && !fromOwn && !member(from)) return;
      if (!current) {
        if (!existing || existing.left) return;
        const batch = new WriteBatch();
        await ctx.groupKeys.forget(batch, info.groupId);
        await ctx.store.commit(batch);
        const byAdmin = fromOwn || existing.admins.includes(from);
        const actor = existing.members.find((m) => m.userId === from)?.username ?? 'Someone';
        const text =
          fromOwn && info.event?.type === 'left'
            ? 'You left the group'
            : byAdmin && info.event?.type === 'removed' && info.event.users.includes(ctx.me.userId)
              ? `${fromOwn ? 'You' : actor} removed you`
              : 'You are no longer in this group';
        await this.saveGroup(info.groupId, { ...existing, left: true }, text, {
          id: entry.id,
          ts: entry.ts,
          text,
          unread: false,
        });
        return;
      }
      // Our own other device (telling a new device of ours about the group) is as trusted for the name as an admin.
      const trusted = current.admins.includes(from) || fromOwn;
      if (!existing && !trusted) return;
      const known = [...info.members, ...(existing?.members ?? [])];
      const mayRename = trusted && (!existing || existing.placeholder === true || info.event?.type === 'renamed');
      const name = mayRename ? info.name : (existing?.name ?? info.name);
      const next: GroupInfo = {
        ...(existing?.picture ? { picture: existing.picture } : {}),
        name,
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
      const notice = groupNotice({
        me: ctx.me.userId,
        from,
        event: info.event,
        current,
        before: existing,
        after: next,
        renamed: existing !== undefined && name !== existing.name,
      });
      const conv = ctx.convs.get(info.groupId);
      const lastText = notice?.text ?? conv?.lastText ?? 'You are in this group';
      await this.saveGroup(
        info.groupId,
        next,
        lastText,
        notice ? { id: entry.id, ts: entry.ts, ...notice } : undefined,
      );
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
