// Profile pictures as bytes: what kind of image they are (by their first bytes) and whether one from a contact may
// be shown: at most 64 KiB, JPEG, PNG or WebP, and — where the platform can decode images — one that decodes to a
// picture of sane size. Decoding happens in the browser's image decoder, never in our code.

/** A profile picture is at most this many bytes (the 256 px square the app makes is far below). */
export const PICTURE_MAX_BYTES = 64 * 1024;
/** Largest side accepted from a contact (ours are 256 px). */
const PICTURE_MAX_SIDE = 1024;

export type PictureType = 'image/jpeg' | 'image/png' | 'image/webp';

/** The image type the bytes start with, or null for anything else. */
export function pictureType(bytes: Uint8Array): PictureType | null {
  const at = (i: number) => bytes[i] ?? -1;
  if (at(0) === 0xff && at(1) === 0xd8 && at(2) === 0xff) return 'image/jpeg';
  if ([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((b, i) => at(i) === b)) return 'image/png';
  const ascii = (from: number, text: string) => [...text].every((ch, i) => at(from + i) === ch.charCodeAt(0));
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'image/webp';
  return null;
}

/**
 * True when a picture may be shown: small enough, a known image type, and (where `createImageBitmap` exists, i.e.
 * in a browser) it decodes to an image of at most 1024 px a side. Never throws.
 */
export async function isAcceptablePicture(bytes: Uint8Array): Promise<boolean> {
  if (bytes.length === 0 || bytes.length > PICTURE_MAX_BYTES) return false;
  const type = pictureType(bytes);
  if (!type) return false;
  if (typeof createImageBitmap !== 'function') return true;
  try {
    const bitmap = await createImageBitmap(new Blob([bytes as BlobPart], { type }));
    const ok =
      bitmap.width >= 1 && bitmap.height >= 1 && bitmap.width <= PICTURE_MAX_SIDE && bitmap.height <= PICTURE_MAX_SIDE;
    bitmap.close();
    return ok;
  } catch {
    return false;
  }
}
