// Group rows of the SQLite store. Synchronous; the SqliteStore wraps each call in a Promise.
import type BetterSqlite3 from 'better-sqlite3';
import type { GroupMemberRecord, GroupRecord } from '../store.js';
import { immediate } from './statements.js';
import type { Prepare } from './statements.js';
import { withoutMember } from '../group-rules.js';

export class GroupTables {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly prepare: Prepare,
  ) {}

  create(groupId: string, members: GroupMemberRecord[], now: number): GroupRecord {
    return immediate(this.db, (): GroupRecord => {
      this.prepare('INSERT INTO groups (group_id, version, created_at) VALUES (?, 1, ?)').run(groupId, now);
      this.insertMembers(groupId, members);
      return { groupId, version: 1, members: members.map((m) => ({ ...m })) };
    })();
  }

  read(groupId: string): GroupRecord | null {
    const group = this.prepare<[string], { version: number }>('SELECT version FROM groups WHERE group_id = ?').get(
      groupId,
    );
    if (!group) return null;
    const members = this.prepare<[string], { user_id: string; is_admin: number }>(
      'SELECT user_id, is_admin FROM group_members WHERE group_id = ? ORDER BY position',
    )
      .all(groupId)
      .map((r) => ({ userId: r.user_id, admin: r.is_admin === 1 }));
    return { groupId, version: group.version, members };
  }

  listOf(userId: string): GroupRecord[] {
    return this.prepare<[string], { group_id: string }>(
      `SELECT m.group_id FROM group_members m JOIN groups g ON g.group_id = m.group_id
       WHERE m.user_id = ? ORDER BY g.created_at, g.group_id`,
    )
      .all(userId)
      .map((r) => this.read(r.group_id))
      .filter((g): g is GroupRecord => g !== null);
  }

  /** Compare-and-set on the version; an empty member list deletes the group. */
  replaceMembers(groupId: string, expectedVersion: number, members: GroupMemberRecord[]): boolean {
    return immediate(this.db, (): boolean => {
      const bumped = this.prepare('UPDATE groups SET version = version + 1 WHERE group_id = ? AND version = ?').run(
        groupId,
        expectedVersion,
      );
      if (bumped.changes === 0) return false;
      if (members.length === 0) {
        this.prepare('DELETE FROM groups WHERE group_id = ?').run(groupId);
        return true;
      }
      this.prepare('DELETE FROM group_members WHERE group_id = ?').run(groupId);
      this.insertMembers(groupId, members);
      return true;
    })();
  }

  /**
   * Takes a user out of every group (an account being deleted), as leaving does: a group left without an admin gets
   * its longest-standing remaining member as admin, and a group left with no members is deleted.
   */
  dropFromAll(userId: string): void {
    for (const group of this.listOf(userId)) {
      this.replaceMembers(group.groupId, group.version, withoutMember(group.members, userId));
    }
  }

  private insertMembers(groupId: string, members: GroupMemberRecord[]): void {
    const insert = this.prepare(
      'INSERT INTO group_members (group_id, user_id, position, is_admin) VALUES (?, ?, ?, ?)',
    );
    members.forEach((m, i) => insert.run(groupId, m.userId, i, m.admin ? 1 : 0));
  }
}
