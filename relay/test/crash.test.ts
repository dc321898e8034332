// No loss across a crash: a relay process is killed with SIGKILL while a sender streams 1,000 messages to a
// recipient with two devices, then restarted on the same DATA_DIR. Every acked message must come through, nothing
// may be half-stored (one device has it, the other not), and resending the unacked ids stores nothing twice.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeliveredMessage, SendAck } from '../src/protocol.js';
import { startRelayProcess } from './crash-relay.js';
import type { RelayProcess } from './crash-relay.js';
import { connectDevice, messageId, signIn, signUp, sleep, waitFor } from './helpers.js';
import type { TestAccount, TestDevice } from './helpers.js';

const MESSAGES = 1000;
/**
 * The relay is killed once this many acks reached the sender (recipient offline) or this many live messages
 * reached the recipient's first device (recipient online: the relay pushes right after a commit and acks the
 * sender just after that, so this kill tends to land between the two and leave messages stored but unacked).
 */
const KILL_AFTER = 300;
/**
 * The sender streams without waiting for any one ack, in chunks, but keeps at most this many sends unacked: the
 * relay can then never have committed the whole stream when the kill lands, so the crash is always partway.
 */
const SEND_WINDOW = 200;
const SEND_CHUNK = 25;

const started: RelayProcess[] = [];
const dirs: string[] = [];
const devices: TestDevice[] = [];

afterEach(async () => {
  for (const device of devices.splice(0)) device.close();
  await Promise.all(started.splice(0).map((relay) => relay.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(dataDir: string, port = 0): Promise<RelayProcess> {
  const relay = await startRelayProcess({
    PORT: String(port),
    DATA_DIR: dataDir,
    JWT_SECRET: 'crash-test-secret-crash-test-secret-0123456789',
    BCRYPT_COST: '4',
    SEND_RATE_BURST: '100000',
    SEND_RATE_PER_SEC: '100000',
    LOG_LEVEL: 'warn',
    WEB_DIST: join(dataDir, 'no-web-app'),
  });
  started.push(relay);
  return relay;
}

async function connect(url: string, token: string): Promise<TestDevice> {
  const device = await connectDevice(url, token);
  devices.push(device);
  return device;
}

const bodyOf = (index: number): Buffer => Buffer.from(`crash message ${index} `.padEnd(120, '.'));
const indexOf = (message: DeliveredMessage): number =>
  Number(/^crash message (\d+) /.exec(Buffer.from(message.body as Uint8Array).toString('utf8'))?.[1] ?? -1);

/** Ids of the marker messages `drained` sends; the checks below leave them out. */
const markers = new Set<string>();

/**
 * A positive signal that each device has received everything stored for it so far: a marker message to both of
 * Bob's devices, committed after all of it, and waited for on each. Within one connection entries arrive in seq
 * order (expectOrdered checks it), so once the marker is there, nothing stored before it is still on the way.
 */
async function drained(sender: TestDevice, bobDevices: string[], list: TestDevice[]): Promise<void> {
  const id = messageId();
  markers.add(id);
  const ack = await sender.send({ id, envelopes: bobDevices.map((to) => ({ to, body: Buffer.from('marker') })) });
  expect(ack.ok, 'the marker is stored').toBe(true);
  await waitFor(() => list.every((d) => d.messages.some((m) => m.id === id)), 15_000, 'the marker on every device');
}

interface Scenario {
  relay: RelayProcess;
  dataDir: string;
  alice: TestAccount;
  bob: TestAccount;
  bobDevices: [string, string];
  bobTokens: [string, string];
}

async function scenario(): Promise<Scenario> {
  const dataDir = mkdtempSync(join(tmpdir(), 'weconnect-crash-'));
  dirs.push(dataDir);
  const relay = await start(dataDir);
  const alice = await signUp(relay.url, undefined, { oneTimePrekeys: 0 });
  const bob = await signUp(relay.url, undefined, { oneTimePrekeys: 0 });
  const bobSecond = await signIn(relay.url, bob);
  return {
    relay,
    dataDir,
    alice,
    bob,
    bobDevices: [bob.deviceId, bobSecond.deviceId],
    bobTokens: [bob.accessToken, bobSecond.accessToken],
  };
}

/** Kills the relay once, when the first trigger fires. */
class Crash {
  private killing: Promise<void> | null = null;
  constructor(private readonly relay: RelayProcess) {}
  trigger(): void {
    this.killing ??= this.relay.kill();
  }
  get triggered(): boolean {
    return this.killing !== null;
  }
  async done(): Promise<void> {
    await waitFor(() => this.killing !== null, 20_000, 'the crash trigger');
    await this.killing;
  }
}

/** Alice streams messages to both of Bob's devices (at most SEND_WINDOW unacked) until the relay dies. */
async function sendUntilKilled(
  s: Scenario,
  ids: string[],
  crash: Crash,
  killOnAcks: boolean,
): Promise<{ acked: Map<string, number>; emitted: number }> {
  const alice = await connect(s.relay.url, s.alice.accessToken);
  const acked = new Map<string, number>();
  let emitted = 0;
  const deadline = Date.now() + 20_000;
  for (let chunk = 0; chunk < MESSAGES && !crash.triggered; chunk += SEND_CHUNK) {
    while (emitted - acked.size >= SEND_WINDOW && !crash.triggered) {
      if (Date.now() > deadline) throw new Error(`the relay stopped acking after ${acked.size} sends`);
      await sleep(1);
    }
    if (crash.triggered) break;
    for (let i = chunk; i < Math.min(chunk + SEND_CHUNK, MESSAGES); i++) {
      const id = ids[i] as string;
      const envelopes = s.bobDevices.map((to) => ({ to, body: bodyOf(i) }));
      alice.socket.emit('message:send', { id, envelopes }, (answer: SendAck) => {
        if (!answer.ok) throw new Error(`send ${i} refused: ${answer.error.code}`);
        acked.set(id, answer.ts);
        if (killOnAcks && acked.size >= KILL_AFTER) crash.trigger();
      });
      emitted++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await crash.done();
  await waitFor(() => alice.socket.disconnected, 5_000, 'the sender to notice the crash');
  return { acked, emitted };
}

/** What one device holds: first arrival of each id, plus the raw count. */
function collect(connections: TestDevice[]): Map<string, { message: DeliveredMessage; count: number }> {
  const seen = new Map<string, { message: DeliveredMessage; count: number }>();
  for (const connection of connections) {
    for (const message of connection.messages) {
      if (markers.has(message.id)) continue;
      const known = seen.get(message.id);
      if (known) known.count++;
      else seen.set(message.id, { message, count: 1 });
    }
  }
  return seen;
}

/** Within one connection, distinct entries arrive in strictly increasing seq, and one sender's in send order. */
function expectOrdered(connection: TestDevice): void {
  const seen = new Set<string>();
  let lastSeq = 0;
  let lastIndex = -1;
  for (const message of connection.messages) {
    if (seen.has(message.id)) continue;
    seen.add(message.id);
    if (markers.has(message.id)) {
      expect(message.seq).toBeGreaterThan(lastSeq);
      lastSeq = message.seq;
      continue;
    }
    expect(message.seq).toBeGreaterThan(lastSeq);
    expect(indexOf(message)).toBeGreaterThan(lastIndex);
    lastSeq = message.seq;
    lastIndex = indexOf(message);
  }
}

async function crashAndRecover(bobOnlineDuringCrash: boolean): Promise<void> {
  const s = await scenario();
  const ids = Array.from({ length: MESSAGES }, () => messageId());
  const indexOfId = new Map(ids.map((id, i) => [id, i]));

  const crash = new Crash(s.relay);
  const bobConnections: [TestDevice[], TestDevice[]] = [[], []];
  if (bobOnlineDuringCrash) {
    for (const d of [0, 1] as const) bobConnections[d].push(await connect(s.relay.url, s.bobTokens[d]));
    const watched = bobConnections[0][0];
    watched?.socket.on('messages', () => {
      if (watched.messages.length >= KILL_AFTER) crash.trigger();
    });
  }
  const { acked, emitted } = await sendUntilKilled(s, ids, crash, !bobOnlineDuringCrash);
  expect(acked.size, 'the crash landed partway through the stream').toBeLessThan(MESSAGES);
  const receivedBeforeCrash = bobConnections.map((c) => collect(c).size);

  const relay = await start(s.dataDir, s.relay.port);
  const reconnected: TestDevice[] = [];
  for (const d of [0, 1] as const) {
    const device = await connect(relay.url, s.bobTokens[d]);
    bobConnections[d].push(device);
    reconnected.push(device);
  }
  const alice = await connect(relay.url, s.alice.accessToken);
  await drained(alice, s.bobDevices, reconnected);

  // Every acked message reached both devices; no message is on one device only; nothing foreign or corrupted.
  const [first, second] = bobConnections.map(collect) as [ReturnType<typeof collect>, ReturnType<typeof collect>];
  for (const id of acked.keys()) {
    expect(first.has(id), `acked message ${indexOfId.get(id)} on device 1`).toBe(true);
    expect(second.has(id), `acked message ${indexOfId.get(id)} on device 2`).toBe(true);
  }
  expect([...first.keys()].sort()).toEqual([...second.keys()].sort());
  for (const [id, { message }] of first) {
    expect(indexOfId.get(id), 'a message that was sent').toBe(indexOf(message));
    expect(second.get(id)?.message.ts).toBe(message.ts);
    if (acked.has(id)) expect(message.ts).toBe(acked.get(id));
  }
  for (const connection of bobConnections.flat()) expectOrdered(connection);

  const storedUnacked = [...first.keys()].filter((id) => !acked.has(id)).length;
  console.log(
    `crash (Bob ${bobOnlineDuringCrash ? 'online' : 'offline'}): ${emitted} emitted, ${acked.size} acked before the ` +
      `kill, ${first.size} stored (${storedUnacked} stored but unacked), Bob had ${receivedBeforeCrash.join('/')} ` +
      `before the crash`,
  );

  // Alice resends every unacked id; the ones already stored answer their original ts and are not stored again.
  const resend = ids.map((id, i) => ({ id, i })).filter(({ id }) => !acked.has(id));
  const beforeResend = reconnected.map((d) => d.messages.length);
  const answers = await Promise.all(
    resend.map(({ id, i }) =>
      alice.send({ id, envelopes: s.bobDevices.map((to) => ({ to, body: bodyOf(i) })) }).then((a) => ({ id, a })),
    ),
  );
  for (const { id, a } of answers) {
    expect(a.ok, `resend of ${indexOfId.get(id)}`).toBe(true);
    const before = first.get(id);
    if (a.ok && before) expect(a.ts, 'a duplicate answers the original ts').toBe(before.message.ts);
  }

  await waitFor(
    () => bobConnections.every((c) => collect(c).size === MESSAGES),
    15_000,
    'every message on both devices',
  );
  await drained(alice, s.bobDevices, reconnected);
  [first, second].forEach((held, d) => {
    expect(collect(bobConnections[d] ?? []).size).toBe(MESSAGES);
    // What arrives after the resend is new to the device, once: a resent id that was stored is not stored again.
    const late = (reconnected[d]?.messages.slice(beforeResend[d]) ?? []).filter((m) => !markers.has(m.id));
    expect(new Set(late.map((m) => m.id)).size).toBe(late.length);
    for (const message of late) expect(held.has(message.id), `message ${indexOf(message)} came twice`).toBe(false);
  });
}

describe('relay crash recovery', () => {
  it('keeps every acked message and half-stores none when killed while the recipient is offline', async () => {
    await crashAndRecover(false);
  }, 45_000);

  it('keeps every acked message and half-stores none when killed while the recipient is online', async () => {
    await crashAndRecover(true);
  }, 45_000);
});
