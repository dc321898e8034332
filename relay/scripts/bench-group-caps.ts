// What a group send to offline devices costs as their mailboxes fill: a real store (SQLite, inline writer; or, with
// --mongo, MongoDB: FerretDB over PostgreSQL spawned here, or the server MONGODB_URI_TEST names), a group of `members`
// accounts (one device each) that never connect, and `sends` group sends from one member, one batch each, under the
// relay's default caps. Prints the milliseconds per send for every `every` sends, so a cost that grows with the
// queued entries shows. Run from relay/:
//   npx tsx --conditions=source scripts/bench-group-caps.ts [members=256] [sends=4000] [every=500] [--mongo]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LIMITS } from '../src/protocol.js';
import { MongoStore } from '../src/store/mongo/mongo-store.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { NewAccount, SendRequest, Store } from '../src/store/store.js';
import { startMongo } from '../test/services.js';
import { randomId, scriptAccount } from './store-accounts.js';

const mongo = process.argv.includes('--mongo');
const [members = 256, sends = 4000, EVERY = 500] = process.argv
  .slice(2)
  .filter((a) => !a.startsWith('--'))
  .map(Number);

const dir = mkdtempSync(join(tmpdir(), 'weconnect-group-caps-'));
let stopServer = async (): Promise<void> => undefined;
let store: Store;
if (mongo) {
  const started = await startMongo();
  if (!('service' in started)) throw new Error(started.skip);
  stopServer = () => started.service.stop();
  store = await MongoStore.open({
    uri: started.service.url,
    dbName: `caps_${randomId().slice(0, 8)}`,
    retentionDays: 30,
  });
} else store = new SqliteStore({ file: join(dir, 'weconnect.db'), writer: 'inline' });
try {
  const accounts = Array.from({ length: members }, (_, i) => scriptAccount(`member${i}`));
  for (const a of accounts) await store.createAccount(a);
  const sender = accounts[0] as NewAccount;
  const groupId = randomId();
  await store.createGroup(
    groupId,
    accounts.map((a, i) => ({ userId: a.userId, admin: i === 0 })),
    Date.now(),
  );
  const caps = { maxEntries: LIMITS.mailboxMaxEntries, maxBytes: LIMITS.mailboxMaxBytes };
  console.log(`${mongo ? 'MongoDB' : 'SQLite'}: ${members} members, offline; one group send of 300 bytes per batch`);
  console.log(`queued per device | ms per send (${mongo ? 'wall clock, the server included' : 'main thread'})`);
  let started = performance.now();
  for (let k = 1; k <= sends; k++) {
    const send: SendRequest = {
      senderUserId: sender.userId,
      senderDeviceId: sender.deviceId,
      id: randomId(),
      target: { kind: 'group', groupId, body: randomBytes(300) },
    };
    const [outcome] = await store.applyWrites({ sends: [send], acks: [], lastSeen: [], caps }, Date.now());
    if (outcome?.status !== 'stored') throw new Error(`send ${k}: ${outcome?.status}`);
    if (k % EVERY === 0) {
      const now = performance.now();
      console.log(`${String(k).padStart(17)} | ${((now - started) / EVERY).toFixed(2)}`);
      started = now;
    }
  }
} finally {
  await store.close();
  await stopServer();
  rmSync(dir, { recursive: true, force: true });
}
