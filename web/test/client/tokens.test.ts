// Access tokens against a relay whose tokens live 2 seconds: the engine refreshes them (rotating the refresh token)
// and keeps sending; a token the relay refuses triggers one refresh and a reconnect, over HTTP and the socket.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asClient, hasText, openWith, signUpUser, until, type TestUser } from '../support/engine';
import { startTestRelay, type TestRelay } from '../support/relay';

let relay: TestRelay;
let kim: TestUser;
let lee: TestUser;

beforeAll(async () => {
  relay = await startTestRelay({}, { accessTokenTtlSeconds: 2 });
  kim = await signUpUser(relay.url, 'tok_kim');
  lee = await signUpUser(relay.url, 'tok_lee');
  await openWith(kim, lee);
}, 60_000);

afterAll(async () => {
  for (const u of [kim, lee]) if (u) asClient(u.engine).close();
  await relay?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('access tokens', () => {
  it('refreshes an expired access token and keeps sending, over HTTP and after a reconnect', async () => {
    const client = asClient(kim.engine);
    const before = client.dangerousTestOnlyTokens();
    await sleep(2_500);
    // HTTP: the expired token is replaced before the call.
    expect((await kim.engine.searchPeople(lee.name)).map((p) => p.userId)).toContain(lee.userId);
    const after = client.dangerousTestOnlyTokens();
    expect(after.access).not.toBe(before.access);
    expect(after.refreshToken).not.toBe(before.refreshToken);

    await kim.engine.send(lee.userId, 'after the first expiry');
    await until('lee got it', () => hasText(lee.engine, kim.userId, 'after the first expiry'));

    // Socket: a reconnect after expiry handshakes with a fresh token.
    await sleep(2_500);
    client.dangerousTestOnlySetOnline(false);
    client.dangerousTestOnlySetOnline(true);
    await until('kim online again', () => kim.engine.getSnapshot().connection === 'online');
    await kim.engine.send(lee.userId, 'after a reconnect');
    await until('lee got the second', () => hasText(lee.engine, kim.userId, 'after a reconnect'));
  });

  it('answers a refused token with a refresh and a reconnect', async () => {
    const client = asClient(lee.engine);
    // The socket handshake is refused (connect_error unauthorized): refresh, then connect again.
    const before = client.dangerousTestOnlyTokens();
    client.dangerousTestOnlySetOnline(false);
    client.dangerousTestOnlyTokens().spoilAccessToken();
    client.dangerousTestOnlySetOnline(true);
    await until('lee online with a fresh token', () => lee.engine.getSnapshot().connection === 'online');
    expect(client.dangerousTestOnlyTokens().refreshToken).not.toBe(before.refreshToken);
    expect(client.dangerousTestOnlyTokens().access).not.toBe('spoiled.access.token');
    await lee.engine.send(kim.userId, 'after a refused handshake');
    await until('kim got it', () => hasText(kim.engine, lee.userId, 'after a refused handshake'));

    // HTTP: a 401 leads to one refresh and the call is retried.
    client.dangerousTestOnlyTokens().spoilAccessToken();
    expect((await lee.engine.searchPeople(kim.name)).map((p) => p.userId)).toContain(kim.userId);
    expect(lee.engine.getSnapshot().notices.filter((n) => n.kind === 'error')).toEqual([]);
  });
});
