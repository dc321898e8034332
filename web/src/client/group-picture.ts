// Group pictures: image bytes (JPEG, PNG or WebP, told by their first bytes) of at most MAX_GROUP_PICTURE_BYTES, so
// that the picture payload fits one padded plaintext (32 KiB) as base64url JSON. Admins set them; they travel
// encrypted, pairwise, and members take them only from a member the relay lists as admin. The browser crops and
// resizes before this (web/src/ui/profile/square-picture.ts); this is the check at the trust boundary.

import { groupListAnswerSchema } from '@weconnect/relay/protocol';
import { fromBase64Url, toBase64Url } from './bytes';
import { pictureType } from './profile-picture';
import { encoder, type EngineContext } from './context';
import { ClientError } from './errors';
import type { ArrivedEntry, NoticeLine } from './group-events';
import type { GroupPicturePayload } from './groups';
import type { GroupInfo } from './types';

/** 24,000 bytes → 32,000 base64url characters: with the JSON around it, inside one 32 KiB padded plaintext. */
export const MAX_GROUP_PICTURE_BYTES = 24_000;

// The image type is told as for profile pictures (one check for both).
export { pictureType };

/** True for bytes a group picture may hold. */
export function isGroupPicture(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes.length <= MAX_GROUP_PICTURE_BYTES && pictureType(bytes) !== null;
}

/** The payload that carries a picture (or its removal) to members. */
export function picturePayload(groupId: string, picture: Uint8Array | null, quiet = false): GroupPicturePayload {
  return {
    v: 1,
    t: 'group-picture',
    groupId,
    picture: picture ? toBase64Url(picture) : null,
    ...(quiet ? { quiet } : {}),
  };
}

/** The picture a payload carries: bytes, null (removed), or undefined when it is not a valid picture. */
export function pictureOf(payload: GroupPicturePayload): Uint8Array | null | undefined {
  if (payload.picture === null) return null;
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(payload.picture);
  } catch {
    return undefined;
  }
  return isGroupPicture(bytes) ? bytes : undefined;
}

/** What GroupPictures uses of GroupMembership. */
export interface GroupPictureSteps {
  /** Runs `change` in the group's queue with the group `conv`, when we are in it (else throws). */
  locally<T>(conv: string, change: (group: GroupInfo) => Promise<T>): Promise<T>;
  requireOnline(): void;
  save(groupId: string, group: GroupInfo, lastText: string, notice?: NoticeLine): Promise<void>;
  /** A notice for something this device did. */
  own(text: string): NoticeLine;
  /** A stored pairwise `chat` send to each of `to` and our own other devices. */
  sendTo(to: readonly string[], body: Uint8Array): Promise<void>;
}

export class GroupPictures {
  readonly #ctx: EngineContext;
  readonly #steps: GroupPictureSteps;

  constructor(ctx: EngineContext, steps: GroupPictureSteps) {
    this.#ctx = ctx;
    this.#steps = steps;
  }

  /** The encoded payload (null: removed; quiet: the current picture for a member just added). */
  static payload(groupId: string, picture: Uint8Array | null, quiet = false): Uint8Array {
    return encoder.encode(JSON.stringify(picturePayload(groupId, picture, quiet)));
  }

  /** Admins: a new group picture (checked image bytes) or none, for every member. */
  async set(conv: string, picture: Uint8Array | null): Promise<void> {
    const ctx = this.#ctx;
    const to = await this.#steps.locally(conv, async (group) => {
      if (!group.admins.includes(ctx.me.userId))
        throw new ClientError('invalid_input', 'Only admins can change this group.');
      if (picture && !isGroupPicture(picture)) {
        throw new ClientError('invalid_input', 'The picture must be a JPEG, PNG or WebP image of at most 24 KB.');
      }
      this.#steps.requireOnline();
      const { groups } = await ctx.api.call('GET', '/api/groups', groupListAnswerSchema);
      const current = groups.find((g) => g.groupId === conv);
      if (!current?.admins.includes(ctx.me.userId)) {
        throw new ClientError('invalid_input', 'Only admins can change the group picture.');
      }
      const { picture: _old, ...rest } = group;
      const next: GroupInfo = { ...rest, ...(picture ? { picture } : {}), admins: current.admins };
      const text = picture ? 'You changed the group picture' : 'You removed the group picture';
      await this.#steps.save(conv, next, text, this.#steps.own(text));
      return current.members;
    });
    await this.#steps.sendTo(to, GroupPictures.payload(conv, picture));
  }

  /** A group picture from `from`: taken only from a member the relay lists as admin (or our own other device). */
  async receive(from: string, payload: GroupPicturePayload, entry: ArrivedEntry): Promise<void> {
    const ctx = this.#ctx;
    const picture = pictureOf(payload);
    if (picture === undefined) return;
    const { groups } = await ctx.api.call('GET', '/api/groups', groupListAnswerSchema);
    const current = groups.find((g) => g.groupId === payload.groupId);
    await ctx.queue.run(`group:${payload.groupId}`, async () => {
      const existing = ctx.convs.get(payload.groupId)?.group;
      const fromOwn = from === ctx.me.userId;
      if (!current || !existing || existing.left || !(current.admins.includes(from) || fromOwn)) return;
      const { picture: _old, ...rest } = existing;
      const next: GroupInfo = { ...rest, ...(picture ? { picture } : {}), admins: current.admins };
      const actor = fromOwn ? 'You' : (existing.members.find((m) => m.userId === from)?.username ?? 'Someone');
      const text = picture ? `${actor} changed the group picture` : `${actor} removed the group picture`;
      // A new device of ours learning the picture from our other device, or a member just added getting the current
      // one: no notice (the flag can only hide a notice, never change who may set a picture).
      const quiet = existing.placeholder === true || payload.quiet === true;
      const lastText = ctx.convs.get(payload.groupId)?.lastText ?? text;
      await this.#steps.save(
        payload.groupId,
        next,
        quiet ? lastText : text,
        quiet ? undefined : { id: entry.id, ts: entry.ts, text, unread: false },
      );
    });
  }
}
