// A message's text as React elements: http(s) links, *bold*, _italic_, `code` and ``` code blocks ```. Pure and
// linear in the text's length; it never produces HTML (React escapes every string) and never fetches anything.

import type { ReactNode } from 'react';

export type RichNode =
  | { t: 'text'; v: string }
  | { t: 'link'; href: string; v: string }
  | { t: 'bold' | 'italic'; c: RichNode[] }
  | { t: 'code' | 'pre'; v: string };

/** How deep *bold _italic_* may nest; deeper markers stay as text. */
const MAX_DEPTH = 3;
const FENCE = '```';
const URL_START = /^https?:\/\//i;
/** Characters a link never ends with (sentence punctuation after it). */
const TRAILING = new Set(['.', ',', ';', ':', '!', '?', "'", '"', ')', ']', '}', '>', '*', '_']);

const isSpace = (ch: string | undefined) => ch === undefined || /\s/u.test(ch);
const isWord = (ch: string | undefined) => ch !== undefined && /[\p{L}\p{N}]/u.test(ch);

/** For each position, the index of the next `ch` at or after it (or the text's length): one pass, from the end. */
function nextIndex(text: string, ch: string): Int32Array {
  const out = new Int32Array(text.length + 1);
  out[text.length] = text.length;
  for (let i = text.length - 1; i >= 0; i--) out[i] = text[i] === ch ? i : out[i + 1]!;
  return out;
}

/** Parses `text` into nodes (see RichNode); linear time, never throws. */
export function parseRich(text: string): RichNode[] {
  const next = { '*': nextIndex(text, '*'), _: nextIndex(text, '_'), '`': nextIndex(text, '`') };
  const newline = nextIndex(text, '\n');
  const out: RichNode[] = [];
  // Fenced code blocks first (they may span lines); an unclosed fence is plain text.
  let at = 0;
  while (at < text.length) {
    const open = text.indexOf(FENCE, at);
    const close = open < 0 ? -1 : text.indexOf(FENCE, open + FENCE.length);
    if (open < 0 || close < 0) break;
    inline(at, open, 0, out);
    out.push({ t: 'pre', v: text.slice(open + FENCE.length, close) });
    at = close + FENCE.length;
  }
  inline(at, text.length, 0, out);
  return merge(out);

  /** Inline markup of text[start, end) into `into`. */
  function inline(start: number, end: number, depth: number, into: RichNode[]): void {
    let plain = start;
    let i = start;
    const flush = (to: number) => {
      if (to > plain) into.push({ t: 'text', v: text.slice(plain, to) });
    };
    while (i < end) {
      const ch = text[i]!;
      if (ch === '`') {
        const close = next['`'][i + 1]!;
        if (close < end && close > i + 1 && newline[i]! > close) {
          flush(i);
          into.push({ t: 'code', v: text.slice(i + 1, close) });
          i = plain = close + 1;
          continue;
        }
      } else if ((ch === '*' || ch === '_') && depth < MAX_DEPTH && !isWord(text[i - 1]) && !isSpace(text[i + 1])) {
        const close = next[ch][i + 1]!;
        if (
          close < end &&
          close > i + 1 &&
          newline[i]! > close &&
          !isSpace(text[close - 1]) &&
          !isWord(text[close + 1])
        ) {
          flush(i);
          const c: RichNode[] = [];
          inline(i + 1, close, depth + 1, c);
          into.push({ t: ch === '*' ? 'bold' : 'italic', c });
          i = plain = close + 1;
          continue;
        }
      } else if ((ch === 'h' || ch === 'H') && !isWord(text[i - 1]) && URL_START.test(text.slice(i, i + 8))) {
        let stop = i;
        while (stop < end && !isSpace(text[stop])) stop++;
        while (stop > i && TRAILING.has(text[stop - 1]!)) stop--;
        const href = safeHref(text.slice(i, stop));
        if (href) {
          flush(i);
          into.push({ t: 'link', href, v: text.slice(i, stop) });
          i = plain = stop;
          continue;
        }
        i = Math.max(stop, i + 1); // not a link: neither is any part of this run (keeps the scan linear)
        continue;
      }
      i++;
    }
    flush(end);
  }
}

/** The URL when it parses as http(s) with a host; null otherwise (no other scheme is ever linked). */
function safeHref(candidate: string): string | null {
  try {
    const url = new URL(candidate);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' ? url.href : null;
  } catch {
    return null;
  }
}

/** Joins neighbouring text nodes. */
function merge(nodes: RichNode[]): RichNode[] {
  const out: RichNode[] = [];
  for (const n of nodes) {
    const last = out[out.length - 1];
    if (n.t === 'text' && last?.t === 'text') out[out.length - 1] = { t: 'text', v: last.v + n.v };
    else out.push(n);
  }
  return out;
}

/** The text a reader sees (what the nodes show, markers gone). */
export function plainText(nodes: readonly RichNode[]): string {
  return nodes.map((n) => ('c' in n ? plainText(n.c) : n.v)).join('');
}

function toElements(nodes: readonly RichNode[], key: string): ReactNode[] {
  return nodes.map((n, i) => {
    const k = `${key}.${i}`;
    switch (n.t) {
      case 'text':
        return n.v;
      case 'link':
        return (
          <a key={k} href={n.href} target="_blank" rel="noopener noreferrer">
            {n.v}
          </a>
        );
      case 'bold':
        return <strong key={k}>{toElements(n.c, k)}</strong>;
      case 'italic':
        return <em key={k}>{toElements(n.c, k)}</em>;
      case 'code':
        return <code key={k}>{n.v}</code>;
      case 'pre':
        return (
          <pre key={k}>
            <code>{n.v}</code>
          </pre>
        );
    }
  });
}

/** A message's text as React elements (see parseRich). */
export function RichText({ text }: { text: string }) {
  return <>{toElements(parseRich(text), 'r')}</>;
}
