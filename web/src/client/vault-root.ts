// The vault's root: the 32-byte secret every at-rest key of this device comes from, and the two ways to reach it.
//
// A profile made before any password change has the password's wrap key as its root. A password change does not
// re-seal the local records: it keeps the root and seals it under the new password (meta.vaultRoot). The root is
// also kept sealed under the account's backup key (meta.rootByBackup), so that a device that only knows the new
// password — the change ran on another device, or this tab closed between the relay's answer and the local update —
// can reach the backup key through the relay's key box and open its local data with it.

import type { AccountMeta } from './schemas';
import { Vault, deriveAtRestKey, type Sealed } from './vault';

const ROOT_SLOT = 'meta/vault-root';
const ROOT_BY_BACKUP_SLOT = 'meta/vault-root-by-backup';
const BY_PASSWORD_INFO = new TextEncoder().encode('weconnect/web/vault-root/by-password/v1');
const BY_BACKUP_INFO = new TextEncoder().encode('weconnect/web/vault-root/by-backup-key/v1');

/** A non-extractable AES-GCM key from a 32-byte secret with HKDF-SHA-256 and a label of its own. */
async function keyFrom(secret: Uint8Array, info: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  if (secret.length !== 32) throw new TypeError('vault-root: the secret must be 32 bytes');
  const base = await crypto.subtle.importKey('raw', secret.slice().buffer, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/**
 * The root this password's wrap key reaches: the sealed one when the password was changed, else the wrap key itself
 * (a copy). Throws (decrypt_failed) when the wrap key does not open the sealed root.
 */
export async function rootFromPassword(meta: AccountMeta, wrapKey: Uint8Array): Promise<Uint8Array> {
  if (!meta.vaultRoot) return wrapKey.slice();
  return new Vault(await keyFrom(wrapKey, BY_PASSWORD_INFO)).openBytes(ROOT_SLOT, meta.vaultRoot);
}

/** The root sealed under the backup key; throws (decrypt_failed) when `backupKey` does not open it. */
export async function rootFromBackupKey(sealed: Sealed, backupKey: Uint8Array): Promise<Uint8Array> {
  return new Vault(await keyFrom(backupKey, BY_BACKUP_INFO)).openBytes(ROOT_BY_BACKUP_SLOT, sealed);
}

export async function sealRootForPassword(root: Uint8Array, wrapKey: Uint8Array): Promise<Sealed> {
  return new Vault(await keyFrom(wrapKey, BY_PASSWORD_INFO)).sealBytes(ROOT_SLOT, root);
}

export async function sealRootForBackupKey(root: Uint8Array, backupKey: Uint8Array): Promise<Sealed> {
  return new Vault(await keyFrom(backupKey, BY_BACKUP_INFO)).sealBytes(ROOT_BY_BACKUP_SLOT, root);
}

/** The vault of this root (the at-rest key of every local record). */
export async function vaultOfRoot(root: Uint8Array): Promise<Vault> {
  return new Vault(await deriveAtRestKey(root));
}
