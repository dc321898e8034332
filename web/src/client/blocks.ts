// Blocks: the people this account blocks. The relay keeps the list (it refuses their direct sends to our devices,
// hides our presence from them, keeps them from adding us to groups); this device keeps a sealed copy, read at start,
// so that it drops what still arrives from them (group messages in a group we share, anything already queued) and
// sends them no typing indicators or receipts, before the relay has answered too.

import { z } from 'zod';
import { blockListAnswerSchema, idSchema, usernameSchema } from '@weconnect/relay/protocol';
import type { RelayApi } from './api';
import type { KeyedSerialQueue } from './serial-queue';
import type { LocalStore } from './store';
import type { Person } from './types';

const storedBlocksSchema = z.object({ people: z.array(z.object({ userId: idSchema, username: usernameSchema })) });

/** What a block list changes elsewhere in the engine: the set the receive and send paths read, and the snapshot. */
export interface BlockListHost {
  /** The set inbound and outbound consult (shared, updated in place). */
  readonly blocked: Set<string>;
  publish(people: readonly Person[]): void;
}

/** The sealed local copy of the list (read at start, and by tests). */
export function readStoredBlocks(store: LocalStore): Promise<{ people: Person[] } | null> {
  return store.read('secrets', 'blocks', storedBlocksSchema);
}

/** The engine queue's key for block, unblock and the list's sync. */
const BLOCKS = 'blocks';

export class BlockList {
  #people: Person[] = [];

  constructor(
    private readonly api: RelayApi,
    private readonly store: LocalStore,
    private readonly host: BlockListHost,
    /**
     * The engine's queue. Block, unblock and sync take turns in it (under BLOCKS), each with the relay's answer and
     * the list stored before the next starts: two blocks made at once each started from the list without the other,
     * and the later one dropped the first from this device (its messages in a shared group showed again, typing and
     * receipts went to that person again).
     */
    private readonly turns: KeyedSerialQueue,
  ) {}

  /** The sealed local copy, so that blocked people are dropped from the first message on. */
  async load(): Promise<void> {
    const stored = await readStoredBlocks(this.store);
    if (stored) this.#apply(stored.people);
  }

  /** The relay's list (another of our devices may have changed it). */
  sync(): Promise<void> {
    return this.turns.run(BLOCKS, async () => {
      const answer = await this.api.call('GET', '/api/blocks', blockListAnswerSchema);
      await this.#save(answer.blocks);
    });
  }

  block(person: Person): Promise<void> {
    return this.turns.run(BLOCKS, async () => {
      await this.api.call('PUT', `/api/blocks/${encodeURIComponent(person.userId)}`, null);
      await this.#save([...this.#people.filter((p) => p.userId !== person.userId), person]);
    });
  }

  unblock(userId: string): Promise<void> {
    return this.turns.run(BLOCKS, async () => {
      await this.api.call('DELETE', `/api/blocks/${encodeURIComponent(userId)}`, null);
      await this.#save(this.#people.filter((p) => p.userId !== userId));
    });
  }

  async #save(people: Person[]): Promise<void> {
    await this.store.write('secrets', 'blocks', { people });
    this.#apply(people);
  }

  #apply(people: Person[]): void {
    this.#people = people;
    this.host.blocked.clear();
    for (const p of people) this.host.blocked.add(p.userId);
    this.host.publish(people);
  }
}
