// Group pictures made in the browser: the chosen image is cropped to its centre square, drawn at 256 px and
// encoded as JPEG, lowering the quality until it fits the engine's limit (one encrypted message, see
// client/group-picture.ts). Only the result leaves the page, encrypted.
import { MAX_GROUP_PICTURE_BYTES } from '../client/group-picture';

export const PICTURE_SIZE = 256;

export async function squarePicture(file: Blob): Promise<Uint8Array> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error('That file is not a picture this browser can read.');
  }
  const side = Math.min(bitmap.width, bitmap.height);
  const canvas = document.createElement('canvas');
  canvas.width = PICTURE_SIZE;
  canvas.height = PICTURE_SIZE;
  const g = canvas.getContext('2d');
  if (!g) throw new Error('This browser cannot draw pictures.');
  g.fillStyle = '#ffffff'; // transparent PNGs get a white background in JPEG
  g.fillRect(0, 0, PICTURE_SIZE, PICTURE_SIZE);
  g.drawImage(
    bitmap,
    (bitmap.width - side) / 2,
    (bitmap.height - side) / 2,
    side,
    side,
    0,
    0,
    PICTURE_SIZE,
    PICTURE_SIZE,
  );
  bitmap.close();
  for (const quality of [0.85, 0.7, 0.55, 0.4, 0.25]) {
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));
    if (!blob) break;
    const bytes = new Uint8Array(await blob.arrayBuffer());
    if (bytes.length <= MAX_GROUP_PICTURE_BYTES) return bytes;
  }
  throw new Error('This picture has too much detail to send; try a simpler one.');
}
