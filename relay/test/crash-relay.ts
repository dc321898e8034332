// The relay as a real OS process (src/main.ts under tsx) for the crash test: start it, kill it with SIGKILL,
// start it again on the same DATA_DIR and port.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const RELAY_DIR = fileURLToPath(new URL('..', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const OUTPUT_KEPT = 16 * 1024;

export interface RelayProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** The process's recent stdout and stderr, for failure messages. */
  output(): string;
  /** SIGKILL: no shutdown hook runs, nothing queued is flushed. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful close), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `node --conditions=source --import tsx src/main.ts` (or `node <argv>`) with `env` (PORT 0 unless given) and resolves once
 * it prints the URL it listens on (main.ts prints "WeConnect relay listening on <url> ...").
 */
export function startRelayProcess(
  env: Record<string, string>,
  timeoutMs = 20_000,
  argv: string[] = ['--conditions=source', '--import', 'tsx', MAIN],
): Promise<RelayProcess> {
  const child = spawn(process.execPath, argv, {
    cwd: RELAY_DIR,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEPT);
  };
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const waitExit = async (timeout: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeout);
    });
    const done = await Promise.race([exited.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return done;
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(`exited (code ${String(code)}, signal ${String(signal)})`);
    const fail = (reason: string): void => {
      settle();
      child.kill('SIGKILL');
      reject(new Error(`relay process ${reason}; its output:\n${output}`));
    };
    const onData = (): void => {
      const match = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(output);
      if (match?.[1] === undefined || match[2] === undefined) return;
      settle();
      resolve({
        url: match[1],
        port: Number(match[2]),
        child,
        output: () => output,
        async kill() {
          child.kill('SIGKILL');
          if (!(await waitExit(10_000))) throw new Error('the relay process survived SIGKILL for 10 s');
        },
        async stop(graceMs = 5_000) {
          child.kill('SIGTERM');
          if (!(await waitExit(graceMs))) {
            child.kill('SIGKILL');
            await waitExit(10_000);
          }
        },
      });
    };
    const timer = setTimeout(() => fail(`did not listen within ${timeoutMs} ms`), timeoutMs);
    const settle = (): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.stdout?.off('data', onData);
    };
    child.once('exit', onExit);
    child.stdout?.on('data', onData);
  });
}
