// The message text renderer: links only for http(s), markers for bold, italic and code, no HTML ever produced from
// the text, linear time on hostile input, and (fast-check) it never throws and shows the input minus its markers.
import fc from 'fast-check';
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { RichText, parseRich, plainText } from '../../src/ui/rich-text';

const html = (text: string) => renderToStaticMarkup(createElement(RichText, { text }));
const strip = (s: string) => s.replace(/[*_`]/g, '');

/** True when `shown` is `text` with some marker characters (and nothing else) left out. */
function droppedOnlyMarkers(text: string, shown: string): boolean {
  let j = 0;
  for (const ch of text) {
    if (shown.startsWith(ch, j)) j += ch.length;
    else if (!'*_`'.includes(ch)) return false;
  }
  return j === shown.length;
}

describe('links', () => {
  it('turn http and https URLs into links that open in a new tab without a referrer', () => {
    expect(html('see https://example.com/a?b=1. ok')).toBe(
      'see <a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer">https://example.com/a?b=1</a>. ok',
    );
    expect(parseRich('(http://example.org)')).toEqual([
      { t: 'text', v: '(' },
      { t: 'link', href: 'http://example.org/', v: 'http://example.org' },
      { t: 'text', v: ')' },
    ]);
  });

  it('never link another scheme', () => {
    for (const text of [
      'javascript:alert(1)',
      'JaVaScRiPt:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'vbscript:msgbox',
      'file:///etc/passwd',
      'xhttps://evil.example',
      'http://',
    ]) {
      expect(
        parseRich(text).some((n) => n.t === 'link'),
        text,
      ).toBe(false);
      expect(html(text)).not.toContain('<a');
    }
  });

  it('are not made inside code', () => {
    expect(parseRich('`https://example.com`')).toEqual([{ t: 'code', v: 'https://example.com' }]);
  });
});

describe('formatting', () => {
  it('renders bold, italic, code and code blocks', () => {
    expect(html('*bold* _it_ `x < y`')).toBe('<strong>bold</strong> <em>it</em> <code>x &lt; y</code>');
    expect(html('a ```\nif (a) { *b* }\n``` c')).toBe('a <pre><code>\nif (a) { *b* }\n</code></pre> c');
    expect(html('*bold _and italic_*')).toBe('<strong>bold <em>and italic</em></strong>');
  });

  it('leaves snake_case, lone markers, unclosed fences and markers across lines alone', () => {
    for (const text of ['snake_case_name', '2 * 3 * 4', 'a * b', '```unclosed', '*a\nb*', '_ x _', '``']) {
      expect(plainText(parseRich(text)), text).toBe(text);
    }
  });
});

describe('hostile input', () => {
  it('is shown as text, never as HTML', () => {
    const text = '<script>alert(1)</script><img src=x onerror=alert(1)> *<b>x</b>* `<i>`';
    const out = html(text);
    expect(out).not.toMatch(/<script|<img|<b>|<i>/);
    expect(out).toContain('&lt;script&gt;');
  });

  it('takes linear time, also for piles of nested and unclosed markers', () => {
    for (const unit of ['http://[', 'http://x.io/http://', '*_`', '*a_', '```*', 'https://a.b/*_ ', '_*_*', '`']) {
      const text = unit.repeat(Math.ceil(200_000 / unit.length));
      const start = performance.now();
      const nodes = parseRich(text);
      expect(performance.now() - start).toBeLessThan(1_500);
      expect(strip(plainText(nodes))).toBe(strip(text));
    }
  });
});

describe('any text', () => {
  it('never throws, and shows the input minus markers', () => {
    const alphabet = fc.constantFrom(
      '*',
      '_',
      '`',
      ' ',
      '\n',
      'a',
      'B',
      '1',
      '<',
      '>',
      '&',
      '"',
      'é',
      '😀',
      ':',
      '/',
      '.',
    );
    const texts = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.array(alphabet, { maxLength: 80 }).map((a) => a.join('')),
      fc
        .array(fc.constantFrom('https://x.io/', 'http://', 'javascript:', '```', '*b*', '_i_', '`c`', ' '), {
          maxLength: 12,
        })
        .map((a) => a.join('')),
    );
    fc.assert(
      fc.property(texts, (text) => {
        const nodes = parseRich(text);
        const shown = plainText(nodes);
        expect(strip(shown)).toBe(strip(text));
        expect(droppedOnlyMarkers(text, shown)).toBe(true);
        if (!/[*_`]/.test(text)) expect(shown).toBe(text);
        expect(() => html(text)).not.toThrow();
      }),
      { numRuns: 3_000 },
    );
  });
});
