// The bench's SVG charts (bench/charts.ts): well-formed XML with a white background, a title and axis labels, and
// the figures themselves (latencies, CPU per delivery, ratios to the baseline) written on them.
import { describe, expect, it } from 'vitest';
import { chartsOf, cpuChart, escapeXml, latencyChart } from '../bench/charts.js';
import { Runs } from '../bench/figures.js';
import { idleHeap, stalls } from '../bench/report.js';
import type { PhaseRun, ServerRun } from '../bench/figures.js';

/**
 * A strict well-formedness check for the XML the charts use (elements, quoted attributes, text, the five entities):
 * every tag closes in order, one root, no bare `<` or `&` in text or attributes. Throws on the first fault.
 */
function assertWellFormedXml(xml: string): { root: string; elements: Map<string, number> } {
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  const stack: string[] = [];
  const elements = new Map<string, number>();
  let root: string | null = null;
  let match: RegExpExecArray | null;
  const checkEntities = (text: string): void => {
    const bad = text.replace(/&(amp|lt|gt|quot|apos);/g, '').match(/&/);
    if (bad) throw new Error(`unescaped & in ${JSON.stringify(text.slice(0, 60))}`);
  };
  while ((match = token.exec(xml)) !== null) {
    const [, closing, name, attributes, selfClosing, text, stray] = match;
    if (stray !== undefined) throw new Error(`stray < at ${match.index}: ${xml.slice(match.index, match.index + 40)}`);
    if (text !== undefined) {
      if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root: ${text.slice(0, 40)}`);
      checkEntities(text);
      continue;
    }
    const tag = name as string;
    checkEntities(attributes ?? '');
    if (closing === '/') {
      const open = stack.pop();
      if (open !== tag) throw new Error(`</${tag}> closes <${String(open)}>`);
      continue;
    }
    if (stack.length === 0) {
      if (root !== null) throw new Error('more than one root element');
      root = tag;
    }
    elements.set(tag, (elements.get(tag) ?? 0) + 1);
    if (selfClosing !== '/') stack.push(tag);
  }
  if (stack.length > 0) throw new Error(`unclosed: ${stack.join(' > ')}`);
  if (root === null) throw new Error('no root element');
  return { root, elements };
}

/** The text content of every <text> element, in order. */
const texts = (svg: string): string[] => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1] as string);

describe('the bench latency chart', () => {
  const svg = latencyChart([
    {
      server: 'weconnect',
      points: [
        { rate: 2000, p50: 1.2, p99: 4.5 },
        { rate: 10_000, p50: 3.4, p99: 48.2 },
      ],
    },
    {
      server: 'bare',
      points: [
        { rate: 2000, p50: 0.9, p99: 3.1 },
        { rate: 10_000, p50: 2.2, p99: 12.7 },
      ],
    },
    { server: 'ws', points: [{ rate: 2000, p50: Number.NaN, p99: Number.NaN }] },
  ]);

  it('is well-formed SVG on a white background with a title and both axis labels', () => {
    const { root, elements } = assertWellFormedXml(svg);
    expect(root).toBe('svg');
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(svg).toMatch(/<rect x="0" y="0" width="\d+" height="\d+" fill="#ffffff"\/>/);
    expect(elements.get('title')).toBeGreaterThan(0);
    expect(texts(svg)).toContain('Latency against offered rate (open loop)');
    expect(texts(svg)).toContain('latency, ms (log scale)');
    expect(texts(svg)).toContain('offered rate, messages per second (log scale)');
  });

  it('draws one p99 and one p50 line per server with figures, and names the servers in the legend', () => {
    expect(svg.match(/<polyline /g)).toHaveLength(4);
    expect(svg.match(/stroke-dasharray/g)).toHaveLength(2);
    expect(texts(svg)).toEqual(expect.arrayContaining(['weconnect', 'bare', '48', '13', '4.5', '2k/s', '10k/s']));
    // A server without figures gets no line and no legend entry.
    expect(texts(svg)).not.toContain('ws');
  });

  it('says so when there are no open-loop figures', () => {
    const empty = latencyChart([]);
    assertWellFormedXml(empty);
    expect(texts(empty)).toContain('no open-loop figures in this run');
  });
});

describe('the bench CPU chart', () => {
  const svg = cpuChart(
    [
      {
        workload: 'closed',
        bars: [
          { server: 'weconnect', value: 75.4, ratio: 1.23 },
          { server: 'bare', value: 61.3, ratio: 1 },
          { server: 'ws', value: 26.1, ratio: 0.43 },
        ],
      },
      {
        workload: 'open 10000/s',
        bars: [
          { server: 'weconnect', value: 90, ratio: 0.97 },
          { server: 'bare', value: 92.8, ratio: 1 },
        ],
      },
    ],
    'bare',
  );

  it('is well-formed SVG on a white background with a title and both axis labels', () => {
    const { root } = assertWellFormedXml(svg);
    expect(root).toBe('svg');
    expect(svg).toMatch(/fill="#ffffff"/);
    expect(texts(svg)).toContain('Server CPU per delivery');
    expect(texts(svg)).toContain('server CPU µs per delivery');
    expect(texts(svg)).toContain('workload');
  });

  it('draws one bar per server and workload with its µs and its ratio to the baseline', () => {
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(5);
    expect(texts(svg)).toEqual(
      expect.arrayContaining(['75 ×1.23', '61', '26 ×0.43', '90 ×0.97', '93', 'closed', 'open 10000/s']),
    );
  });

  it('escapes what it writes', () => {
    expect(escapeXml(`a<b & "c" 'd'>`)).toBe('a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;');
    const odd = cpuChart([{ workload: 'a<&b', bars: [{ server: 's"1', value: 3, ratio: null }] }], 's"1');
    assertWellFormedXml(odd);
    expect(texts(odd)).toContain('a&lt;&amp;b');
  });
});

/** A messaging phase of a run, as run.ts records it: `delivered` in a 1-second window at `cpuUs` per delivery. */
function messagingPhase(label: string, delivered: number, cpuUs: number, p50: number, p99: number): PhaseRun {
  return {
    label,
    result: {
      kind: 'messaging',
      open: label.startsWith('open'),
      skipped: 0,
      windowMs: 1000,
      delivered,
      sent: delivered,
      latencyMs: { p50, p99, max: p99, count: delivered },
      messages: delivered,
      lost: 0,
      duplicates: 0,
      strays: 0,
      late: 0,
      drainWaitMs: 0,
      rejected: 0,
      loadgenCpuUs: 1000,
      loadgenLoopDelayP99Ms: 1,
      maxSendLagMs: 1,
    },
    serverCpuUs: cpuUs * delivered,
    serverLoopActiveMs: 0,
    serverLoopDelay: { p99Ms: 0, maxMs: 0 },
    serverMainThread: null,
    serverCounters: {},
    machineBusyUs: null,
    serverRss: 0,
    memory: null,
  };
}

function serverRun(server: string, phases: PhaseRun[], rep = 0): ServerRun {
  return {
    server,
    rep,
    setupMs: 0,
    connectMs: 0,
    devices: 0,
    rssReady: 0,
    rssConnected: 0,
    phases,
    failure: null,
    skipped: null,
    durationMs: 0,
  };
}

describe('the bench charts from a run', () => {
  const runs = new Runs(
    [
      serverRun('weconnect', [
        messagingPhase('closed', 1000, 80, 5, 9),
        messagingPhase('open 2000/s', 2000, 120, 2, 7.5),
      ]),
      serverRun('bare', [messagingPhase('closed', 1000, 64, 4, 8), messagingPhase('open 2000/s', 2000, 100, 1.5, 6)]),
      serverRun('weconnect-2node', [messagingPhase('closed', 100, 2400, 200, 400)]),
    ],
    1,
  );
  const charts = chartsOf(
    runs,
    ['weconnect', 'weconnect-2node', 'bare'],
    'bare',
    ['closed', 'open 2000/s'],
    new Set(['weconnect-2node']),
  );

  it('puts each server’s median CPU per delivery and its ratio to the baseline on the bars', () => {
    assertWellFormedXml(charts.cpu);
    expect(texts(charts.cpu)).toEqual(expect.arrayContaining(['80 ×1.25', '64', '120 ×1.20', '100']));
  });

  it('plots the open-loop latencies and leaves out the servers on a reduced plan, saying so', () => {
    assertWellFormedXml(charts.latency);
    expect(texts(charts.latency)).toEqual(expect.arrayContaining(['7.5', '6.0', '2k/s']));
    expect(texts(charts.latency).join(' ')).toContain('not shown: weconnect-2node (reduced plan)');
    expect(texts(charts.cpu)).not.toContain('weconnect-2node');
  });
});

describe('the p99 note on stalls', () => {
  const phase = (loopMaxMs: number, gcMaxMs: number | null): PhaseRun => ({
    ...messagingPhase('open 5000/s', 5000, 1, 1, 12),
    serverLoopDelay: { p99Ms: 1, maxMs: loopMaxMs },
    ...(gcMaxMs === null ? {} : { serverGcPause: { count: 3, totalMs: 3 * gcMaxMs, maxMs: gcMaxMs } }),
  });

  it('gives the median longest loop delay and GC pause of the relay and of bare Socket.IO', () => {
    const runs = new Runs(
      [
        serverRun('weconnect', [phase(20, 8)], 0),
        serverRun('weconnect', [phase(30, 11)], 1),
        serverRun('weconnect', [phase(24, 9)], 2),
        serverRun('bare', [phase(12, 3)], 0),
        serverRun('bare', [phase(14, 4)], 1),
        serverRun('bare', [phase(13, 5)], 2),
      ],
      3,
    );
    expect(stalls(runs, 'open 5000/s')).toBe('event-loop delay max / longest GC pause 24 / 9.0 ms; bare: 13 / 4.0 ms');
  });

  it('says so when a run has no GC figures, and leaves bare out when it did not run', () => {
    const runs = new Runs([serverRun('weconnect', [phase(20, null)])], 1);
    expect(stalls(runs, 'open 5000/s')).toBe('event-loop delay max / longest GC pause 20 ms / –');
  });
});

describe('the note on RSS per idle connection', () => {
  const idle = (rssKiB: number, heapKiB: number): PhaseRun => ({
    ...messagingPhase('idle 5000', 0, 0, 0, 0),
    result: { kind: 'idle', windowMs: 1000, connections: 1000, loadgenCpuUs: 1 },
    memory: { rssBefore: 0, rssAfter: rssKiB * 1024 * 1000, heapBefore: 0, heapAfter: heapKiB * 1024 * 1000 },
  });

  it('gives the median heap per connection of each server that ran, the relay first', () => {
    const runs = new Runs(
      [
        serverRun('ws', [idle(7.9, 2.8)], 0),
        serverRun('weconnect', [idle(10.4, 8.0)], 0),
        serverRun('weconnect', [idle(9.1, 8.2)], 1),
        serverRun('weconnect', [idle(11.2, 7.9)], 2),
        serverRun('bare', [idle(17.5, 11.1)], 0),
      ],
      3,
    );
    expect(idleHeap(runs, 'idle 5000')).toBe(
      'heap used per connection (KiB): weconnect 8.0, bare 11.1, ws 2.8; RSS also counts heap pages V8 gives back later',
    );
  });

  it('leaves out a server that did not run the phase', () => {
    const runs = new Runs([serverRun('weconnect', [idle(10, 8)]), serverRun('bare', [])], 1);
    expect(idleHeap(runs, 'idle 5000')).toBe(
      'heap used per connection (KiB): weconnect 8.0; RSS also counts heap pages V8 gives back later',
    );
  });
});
