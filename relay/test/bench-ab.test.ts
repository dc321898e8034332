// The bench's before-and-after runner (bench/ab.ts): it reads each run's figures from the report's "Every run" table,
// pairs them, and summarizes the ratios with an exact sign test.
import { describe, expect, it } from 'vitest';
import { parseAbArgs, parseEveryRun, renderAb, signTestP, summarizePairs } from '../bench/ab.js';

const REPORT = `
## Every run

"unit" is a delivery, a connection, a drained message or a sign-in.

| task | server | rep | per s | p50 ms | p99 ms | server CPU µs/unit | main µs/unit | server cores | per commit | disk KB/unit | other load cores |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| closed | weconnect | 1 | 15,994 | 50.8 | 95.4 | 68.2 | 55.5 | 1.09 | 650.2 | 2.1 | 0.04 |
| open 5000/s | weconnect | 1 | 5,012 | 1.9 | 54.2 | 149.9 | 139.3 | 0.75 | 3.1 | 8.6 | 0.09 |
| open 5000/s | bare | 1 | 5,001 | 1.5 | 23.6 | 125.3 | 112.0 | 0.63 | – | 0.0 | 0.03 |

## Command
`;

describe('bench ab', () => {
  it('reads the phases of a report by its column headers, commas and dashes included', () => {
    const phases = parseEveryRun(REPORT);
    expect(phases).toHaveLength(3);
    expect(phases[0]).toEqual({
      task: 'closed',
      server: 'weconnect',
      perS: 15994,
      p50Ms: 50.8,
      p99Ms: 95.4,
      cpuUs: 68.2,
      mainUs: 55.5,
      perCommit: 650.2,
      diskKb: 2.1,
    });
    expect(phases[2]?.server).toBe('bare');
    expect(phases[2]?.perCommit).toBeNaN();
    // A report of another build with a column fewer still reads the others.
    const older = REPORT.replace(/\| main µs\/unit /, '| ')
      .replace(/\| 55\.5 /, '| ')
      .replace(/\| 139\.3 /, '| ')
      .replace(/\| 112\.0 /, '| ');
    expect(parseEveryRun(older)[0]?.cpuUs).toBe(68.2);
    expect(parseEveryRun(older)[0]?.mainUs).toBeNaN();
    expect(parseEveryRun('no table here')).toEqual([]);
  });

  it('gives the exact two-sided sign test', () => {
    expect(signTestP(6, 6)).toBeCloseTo(2 / 64, 10);
    expect(signTestP(0, 6)).toBeCloseTo(2 / 64, 10);
    expect(signTestP(5, 6)).toBeCloseTo((2 * 7) / 64, 10);
    expect(signTestP(3, 6)).toBe(1);
    expect(signTestP(10, 10)).toBeCloseTo(2 / 1024, 10);
    expect(signTestP(0, 0)).toBe(1);
  });

  it('summarizes pairs as head ÷ base, leaving out pairs without both figures', () => {
    const s = summarizePairs([
      [100, 90],
      [100, 110],
      [80, 72],
      [Number.NaN, 50],
    ]);
    expect(s.ratios).toEqual([0.9, 1.1, 0.9]);
    expect(s.median).toBeCloseTo(0.9, 10);
    expect([s.min, s.max]).toEqual([0.9, 1.1]);
    expect([s.headLower, s.differing]).toEqual([2, 3]);
    expect(s.p).toBe(1);
  });

  it('renders one row per phase and metric, with each pair in order', () => {
    const base = parseEveryRun(REPORT);
    const head = base.map((p) => ({ ...p, cpuUs: p.cpuUs * 0.9 }));
    const text = renderAb([
      { base, head },
      { base, head },
    ]);
    expect(text).toContain(
      '| closed | weconnect | server CPU µs/unit | 68.2 → 61.4, 68.2 → 61.4 | 0.90x (0.90–0.90) | 2 of 2 | 0.500 |',
    );
    expect(text).toContain(
      '| open 5000/s | bare | per s | 5001 → 5001, 5001 → 5001 | 1.00x (1.00–1.00) | 0 of 2 | 1.000 |',
    );
  });

  it('takes its own options before -- and refuses bench options that would break the pairing', () => {
    expect(parseAbArgs(['--base', 'HEAD~1', '--pairs', '4', '--', '--quick', '--rates', '5000'])).toEqual({
      base: 'HEAD~1',
      pairs: 4,
      benchArgs: ['--quick', '--rates', '5000'],
    });
    expect(parseAbArgs(['--base', 'main']).pairs).toBe(6);
    expect(() => parseAbArgs(['--pairs', '2'])).toThrow(/--base/);
    expect(() => parseAbArgs(['--base', 'x', '--pairs', '0'])).toThrow(/--pairs/);
    expect(() => parseAbArgs(['--base', 'x', '--', '--reps', '3'])).toThrow(/--reps/);
    expect(() => parseAbArgs(['--base', 'x', '--', '--write'])).toThrow(/--write/);
  });
});
