// The client side of the cost: runs crypto/bench/client-cost.ts (the crypto workspace's own script, in Node and in
// Chromium) and parses the one JSON line it prints. Missing script, failure or timeout: "not measured" with why.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';

const figuresSchema = z.object({
  send_us: z.number(),
  receive_us: z.number(),
  group100_send_us: z.number(),
  group_receive_us: z.number(),
  version: z.string(),
});
const outputSchema = z.object({
  node: figuresSchema,
  chromium: figuresSchema.nullable(),
  chromiumSkipped: z.string().nullable(),
});

export type ClientFigures = z.infer<typeof figuresSchema>;
export type ClientCost =
  | ({ measured: true; ms: number; command: string } & z.infer<typeof outputSchema>)
  | { measured: false; reason: string; command: string };

export const CLIENT_COST_SCRIPT = 'crypto/bench/client-cost.ts';
const ARGS = ['tsx', '--conditions=source', CLIENT_COST_SCRIPT, '--json', '--chromium'];
export const CLIENT_COST_COMMAND = `npx ${ARGS.join(' ')}`;

let runningGroup: number | null = null;

/** Kills the running script and its children (the bench's watchdog and signal handlers call this). */
export function killClientCost(): void {
  if (runningGroup !== null) {
    try {
      process.kill(-runningGroup, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Runs the client-cost script from the repository root, killed after `timeoutMs`. */
export async function runClientCost(root: string, timeoutMs: number): Promise<ClientCost> {
  const command = CLIENT_COST_COMMAND;
  if (!existsSync(join(root, CLIENT_COST_SCRIPT))) {
    return { measured: false, reason: `${CLIENT_COST_SCRIPT} does not exist yet`, command };
  }
  if (timeoutMs < 10_000) return { measured: false, reason: 'no time left in the 10-minute budget', command };
  const started = performance.now();
  const child = spawn('npx', ARGS, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let timedOut = false;
  // The script's own children (tsx, Chromium) are in its process group: kill the group.
  runningGroup = child.pid ?? null;
  const timer = setTimeout(() => {
    timedOut = true;
    killClientCost();
  }, timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  runningGroup = null;
  if (timedOut) return { measured: false, reason: `timed out after ${Math.round(timeoutMs / 1000)} s`, command };
  const line = stdout
    .split('\n')
    .map((l) => l.trim())
    .reverse()
    .find((l) => l.startsWith('{'));
  if (code !== 0 || line === undefined) {
    const tail = (stderr.trim().split('\n').at(-1) ?? '').slice(0, 200);
    return { measured: false, reason: `exited with code ${String(code)}${tail ? `: ${tail}` : ''}`, command };
  }
  try {
    const parsed = outputSchema.parse(JSON.parse(line));
    return { measured: true, ms: performance.now() - started, command, ...parsed };
  } catch (error) {
    return {
      measured: false,
      reason: `unexpected output: ${error instanceof Error ? error.message.slice(0, 200) : String(error)}`,
      command,
    };
  }
}
