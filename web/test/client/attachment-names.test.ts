// File names and types from a message are the sender's word: what we display, save under and show inline.
import { describe, expect, it } from 'vitest';
import {
  formatBytes,
  isInlineImage,
  MAX_NAME_CHARS,
  previewText,
  safeMimeType,
  sanitizeFileName,
} from '../../src/client/attachment-names';

describe('attachment file names', () => {
  it('keeps only the last path part', () => {
    expect(sanitizeFileName('../../etc/passwd')).toBe('passwd');
    expect(sanitizeFileName('C:\\Users\\me\\photo.jpg')).toBe('photo.jpg');
  });

  it('removes control characters and bidi overrides that disguise an extension', () => {
    expect(sanitizeFileName('invoice\u202Efdp.exe')).toBe('invoicefdp.exe');
    expect(sanitizeFileName('a\u0000b\u0007c\n.txt')).toBe('abc.txt');
    expect(sanitizeFileName('x\u2066y\u2069.png')).toBe('xy.png');
  });

  it('refuses reserved device names, leading dots and characters file systems reject', () => {
    expect(sanitizeFileName('CON.txt')).toBe('_CON.txt');
    expect(sanitizeFileName('nul')).toBe('_nul');
    expect(sanitizeFileName('.bashrc')).toBe('bashrc');
    expect(sanitizeFileName('what?<*>.txt')).toBe('what____.txt');
    expect(sanitizeFileName('name. . ')).toBe('name');
  });

  it('caps the length and keeps the extension; never returns an empty name', () => {
    const long = sanitizeFileName(`${'a'.repeat(300)}.jpeg`);
    expect([...long]).toHaveLength(MAX_NAME_CHARS);
    expect(long.endsWith('.jpeg')).toBe(true);
    expect(sanitizeFileName('')).toBe('file');
    expect(sanitizeFileName('/// ')).toBe('file');
    expect(sanitizeFileName('\u202E')).toBe('file');
  });
});

describe('attachment types', () => {
  it('shows only raster images inline, never SVG', () => {
    for (const t of ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'IMAGE/PNG'])
      expect(isInlineImage(t)).toBe(true);
    for (const t of ['image/svg+xml', 'text/html', 'application/pdf', '', 'image/png<script>']) {
      expect(isInlineImage(t)).toBe(false);
    }
  });

  it('turns a malformed type into application/octet-stream', () => {
    expect(safeMimeType('text/plain; charset=utf-8')).toBe('text/plain');
    expect(safeMimeType('not a type')).toBe('application/octet-stream');
    expect(safeMimeType('a/b\r\nx: y')).toBe('application/octet-stream');
  });
});

describe('conversation previews and sizes', () => {
  it('says "📎 name" for an attachment-only message, the text otherwise', () => {
    expect(previewText('', [{ name: 'a/b.pdf' }])).toBe('📎 b.pdf');
    expect(previewText('', [{ name: 'a.pdf' }, { name: 'b.pdf' }])).toBe('📎 a.pdf +1');
    expect(previewText('hello', [{ name: 'a.pdf' }])).toBe('hello');
  });

  it('formats sizes for people', () => {
    expect(formatBytes(1)).toBe('1 byte');
    expect(formatBytes(999)).toBe('999 bytes');
    expect(formatBytes(1_500)).toBe('1.5 KB');
    expect(formatBytes(104_857_600)).toBe('105 MB');
  });
});
