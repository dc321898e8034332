// The operator's tool: `npm run admin -- <command>` against the configured store (SQLite in DATA_DIR, or
// MONGODB_URI), from the same environment as the relay. Safe while the relay runs: SQLite serializes the writers
// (WAL), and with REDIS_URL the running nodes are told which sessions ended, so they drop those sockets at once;
// otherwise those sockets close when their access token expires (ACCESS_TOKEN_TTL) and cannot come back.
import { join } from 'node:path';
import { createClient } from 'redis';
import { ConfigError, loadConfig } from './config.js';
import type { Config } from './config.js';
import { encodeEnvelope } from './cluster/wire.js';
import { openStore, sqliteFile } from './server.js';
import { rewriteFile } from './store/sqlite/sqlite-store.js';
import { loadOrCreateSecret, transparencyKey } from './secrets.js';
import { KeyTransparency, loggingStore } from './service/transparency.js';
import { AdminService } from './service/admin.js';
import { createInvite } from './service/invites.js';
import type { Store } from './store/store.js';

const USAGE = `usage: npm run admin -- <command>
  list [--after <username>] [--limit <n>] [--json]   accounts by username
  counts                                             what the store holds (JSON)
  deactivate <username|userId>                       no more sign-ins; every session revoked
  reactivate <username|userId>
  revoke <username|userId>                           revoke every session (devices and keys stay)
  remove-device <deviceId>                           the device, its keys, sessions and mailbox
  delete <username|userId> --yes                     erase the account and everything of it
  invite [--days <n>]                                an invite token (shown once; default 7 days)
  page-size <bytes>                                  rewrite the SQLite file with pages of this size (relay stopped)
  compact                                            rewrite the SQLite file without its free pages (relay stopped)`;

class UsageError extends Error {}

interface Parsed {
  command: string;
  args: string[];
  flags: Map<string, string | true>;
}

function parse(argv: string[]): Parsed {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('no command');
  const args: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    if (!arg.startsWith('--')) {
      args.push(arg);
      continue;
    }
    const name = arg.slice(2);
    if (name === 'yes' || name === 'json') flags.set(name, true);
    else {
      const value = rest[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      flags.set(name, value);
    }
  }
  return { command, args, flags };
}

function positiveInt(value: string | true | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer`);
  return n;
}

/** With REDIS_URL, tells the running relay nodes which session families ended (they drop those sockets). */
async function tellNodes(config: Config, familyIds: string[]): Promise<void> {
  if (config.redisUrl === undefined || familyIds.length === 0) return;
  const client = createClient({ url: config.redisUrl, socket: { connectTimeout: 5000, reconnectStrategy: false } });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.publish('wc:cluster', encodeEnvelope({ from: 'admin', event: { type: 'revoked', familyIds } }));
  } catch {
    console.error('could not reach Redis: the sockets of those sessions close when their access tokens expire');
  } finally {
    if (client.isOpen) client.destroy();
  }
}

async function run(store: Store, config: Config, p: Parsed): Promise<number> {
  const ended: string[] = [];
  const admin = new AdminService(store, (families) => ended.push(...families));
  const account = async (): Promise<{ userId: string; username: string }> => {
    const who = p.args[0];
    if (who === undefined) throw new UsageError(`${p.command} needs a username or user id`);
    const found = await admin.resolve(who);
    if (!found) throw new Error(`no such account: ${who}`);
    return found;
  };
  try {
    switch (p.command) {
      case 'list': {
        const after = p.flags.get('after');
        const accounts = await admin.listAccounts(
          typeof after === 'string' ? after.toLowerCase() : '',
          positiveInt(p.flags.get('limit'), 100, 'limit'),
        );
        if (p.flags.has('json')) console.log(JSON.stringify(accounts));
        else {
          for (const a of accounts) {
            const created = new Date(a.createdAt).toISOString();
            console.log(
              `${a.username}\t${a.userId}\t${a.devices} devices\t${a.disabled ? 'deactivated' : 'active'}\t${created}`,
            );
          }
        }
        return 0;
      }
      case 'counts':
        console.log(JSON.stringify(await admin.counts()));
        return 0;
      case 'deactivate':
      case 'reactivate': {
        const a = await account();
        await admin.setDeactivated(a.userId, p.command === 'deactivate');
        console.log(`${a.username}: ${p.command}d`);
        return 0;
      }
      case 'revoke': {
        const a = await account();
        console.log(`${a.username}: ${await admin.revokeSessions(a.userId)} sessions revoked`);
        return 0;
      }
      case 'remove-device': {
        const deviceId = p.args[0];
        if (deviceId === undefined) throw new UsageError('remove-device needs a device id');
        if (!(await admin.removeDevice(deviceId))) throw new Error(`no such device: ${deviceId}`);
        console.log(`device ${deviceId} removed`);
        return 0;
      }
      case 'delete': {
        const a = await account();
        if (!p.flags.has('yes')) throw new UsageError(`delete erases ${a.username} for good: add --yes`);
        await admin.deleteAccount(a.userId);
        console.log(`${a.username}: deleted, with its devices, keys, sessions, backup, memberships and mailboxes`);
        return 0;
      }
      case 'invite': {
        const days = positiveInt(p.flags.get('days'), 7, 'days');
        const invite = await createInvite(store, { now: Date.now(), ttlSeconds: days * 24 * 3600 });
        console.log(invite.token);
        console.error(`valid until ${new Date(invite.expiresAt).toISOString()}; shown once, only its hash is kept`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command: ${p.command}`);
    }
  } finally {
    await tellNodes(config, ended);
  }
}

const MB = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

/**
 * `page-size <bytes>` and `compact`: SQLITE_PAGE_SIZE sets the page size of a new database file only; `page-size`
 * rewrites an existing one, `compact` rewrites it with the size it has, and both leave out its free pages
 * (relay/README.md). Run without opening the store: they need the file to itself.
 */
function rewrite(config: Config, p: Parsed): number {
  let size: number | undefined;
  if (p.command === 'page-size') {
    size = Number(p.args[0]);
    if (p.args[0] === undefined || !Number.isInteger(size)) {
      console.error(`page-size needs a number of bytes\n${USAGE}`);
      return 2;
    }
  }
  if (config.mongodbUri !== undefined) throw new Error(`${p.command} is for the SQLite store; MONGODB_URI is set`);
  const file = sqliteFile(config);
  const started = performance.now();
  const { from, to, bytesBefore, bytesAfter } = rewriteFile(file, size);
  const took = ((performance.now() - started) / 1000).toFixed(1);
  if (size === from) console.log(`${file}: ${to}-byte pages already`);
  else {
    const pages = from === to ? `${to}-byte pages` : `${from}-byte pages → ${to}`;
    console.log(`${file}: ${pages}, ${MB(bytesBefore)} → ${MB(bytesAfter)} with its WAL (${took} s)`);
  }
  return 0;
}

async function main(): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const config = loadConfig();
  if (parsed.command === 'page-size' || parsed.command === 'compact') return rewrite(config, parsed);
  // The operator's changes (removing a device, deleting an account) are logged like the relay's own (issue #16).
  const backend = await openStore(config);
  const secret = config.jwtSecret ?? loadOrCreateSecret(join(config.dataDir, 'jwt-secret')).secret;
  const store = loggingStore(backend, new KeyTransparency(backend, transparencyKey(secret)));
  try {
    return await run(store, config, parsed);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  } finally {
    await store.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(
      err instanceof ConfigError ? err.message : `admin: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(1);
  },
);
