// A relay that never answers an HTTP call (or stops in the middle of its answer) cannot hold the engine for ever: the
// call fails with `relay_unreachable` once its time is up. Against real local HTTP servers on port 0.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { request } from '../../src/client/api';

let server: Server;
let base: string;
const stalled: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/ok') {
      res.setHeader('content-type', 'application/json');
      res.end('{"fine":true}');
    } else if (req.url === '/half') {
      // Headers and the start of a body, then nothing.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"fi');
      stalled.push(res);
    } else {
      stalled.push(res); // never answered
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of stalled) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('an HTTP call to the relay', () => {
  const schema = z.object({ fine: z.boolean() });

  it('returns the answer of a relay that answers', async () => {
    await expect(request(base, 'GET', '/ok', schema, undefined, undefined, 500)).resolves.toEqual({ fine: true });
  });

  it('fails with relay_unreachable when the relay never answers, or stops in the middle of its answer', async () => {
    for (const path of ['/never', '/half']) {
      const started = Date.now();
      await expect(request(base, 'GET', path, schema, undefined, undefined, 300)).rejects.toMatchObject({
        code: 'relay_unreachable',
        message: expect.stringMatching(/did not answer within 0.3 s/),
      });
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });
});
