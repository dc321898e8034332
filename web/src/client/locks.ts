// One writer tab per profile: Web Locks, or a stand-in where the platform has none (Node tests).

/** Web Locks, or a stand-in where the platform has none (Node tests: one engine per database there). */
export interface LockProvider {
  /** Takes the named lock if free; resolves with a release function, or null when another holder has it. */
  tryAcquire(name: string): Promise<(() => void) | null>;
  /** True when someone else holds the named lock right now (without taking it). */
  heldElsewhere?(name: string): Promise<boolean>;
}

export const webLocks: LockProvider = {
  tryAcquire(name) {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (!locks) return Promise.resolve(() => undefined);
    return new Promise((resolve) => {
      void locks.request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(null);
          return undefined;
        }
        return new Promise<void>((release) => resolve(() => release()));
      });
    });
  },
  async heldElsewhere(name) {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (!locks) return false;
    const state = await locks.query();
    return (state.held ?? []).some((l) => l.name === name);
  },
};
