// Readiness: whether this relay can serve right now — its store (and Redis, when configured) answers a trivial
// request within a short timeout. Liveness (/api/health) stays a constant answer; this is what load balancers and
// orchestrators should route on.
import { RelayError } from '../errors.js';

/** One dependency the relay cannot serve without. */
export interface ReadinessProbe {
  name: 'store' | 'redis';
  ping(): Promise<void>;
}

export class Readiness {
  constructor(
    private readonly probes: readonly ReadinessProbe[],
    private readonly timeoutMs: number,
  ) {}

  /**
   * Resolves with the names of the probes checked when every one answered within the timeout; otherwise throws
   * `unavailable` naming the first that failed or did not answer (all probes run at once).
   */
  async check(): Promise<ReadinessProbe['name'][]> {
    const results = await Promise.all(this.probes.map((probe) => this.probe(probe)));
    const failed = results.find((r) => r !== null);
    if (failed) throw new RelayError('unavailable', failed);
    return this.probes.map((p) => p.name);
  }

  /** null when the probe answered in time, else why not (never the error's text: it may hold an address). */
  private async probe(probe: ReadinessProbe): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`the ${probe.name} did not answer within ${this.timeoutMs} ms`), this.timeoutMs);
    });
    const answered = probe.ping().then(
      () => null,
      () => `the ${probe.name} is not available`,
    );
    try {
      return await Promise.race([answered, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }
}
