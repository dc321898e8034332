// Group events as notices in the message log ("ann added ben", "ben left", "ann renamed the group to …"). The actor
// is the authenticated sender of the group-info payload; each claim is checked against the relay's group answer
// (who is a member, who is an admin) before it is shown, so a member cannot put words in the log that the relay's
// state contradicts, nor claim an admin's act.

import type { GroupAnswer } from '@weconnect/relay/protocol';
import type { GroupEvent } from './groups';
import type { GroupInfo, Person } from './types';

/** A notice to store: its text, and whether it counts as unread (being added to a group does). */
export interface GroupNotice {
  text: string;
  unread: boolean;
}

function names(ids: readonly string[], people: readonly Person[], me: string): string {
  return ids
    .map((id) => (id === me ? 'you' : (people.find((p) => p.userId === id)?.username ?? 'a member')))
    .join(', ');
}

/**
 * The notice for a group-info payload from `from`, or null when there is nothing to show or the claim does not
 * hold. `current` is the relay's answer for the group (we are a member), `before` what this device knew.
 */
export function groupNotice(args: {
  me: string;
  from: string;
  event: GroupEvent | undefined;
  current: GroupAnswer;
  before: GroupInfo | undefined;
  after: GroupInfo;
  renamed: boolean;
}): GroupNotice | null {
  const { me, from, event, current, before, after, renamed } = args;
  const mine = from === me;
  const people = [...after.members, ...(before?.members ?? [])];
  const actor = mine ? 'You' : (people.find((p) => p.userId === from)?.username ?? 'Someone');
  const wasAdmin = mine || current.admins.includes(from) || (before?.admins.includes(from) ?? false);
  if (!before || before.placeholder) {
    // We learn of the group now: someone added us (or our other device tells this one about it).
    if (mine) return null;
    return { text: `${actor} added you`, unread: true };
  }
  if (!event) return null;
  switch (event.type) {
    case 'created':
      return null;
    case 'renamed':
      return renamed ? { text: `${actor} renamed the group to “${after.name}”`, unread: false } : null;
    case 'added':
      if (!wasAdmin || !event.users.every((id) => current.members.includes(id))) return null;
      // Added back after leaving or being removed: as unread as being added the first time.
      return { text: `${actor} added ${names(event.users, people, me)}`, unread: event.users.includes(me) };
    case 'removed':
      if (!wasAdmin || event.users.some((id) => current.members.includes(id))) return null;
      return { text: `${actor} removed ${names(event.users, people, me)}`, unread: false };
    case 'left': {
      if (current.members.includes(from)) return null;
      // The last admin left: the relay made the longest-standing member admin; say so.
      const promoted = current.admins.filter((id) => !before.admins.includes(id));
      const then =
        promoted.length > 0
          ? `; ${names(promoted, people, me)} ${promoted.includes(me) && promoted.length === 1 ? 'are' : 'is'} now an admin`
          : '';
      return { text: `${actor} left${then}`, unread: false };
    }
    case 'admin':
      if (!wasAdmin || !event.users.every((id) => current.admins.includes(id) === event.admin)) return null;
      return {
        text: event.admin
          ? `${actor} made ${names(event.users, people, me)} ${event.users.length > 1 ? 'admins' : 'an admin'}`
          : `${actor} removed ${names(event.users, people, me)} as admin`,
        unread: false,
      };
  }
}

/** A notice line to store with a group change: its id (the info message's, or a new one), time, unread or not. */
export interface NoticeLine {
  id: string;
  ts: number;
  text: string;
  unread: boolean;
}

/** The relay entry a group payload arrived in (its id and time become the notice's). */
export interface ArrivedEntry {
  id: string;
  ts: number;
}
