// Group pictures as the engine accepts them: image bytes (JPEG, PNG or WebP, told by their first bytes) of at most
// MAX_GROUP_PICTURE_BYTES, so that the picture payload fits one padded plaintext (32 KiB) as base64url JSON.
// The browser crops and resizes before this (web/src/ui/picture.ts); this is the check at the trust boundary.

import { fromBase64Url, toBase64Url } from './bytes';
import type { GroupPicturePayload } from './groups';

/** 24,000 bytes → 32,000 base64url characters: with the JSON around it, inside one 32 KiB padded plaintext. */
export const MAX_GROUP_PICTURE_BYTES = 24_000;

export type PictureType = 'image/jpeg' | 'image/png' | 'image/webp';

/** The image type told by the first bytes, or null for anything else. */
export function pictureType(bytes: Uint8Array): PictureType | null {
  const at = (i: number, ...b: number[]) => b.every((x, k) => bytes[i + k] === x);
  if (at(0, 0xff, 0xd8, 0xff)) return 'image/jpeg';
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'image/png';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'image/webp';
  return null;
}

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
