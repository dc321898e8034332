// Accounts made over the relay's plain HTTP API, without an engine: an attacker's own account (its keys are the
// attacker's, used to forge what a hostile relay or member would), and the raw sign-up request itself.
import { expect } from 'vitest';
import { loadCrypto, type Crypto } from '../../src/client/crypto-loader';
import { OwnKeys, type InitialKemPrekeys } from '../../src/client/own-keys';

type AccountKeys = ReturnType<Crypto['createAccountKeys']>;

/**
 * POST /api/accounts with a random salt and auth key and the given keys' public halves, and the KEM prekeys (PQXDH)
 * every client of this version publishes (without them, engines start no session with the account).
 */
export async function postAccount(
  relayUrl: string,
  username: string,
  keys: AccountKeys,
  kem: InitialKemPrekeys | null = null,
): Promise<Response> {
  const c = await loadCrypto();
  return fetch(new URL('/api/accounts', relayUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      username,
      salt: c.toBase64Url(c.randomBytes(16)),
      authKey: c.toBase64Url(c.randomBytes(32)),
      ...keys.upload,
      ...(kem ? OwnKeys.kemUpload(c, kem.lastResort, kem.oneTime) : {}),
    }),
  });
}

let seq = 0;

/** An account the attacker controls, registered on the real relay: its keys are the attacker's. */
export async function attackerAccount(relayUrl: string, username = `mallory${Date.now().toString(36)}${seq++}`) {
  const c = await loadCrypto();
  const keys = c.createAccountKeys({ oneTimePrekeyCount: 5 });
  const kem = OwnKeys.initialKemPrekeys(c, keys.identity);
  const res = await postAccount(relayUrl, username, keys, kem);
  expect(res.status).toBe(201);
  const body = (await res.json()) as { userId: string; deviceId: string; accessToken: string };
  /** The attacker's KEM prekey named by a prekey message it received (to accept the session). */
  const kemPrekey = (id: number | null) => [kem.lastResort, ...kem.oneTime].find((k) => k.keyId === id) ?? null;
  return { c, keys, kem, kemPrekey, username, ...body };
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
    devices: { deviceId: string; signedPrekey: unknown; oneTimePrekey: unknown; kemPrekey?: unknown }[];
  };
}
