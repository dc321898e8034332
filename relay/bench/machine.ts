// What the bench ran on, and how busy the whole machine was (other engineers' tests share these cores).
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memGiB: number;
  node: string;
  date: string;
  loadAvgAtStart: number[];
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    date: new Date().toISOString(),
    loadAvgAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/**
 * Idle CPU time of the whole machine so far (all cores, idle + iowait), in microseconds, from /proc/stat; null where
 * there is none. Busy time is derived as wall time × cores − idle: the kernel counts idle time precisely, whereas
 * its busy columns are tick samples that undercount processes which wake up often for short bursts.
 */
export function machineIdleUs(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const [, , , idle = 0, iowait = 0] = fields;
    return (idle + iowait) * 10_000; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}
