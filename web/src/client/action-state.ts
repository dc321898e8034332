// The pure part of message actions: who may do what to a message, and how an action changes it. No storage, no
// clock: the same actions applied in any order give the same message (each person's latest reaction and the author's
// latest edit win by their stamp; a delete is final), which is what lets two devices that saw different arrival
// orders agree.

import type { ActionPayload } from './schemas';
import type { ChatMessage } from './types';

/** Deleting for everyone is possible this long after the message was sent (by the target's relay timestamp). */
export const DELETE_WINDOW_MS = 24 * 3_600_000;

/** An action's place in its sender's order: the relay timestamp it arrived with, ties broken by its id. */
export interface Stamp {
  ts: number;
  id: string;
}

/** True when `a` comes after `b` (no stamp comes after itself, so a duplicate changes nothing). */
export function after(a: Stamp, b: Stamp | undefined): boolean {
  return b === undefined || a.ts > b.ts || (a.ts === b.ts && a.id > b.id);
}

/** Who is in a conversation, as far as a reaction is concerned. */
export interface Audience {
  me: string;
  /** The group's current members; undefined for a one-to-one conversation (its peer is `conv`). */
  members?: readonly string[];
}

/** The user who wrote a message: us for ours, else the group sender or the one-to-one peer. */
export function authorOf(m: ChatMessage, me: string): string {
  return m.mine ? me : (m.sender ?? m.conv);
}

/** A reaction may come from anyone in the conversation: the peer or us, or a current group member. */
export function mayReact(from: string, m: ChatMessage, audience: Audience): boolean {
  if (audience.members) return audience.members.includes(from);
  return from === m.conv || from === audience.me;
}

/** An action that carries a target (react, edit, delete). */
export type TargetedAction = Exclude<ActionPayload, { type: 'timer' }>;

/**
 * The message after `action` (sent by `from`, stamped `stamp`), or null when it changes nothing: not allowed (an
 * edit or delete from anyone but the author, a reaction from outside the conversation, a delete more than
 * `DELETE_WINDOW_MS` after the message), aimed at a line that is not a message (a notice, a failed decryption), at a
 * deleted message, or older than what the message already holds.
 */
export function applyAction(
  m: ChatMessage,
  action: TargetedAction,
  from: string,
  stamp: Stamp,
  audience: Audience,
): ChatMessage | null {
  if (m.id !== action.target || m.deleted || m.kind !== undefined || m.failure) return null;
  const clock = m.actionClock ?? {};
  switch (action.type) {
    case 'react': {
      if (!mayReact(from, m, audience)) return null;
      const reactClock = clock.react ?? {};
      if (!after(stamp, reactClock[from])) return null;
      const others = (m.reactions ?? []).filter((r) => r.from !== from);
      // Sorted by person, so the stored list does not depend on arrival order.
      const reactions = (action.remove ? others : [...others, { from, emoji: action.emoji }]).sort((a, b) =>
        a.from < b.from ? -1 : a.from > b.from ? 1 : 0,
      );
      const { reactions: _old, ...rest } = m;
      return {
        ...rest,
        ...(reactions.length > 0 ? { reactions } : {}),
        actionClock: { ...clock, react: { ...reactClock, [from]: stamp } },
      };
    }
    case 'edit': {
      if (from !== authorOf(m, audience.me) || !after(stamp, clock.edit)) return null;
      return { ...m, text: action.text, edited: stamp.ts, actionClock: { ...clock, edit: stamp } };
    }
    case 'delete': {
      if (from !== authorOf(m, audience.me) || stamp.ts - m.ts > DELETE_WINDOW_MS) return null;
      return deletedCopy(m);
    }
  }
}

/** What is left of a message deleted for everyone: its place in the conversation, nothing it said. */
export function deletedCopy(m: ChatMessage): ChatMessage {
  const { reply: _r, attachments: _a, reactions: _x, edited: _e, actionClock: _c, text: _t, ...rest } = m;
  return { ...rest, text: '', deleted: true };
}
