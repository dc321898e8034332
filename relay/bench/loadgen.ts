// The load generator, a child process of run.ts so that the server's CPU is measured alone: it creates the devices
// (WeConnect: signed-up accounts; bare and ws: made-up ids), connects them, and runs the tasks the orchestrator
// asks for — messaging workloads (workloads.ts), idle connections, the offline drain and sign-ins (tasks.ts).
import { performance } from 'node:perf_hooks';
import type { WebSocket } from 'ws';
import { api, signInWithKeys, signUp, uniqueUsername } from '../test/helpers.js';
import type { TestAccount } from '../test/helpers.js';
import type { SessionAnswer } from '../src/protocol.js';
import { toParent } from './ipc.js';
import type { LoadgenCommand, LoadgenSetup, TaskResult } from './ipc.js';
import { inBatches, runDrain, runIdle, runSignIns } from './tasks.js';
import type { Connector } from './tasks.js';
import { emitWithAck } from './raw-socketio.js';
import type { EventSocket } from './raw-socketio.js';
import { SocketIoTransport, WsTransport, connectEventSocket, connectWs } from './transports.js';
import { LoadDriver, groupMembers, senderOf } from './workloads.js';
import type { Transport } from './workloads.js';

/** One device of the run: its id on the wire and how it authenticates (WeConnect: an access token). */
interface Device {
  wireId: string;
  token: string;
  userId: string;
}

interface Prepared {
  transport: Transport;
  close(): void;
  /** The offline device (WeConnect only): its number, wire id and token. */
  offline: { device: number; wireId: string; token: string } | null;
}

/**
 * WeConnect accounts: sender p is its own account; recipients come two devices per account (sign-up, then one
 * sign-in), so a group of 500 devices is 250 members, within the 256-member limit. Sign-ups run 32 at a time
 * (each costs the relay a bcrypt hash, BCRYPT_COST=4 here).
 */
async function weconnectDevices(setup: LoadgenSetup): Promise<Device[]> {
  const url = setup.url;
  const fromAnswer = (a: { deviceId: string; accessToken: string; userId: string }): Device => ({
    wireId: a.deviceId,
    token: a.accessToken,
    userId: a.userId,
  });
  const senders = await inBatches(setup.pairs, 32, () => signUp(url, uniqueUsername('bs'), { oneTimePrekeys: 0 }));
  const recipientAccounts: TestAccount[] = await inBatches(Math.ceil(setup.pairs / 2), 32, () =>
    signUp(url, uniqueUsername('br'), { oneTimePrekeys: 0 }),
  );
  // Second devices upload their keys, as a real client does: the relay fans group messages out only to devices
  // with keys.
  const seconds = await inBatches(Math.floor(setup.pairs / 2), 32, (i) =>
    signInWithKeys(url, recipientAccounts[i] as TestAccount),
  );
  const devices: Device[] = [];
  for (let p = 0; p < setup.pairs; p++) {
    const account = recipientAccounts[p >> 1] as TestAccount;
    devices.push(fromAnswer(senders[p] as TestAccount));
    devices.push(fromAnswer(p % 2 === 0 ? account : (seconds[p >> 1] as SessionAnswer)));
  }
  if (setup.offlineDevice) devices.push(fromAnswer(await signUp(url, uniqueUsername('bo'), { oneTimePrekeys: 0 })));
  return devices;
}

async function prepare(setup: LoadgenSetup): Promise<{ prepared: Prepared; connectMs: number }> {
  const count = setup.pairs * 2;
  const urlOf = (device: number): string => (device % 2 === 0 ? setup.url : setup.recipientUrl);
  if (setup.client === 'ws') {
    const started = performance.now();
    const sockets: WebSocket[] = await inBatches(count, 100, (d) => connectWs(urlOf(d), d));
    const connectMs = performance.now() - started;
    return {
      connectMs,
      prepared: {
        transport: new WsTransport(sockets),
        close: () => sockets.forEach((s) => s.terminate()),
        offline: null,
      },
    };
  }
  const devices: Device[] =
    setup.client === 'weconnect'
      ? await weconnectDevices(setup)
      : Array.from({ length: count }, (_, i) => ({ wireId: `d${i}`, token: '', userId: '' }));
  const authOf = (device: Device): Record<string, string> =>
    setup.client === 'weconnect' ? { token: device.token } : { deviceId: device.wireId };
  const started = performance.now();
  const sockets: EventSocket[] = await inBatches(count, 100, (d) =>
    connectEventSocket(setup.socketIoClient, urlOf(d), authOf(devices[d] as Device), setup.parser),
  );
  const connectMs = performance.now() - started;
  const groupIds = new Map<number, string>();
  const first = devices[senderOf(0)] as Device;
  for (const size of setup.groups) {
    const members = groupMembers(size).map((d) => devices[d] as Device);
    if (setup.client === 'weconnect') {
      const userIds = [...new Set(members.map((m) => m.userId))];
      const res = await api(setup.url, 'POST', '/api/groups', { token: first.token, body: { members: userIds } });
      if (res.status !== 201) throw new Error(`group of ${size} devices: ${res.status} ${JSON.stringify(res.body)}`);
      groupIds.set(size, (res.body as { groupId: string }).groupId);
    } else {
      const group = `g${size}`;
      await emitWithAck(
        sockets[senderOf(0)] as EventSocket,
        'group:create',
        { group, members: members.map((m) => m.wireId) },
        10_000,
      );
      groupIds.set(size, group);
    }
  }
  const offlineIndex = setup.offlineDevice && setup.client === 'weconnect' ? count : -1;
  const offlineDevice = devices[offlineIndex];
  return {
    connectMs,
    prepared: {
      transport: new SocketIoTransport(
        sockets,
        devices.map((d) => d.wireId),
        groupIds,
      ),
      close: () => sockets.forEach((s) => s.close()),
      offline:
        offlineDevice === undefined
          ? null
          : { device: offlineIndex, wireId: offlineDevice.wireId, token: offlineDevice.token },
    },
  };
}

/**
 * The idle task's connections: WeConnect devices of `accounts` fresh accounts, several sockets each (the relay
 * allows it), so that little else has touched the server's memory before it is measured; bare and ws: new ids.
 */
async function idleConnector(setup: LoadgenSetup, accounts: number): Promise<Connector> {
  if (setup.client === 'ws') {
    return { open: (i) => connectWs(setup.url, 1_000_000 + i), close: (s) => (s as WebSocket).terminate() };
  }
  const tokens =
    setup.client === 'weconnect'
      ? (await inBatches(accounts, 8, () => signUp(setup.url, uniqueUsername('bi'), { oneTimePrekeys: 0 }))).map(
          (a) => a.accessToken,
        )
      : [];
  return {
    open: (i) =>
      connectEventSocket(
        setup.socketIoClient,
        setup.url,
        setup.client === 'weconnect' ? { token: tokens[i % tokens.length] as string } : { deviceId: `idle${i}` },
        setup.parser,
      ),
    close: (s) => (s as EventSocket).close(),
  };
}

let go: (() => void) | null = null;
let idleConnections: Connector | null = null;
let prepared: Prepared | null = null;
let setup: LoadgenSetup | null = null;
let driver: LoadDriver | null = null;
let idle: unknown[] = [];

const hooks = {
  onWindowStart: () => toParent({ type: 'window-start' }),
  onWindowEnd: () => toParent({ type: 'window-end' }),
};

async function handle(command: LoadgenCommand): Promise<void> {
  switch (command.type) {
    case 'setup': {
      const started = performance.now();
      const result = await prepare(command.setup);
      prepared = result.prepared;
      setup = command.setup;
      const devices = command.setup.pairs * 2 + (prepared.offline === null ? 0 : 1);
      driver = new LoadDriver(prepared.transport, command.setup.pairs, command.setup.bodyBytes, devices);
      toParent({ type: 'ready', setupMs: performance.now() - started, connectMs: result.connectMs });
      return;
    }
    case 'run': {
      const task = command.task;
      let result: TaskResult;
      if (task.kind === 'signin') result = await runSignIns(task, hooks);
      else if (task.kind === 'idle') {
        if (task.setup === undefined) throw new Error('idle task without its setup');
        const connector = await idleConnector(task.setup, task.accounts);
        await new Promise<void>((resolve) => {
          go = resolve;
          toParent({ type: 'armed' });
        });
        const opened = await runIdle(task, connector, hooks);
        idleConnections = connector;
        idle = opened.sockets;
        result = opened.result;
      } else if (prepared === null || driver === null || setup === null) throw new Error('run before setup');
      else if (task.kind === 'drain') {
        if (prepared.offline === null) throw new Error('this server has no offline device');
        result = await runDrain(task, setup, prepared.transport, prepared.offline, hooks);
      } else result = await driver.run(task, hooks);
      toParent({ type: 'result', result });
      return;
    }
    case 'go': {
      go?.();
      go = null;
      return;
    }
    case 'close-idle': {
      for (const socket of idle) idleConnections?.close(socket);
      idle = [];
      toParent({ type: 'closed' });
      return;
    }
    case 'stop': {
      prepared?.close();
      process.disconnect?.();
      process.exit(0);
    }
  }
}

process.on('message', (command: LoadgenCommand) => {
  handle(command).catch((error: unknown) => {
    toParent({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  });
});
process.on('disconnect', () => process.exit(0));
