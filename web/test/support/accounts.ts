// Accounts made over the relay's plain HTTP API, without an engine: an attacker's own account (its keys are the
// attacker's, used to forge what a hostile relay or member would), and the raw sign-up request itself.
import { expect } from 'vitest';
import { loadCrypto, type Crypto } from '../../src/client/crypto-loader';

type AccountKeys = ReturnType<Crypto['createAccountKeys']>;

/** POST /api/accounts with a random salt and auth key and the given keys' public halves. */
export async function postAccount(relayUrl: string, username: string, keys: AccountKeys): Promise<Response> {
  const c = await loadCrypto();
  return fetch(new URL('/api/accounts', relayUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      username,
      salt: c.toBase64Url(c.randomBytes(16)),
      authKey: c.toBase64Url(c.randomBytes(32)),
      ...keys.upload,
    }),
  });
}

let seq = 0;

/** An account the attacker controls, registered on the real relay: its keys are the attacker's. */
export async function attackerAccount(relayUrl: string, username = `mallory${Date.now().toString(36)}${seq++}`) {
  const c = await loadCrypto();
  const keys = c.createAccountKeys({ oneTimePrekeyCount: 5 });
  const res = await postAccount(relayUrl, username, keys);
  expect(res.status).toBe(201);
  const body = (await res.json()) as { userId: string; deviceId: string; accessToken: string };
  return { c, keys, username, ...body };
}
export type Attacker = Awaited<ReturnType<typeof attackerAccount>>;

/** A user's prekey bundle as the relay answers it to `token`'s account (takes one-time prekeys). */
export async function bundleAs(relayUrl: string, token: string, userId: string) {
  const res = await fetch(new URL(`/api/users/${userId}/bundle`, relayUrl), {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as {
    identityKey: string;
    devices: { deviceId: string; signedPrekey: unknown; oneTimePrekey: unknown }[];
  };
}
