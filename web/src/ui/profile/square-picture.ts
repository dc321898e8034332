// Turns a picture the user chose into a profile or group picture: the centred square, scaled to 256 px, encoded as
// WebP (or JPEG where the browser cannot encode WebP) at the highest quality that stays within `maxBytes` (64 KiB for
// a profile; a group picture must fit one encrypted message). All in the browser; only the result leaves the page,
// encrypted.
import { PICTURE_MAX_BYTES } from '../../client/profile-picture';

export const PICTURE_SIDE = 256;
const QUALITIES = [0.85, 0.75, 0.6, 0.45, 0.3, 0.2];

/** Largest file read at all (a phone photo is a few MiB; beyond this the decode alone would stall the tab). */
const INPUT_MAX_BYTES = 20 * 1024 * 1024;

export async function squarePicture(file: Blob, maxBytes = PICTURE_MAX_BYTES): Promise<Uint8Array> {
  if (file.size > INPUT_MAX_BYTES) throw new Error('That file is too large for a picture (at most 20 MiB).');
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error('That file is not a picture this browser can read.');
  }
  try {
    const side = Math.min(bitmap.width, bitmap.height);
    const canvas = new OffscreenCanvas(PICTURE_SIDE, PICTURE_SIDE);
    const g = canvas.getContext('2d');
    if (!g) throw new Error('This browser cannot resize pictures.');
    g.imageSmoothingQuality = 'high';
    g.drawImage(
      bitmap,
      (bitmap.width - side) / 2,
      (bitmap.height - side) / 2,
      side,
      side,
      0,
      0,
      PICTURE_SIDE,
      PICTURE_SIDE,
    );
    for (const type of ['image/webp', 'image/jpeg']) {
      for (const quality of QUALITIES) {
        const blob = await canvas.convertToBlob({ type, quality });
        if (blob.type !== type) break; // this browser does not encode it: try the next type
        if (blob.size <= maxBytes) return new Uint8Array(await blob.arrayBuffer());
      }
    }
    throw new Error('The picture could not be made small enough.');
  } finally {
    bitmap.close();
  }
}
