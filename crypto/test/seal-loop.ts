// Child process of x25519-node-keygen.test.ts: seals `count` envelopes one after another on the node:crypto
// backend, then prints "sealed <count>". A deadlock shows as a process that never prints it.
import { ready } from '../src/index.js';
import { sodium } from '../src/sodium.js';
import { ephemeralDh, x25519Backend } from '../src/x25519.js';

const count = Number(process.argv[2]);
await ready();
if (x25519Backend() !== 'node') throw new Error(`expected the node:crypto backend, got ${x25519Backend()}`);
const peer = sodium().crypto_box_keypair().publicKey;
for (let i = 0; i < count; i++) await ephemeralDh(peer, null);
console.log(`sealed ${count}`);
