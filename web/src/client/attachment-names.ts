// What an attachment says about itself (name, type) is the sender's word: these helpers make it safe to show and
// to save under, and decide what may be shown inline (raster images only: never SVG, which can carry script).

/** Longest displayed and saved file name, in characters (extension kept). */
export const MAX_NAME_CHARS = 120;

/** Types shown inline as images; everything else is a file card with a Save button. */
const INLINE_IMAGE_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif']);

/** Windows' reserved device names (with or without an extension), refused by its file system. */
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;

/**
 * A file name that is safe to display and to save: only the last path part; no control characters, bidi overrides
 * or isolates (which could make "exe.txt" read as "txt.exe"), no characters file systems refuse; no leading dots or
 * trailing dots/spaces; not a reserved device name; at most {@link MAX_NAME_CHARS} characters with the extension kept.
 * Never empty ("file").
 */
export function sanitizeFileName(raw: string): string {
  let name = raw.normalize('NFC');
  name = name.split(/[/\\]/).pop() ?? '';
  name = name
    // C0/C1 controls, bidi embeddings/overrides/isolates/marks, zero-width and BOM characters, line separators
    // eslint-disable-next-line no-control-regex -- removing control characters is the point
    .replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]/g, '')
    .replace(/[<>:"|?*]/g, '_')
    .replace(/\s+/g, ' ')
    .replace(/^[\s.]+/, '')
    .replace(/[\s.]+$/, '');
  if (RESERVED.test(name)) name = `_${name}`;
  const chars = [...name];
  if (chars.length > MAX_NAME_CHARS) {
    const dot = name.lastIndexOf('.');
    const ext = dot > 0 ? [...name.slice(dot)] : [];
    const keep = ext.length > 0 && ext.length <= 16 ? ext : [];
    name = chars.slice(0, MAX_NAME_CHARS - keep.length).join('') + keep.join('');
  }
  return name || 'file';
}

/** A MIME type as the browser reported it, if well-formed (`type/subtype`, lower case), else the generic one. */
export function safeMimeType(raw: string): string {
  const type = raw.trim().toLowerCase().split(';')[0]!.trim();
  return /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/.test(type)
    ? type
    : 'application/octet-stream';
}

/** True if this type is shown inline as an image (JPEG, PNG, WebP, GIF; never SVG). */
export function isInlineImage(type: string): boolean {
  return INLINE_IMAGE_TYPES.has(safeMimeType(type));
}

/** The conversation list's last line for a message: its text, or "📎 name" for an attachment-only message. */
export function previewText(text: string, attachments?: readonly { name: string }[]): string {
  if (text.trim() || !attachments?.length) return text.slice(0, 200);
  const first = sanitizeFileName(attachments[0]!.name);
  const more = attachments.length > 1 ? ` +${attachments.length - 1}` : '';
  return `📎 ${first}${more}`.slice(0, 200);
}

/** "1.2 MB", "340 KB", "12 bytes". */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} ${n === 1 ? 'byte' : 'bytes'}`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}
