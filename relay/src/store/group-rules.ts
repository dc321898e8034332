// Group rules both store backends apply the same way when a member goes with a deleted account.
import type { GroupMemberRecord } from './store.js';

/** The members without `userId`; when no admin remains, the first (longest-standing) one becomes admin. */
export function withoutMember(members: readonly GroupMemberRecord[], userId: string): GroupMemberRecord[] {
  const rest = members.filter((m) => m.userId !== userId).map((m) => ({ userId: m.userId, admin: m.admin }));
  const first = rest[0];
  if (first && !rest.some((m) => m.admin)) first.admin = true;
  return rest;
}
