// The load generator, a child process of run.ts so that the server's CPU is measured alone: it creates the devices
// (WeConnect: signed-up accounts; bare: made-up ids), connects them with the real socket.io-client, and runs the
// workloads the orchestrator asks for.
import { performance } from 'node:perf_hooks';
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import * as msgpackParser from 'socket.io-msgpack-parser';
import { signUp, uniqueUsername } from '../test/helpers.js';
import type { TestAccount } from '../test/helpers.js';
import { toParent } from './ipc.js';
import type { LoadgenCommand, LoadgenSetup } from './ipc.js';
import { LoadDriver } from './workloads.js';
import type { Pair } from './workloads.js';

interface Device {
  deviceId: string;
  auth: Record<string, string>;
}

const CONNECT_TIMEOUT_MS = 20_000;

async function makeDevices(setup: LoadgenSetup): Promise<Device[]> {
  const count = setup.pairs * 2;
  if (setup.auth === 'bare') {
    return Array.from({ length: count }, (_, i) => ({ deviceId: `dev${i}`, auth: { deviceId: `dev${i}` } }));
  }
  // Sign-ups run a few at a time: each costs the relay a bcrypt hash (BCRYPT_COST=4 here).
  const accounts: TestAccount[] = [];
  for (let i = 0; i < count; i += 8) {
    const batch = Array.from({ length: Math.min(8, count - i) }, () =>
      signUp(setup.url, uniqueUsername('bench'), { oneTimePrekeys: 0 }),
    );
    accounts.push(...(await Promise.all(batch)));
  }
  return accounts.map((a) => ({ deviceId: a.deviceId, auth: { token: a.accessToken } }));
}

function connect(setup: LoadgenSetup, device: Device, url: string): Promise<Socket> {
  const socket = io(url, {
    ...(setup.parser === 'msgpack' ? { parser: msgpackParser } : {}),
    auth: device.auth,
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: CONNECT_TIMEOUT_MS,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (error: Error) => {
      socket.close();
      reject(new Error(`device ${device.deviceId} could not connect: ${error.message}`));
    });
  });
}

let sockets: Socket[] = [];
let driver: LoadDriver | null = null;

async function handle(command: LoadgenCommand): Promise<void> {
  switch (command.type) {
    case 'setup': {
      const started = performance.now();
      const devices = await makeDevices(command.setup);
      sockets = [];
      for (let i = 0; i < devices.length; i += 50) {
        // Even indexes are senders (node 1), odd ones their recipients (`recipientUrl`: node 2 of a two-node run).
        const batch = devices
          .slice(i, i + 50)
          .map((d, j) => connect(command.setup, d, (i + j) % 2 === 0 ? command.setup.url : command.setup.recipientUrl));
        sockets.push(...(await Promise.all(batch)));
      }
      const pairs: Pair[] = [];
      for (let p = 0; p < command.setup.pairs; p++) {
        const sender = sockets[2 * p];
        const recipient = sockets[2 * p + 1];
        const recipientDevice = devices[2 * p + 1];
        if (sender === undefined || recipient === undefined || recipientDevice === undefined)
          throw new Error('bad pair');
        pairs.push({ sender, recipient, recipientDeviceId: recipientDevice.deviceId });
      }
      driver = new LoadDriver(pairs, command.setup.bodyBytes);
      toParent({ type: 'ready', setupMs: performance.now() - started });
      return;
    }
    case 'run': {
      if (driver === null) throw new Error('run before setup');
      const result = await driver.run(command.workload, {
        onWindowStart: () => toParent({ type: 'window-start' }),
        onWindowEnd: () => toParent({ type: 'window-end' }),
      });
      toParent({ type: 'result', result });
      return;
    }
    case 'stop': {
      for (const socket of sockets) socket.close();
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
