// Argon2id worker: derives {authKey, wrapKey} from a password off the main thread, then transfers the wrap key.
import { derivePasswordKeys, ready, wipe } from '@weconnect/crypto';

interface Request {
  password: string;
  params: { salt: string; opslimit: number; memlimit: number };
}

// Typed with the DOM lib (the project's); in a dedicated worker `self.postMessage(value, { transfer })` is the same.
self.onmessage = async (event: MessageEvent<Request>) => {
  try {
    await ready();
    const keys = derivePasswordKeys(event.data.password, event.data.params);
    const wrapKey = keys.wrapKey.slice();
    const authKey = keys.authKeyBase64Url;
    wipe(keys.authKey, keys.wrapKey);
    self.postMessage({ ok: true, authKey, wrapKey }, { transfer: [wrapKey.buffer] });
  } catch (error) {
    self.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) });
  }
};
