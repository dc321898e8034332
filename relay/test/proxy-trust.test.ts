// TRUST_PROXY against a real relay listening beyond loopback: X-Forwarded-For is believed only from the configured
// proxy address, so a client that reaches the relay directly cannot pick the address its sign-in limit counts; and a
// broad trust setting is warned about at start.
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createRelay } from '../src/server.js';
import type { Relay } from '../src/server.js';
import { api, signUp } from './helpers.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A non-loopback IPv4 address of this host: connections to it come from it, not from 127.0.0.1. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

let relay: Relay | undefined;
let dir: string | undefined;
afterEach(async () => {
  await relay?.close();
  relay = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string>): Promise<{ port: number; lines: Record<string, unknown>[] }> {
  dir = mkdtempSync(join(tmpdir(), 'weconnect-proxy-'));
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  const config = loadConfig({
    BCRYPT_COST: '4',
    JWT_SECRET: randomBytes(32).toString('base64url'),
    DATA_DIR: dir,
    WEB_DIST: join(dir, 'none'),
    SIGNIN_MAX_FAILURES: '2',
    ...env,
  });
  relay = await createRelay(config, { logger: pino({ level: 'info' }, sink) });
  const { port } = await relay.listen(0, '0.0.0.0');
  return { port, lines };
}

const wrongSignIn = (base: string, username: string, forwardedFor: string) =>
  api(base, 'POST', '/api/sessions', {
    body: { username, authKey: randomBytes(32).toString('base64url') },
    headers: { 'x-forwarded-for': forwardedFor },
  });

describe.skipIf(outside === undefined)('TRUST_PROXY set to the proxy address', () => {
  it('counts a direct client by its own address whatever X-Forwarded-For it sends, and a proxied one by the address the proxy names', async () => {
    // The "proxy" is this host's loopback; the attacker connects to the outside address directly.
    const { port } = await start({ TRUST_PROXY: '127.0.0.1' });
    const viaProxy = `http://127.0.0.1:${port}`;
    const direct = `http://${outside}:${port}`;
    const victim = await signUp(viaProxy);

    const answers: number[] = [];
    for (let i = 1; i <= 3; i++) answers.push((await wrongSignIn(direct, victim.username, `203.0.113.${i}`)).status);
    // Two failures allowed per (username, address): the third is refused although it claimed a fresh address.
    expect(answers).toEqual([401, 401, 429]);

    // A client behind the trusted proxy is its own address: the attacker's lock-out does not reach it.
    expect((await wrongSignIn(viaProxy, victim.username, '198.51.100.7')).status).toBe(401);
  });
});

describe('the start-up notice about proxy trust', () => {
  it('warns when TRUST_PROXY believes any hop and the relay listens beyond loopback', async () => {
    const { lines } = await start({ TRUST_PROXY: '1' });
    const warning = lines.find((l) => l.level === 40 && String(l.msg).includes('X-Forwarded-For'));
    expect(warning?.msg).toMatch(/TRUST_PROXY=1 believes X-Forwarded-For from whoever connects/);
  });

  it('only names the trusted proxy when TRUST_PROXY is an address', async () => {
    const { lines } = await start({ TRUST_PROXY: '127.0.0.1' });
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
    expect(lines.find((l) => String(l.msg).includes('believed only from 127.0.0.1'))).toBeDefined();
  });

  it('says nothing when proxy trust is off', async () => {
    const { lines } = await start({});
    expect(lines.filter((l) => String(l.msg).includes('X-Forwarded-For'))).toEqual([]);
  });
});
