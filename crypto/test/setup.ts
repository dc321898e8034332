// Loads libsodium once per test file.
import { beforeAll } from 'vitest';
import { ready } from '../src/index.js';

beforeAll(async () => {
  await ready();
});
