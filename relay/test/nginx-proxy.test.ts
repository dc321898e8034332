// The load balancer of docker-compose.yml (deploy/nginx.conf, run by a real nginx with only its addresses changed to
// this machine's) in front of a real relay that trusts exactly that balancer: a client's own X-Forwarded-For never
// picks the address its sign-in limit counts, while a client behind the trusted TLS proxy is counted by its own
// address — so one client cannot lock another out, and not everyone becomes the proxy's one address.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, signUp, startRelay } from './helpers.js';
import type { TestAccount, TestRelay } from './helpers.js';
import { startNginx } from './services.js';
import type { Service } from './services.js';

/** A non-loopback address of this host: a connection to it comes from it, i.e. not from the trusted proxy. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

const shipped = readFileSync(join(import.meta.dirname, '../../deploy/nginx.conf'), 'utf8');

/** deploy/nginx.conf with the compose addresses replaced: relays → this relay, the host's TLS proxy → loopback. */
function localConfig(shippedConf: string, relayPort: number, port: number, dir: string): string {
  const replace = (text: string, from: RegExp, to: string): string => {
    if (!from.test(text)) throw new Error(`deploy/nginx.conf no longer has ${String(from)}`);
    return text.replace(from, to);
  };
  let conf = shippedConf;
  conf = replace(conf, /worker_processes auto;/, 'worker_processes 1;');
  conf = conf.replaceAll('/tmp/', `${dir}/`); // the pid file and temporary paths
  conf = replace(conf, /server relay1:8080[^;]*;\s*server relay2:8080[^;]*;/, `server 127.0.0.1:${relayPort};`);
  conf = replace(conf, /listen 8080;/, `listen 0.0.0.0:${port};`);
  conf = replace(conf, /set_real_ip_from 172\.28\.0\.1;/, 'set_real_ip_from 127.0.0.1;');
  return conf;
}

let relay: TestRelay;
let nginx: Service | null = null;
let skip = outside === undefined ? 'no non-loopback IPv4 address' : '';
let victim: TestAccount;

beforeAll(async () => {
  if (skip) return;
  // The relays of docker-compose.yml trust exactly the balancer; here it connects from 127.0.0.1.
  relay = await startRelay({ TRUST_PROXY: '127.0.0.1', SIGNIN_MAX_FAILURES: '2' });
  const started = await startNginx((port, dir) => localConfig(shipped, relay.port, port, dir));
  if ('skip' in started) skip = started.skip;
  else nginx = started.service;
  victim = await signUp(relay.url);
}, 30_000);
afterAll(async () => {
  await nginx?.stop();
  await relay?.close();
});

const wrongSignIn = (base: string, forwardedFor: string) =>
  api(base, 'POST', '/api/sessions', {
    body: { username: victim.username, authKey: randomBytes(32).toString('base64url') },
    headers: { 'x-forwarded-for': forwardedFor },
  });

describe('the compose load balancer in front of relays that trust exactly it', () => {
  it('counts a client behind the TLS proxy by the address the proxy appended, whatever the client wrote before it', async () => {
    if (skip) return console.warn(`[nginx-proxy] skipped: ${skip}`);
    // The "TLS proxy" on the host: it connects from loopback and appends the real client to what the client sent.
    const viaProxy = nginx!.url;
    const answers: number[] = [];
    for (const spoofed of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) {
      answers.push((await wrongSignIn(viaProxy, `${spoofed}, 198.51.100.8`)).status);
    }
    expect(answers).toEqual([401, 401, 429]);
    // Another client behind the same proxy is its own address: not locked out, not "the proxy".
    expect((await wrongSignIn(viaProxy, '198.51.100.7')).status).toBe(401);
  });

  it('counts a client that reaches the balancer directly by its own address, ignoring its X-Forwarded-For', async () => {
    if (skip) return;
    const direct = `http://${outside}:${nginx!.port}`;
    const answers: number[] = [];
    for (let i = 1; i <= 3; i++) answers.push((await wrongSignIn(direct, `203.0.113.${i}`)).status);
    expect(answers).toEqual([401, 401, 429]);
  });
});
