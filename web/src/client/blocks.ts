// Blocks: the people this account blocks. The relay keeps the list (it refuses their direct sends to our devices,
// hides our presence from them, keeps them from adding us to groups); this device keeps a sealed copy, read at start,
// so that it drops what still arrives from them (group messages in a group we share, anything already queued) and
// sends them no typing indicators or receipts, before the relay has answered too.

import { z } from 'zod';
import { blockListAnswerSchema, idSchema, usernameSchema } from '@weconnect/relay/protocol';
import type { RelayApi } from './api';
import type { LocalStore } from './store';
import type { Person } from './types';

const storedBlocksSchema = z.object({ people: z.array(z.object({ userId: idSchema, username: usernameSchema })) });

/** What a block list changes elsewhere in the engine: the set the receive and send paths read, and the snapshot. */
export interface BlockListHost {
  /** The set inbound and outbound consult (shared, updated in place). */
  readonly blocked: Set<string>;
  publish(people: readonly Person[]): void;
}

export class BlockList {
  #people: Person[] = [];

  constructor(
    private readonly api: RelayApi,
    private readonly store: LocalStore,
    private readonly host: BlockListHost,
  ) {}

  /** The sealed local copy, so that blocked people are dropped from the first message on. */
  async load(): Promise<void> {
    const stored = await this.store.read('secrets', 'blocks', storedBlocksSchema);
    if (stored) this.#apply(stored.people);
  }

  /** The relay's list (another of our devices may have changed it). */
  async sync(): Promise<void> {
    const answer = await this.api.call('GET', '/api/blocks', blockListAnswerSchema);
    await this.#save(answer.blocks);
  }

  async block(person: Person): Promise<void> {
    await this.api.call('PUT', `/api/blocks/${encodeURIComponent(person.userId)}`, null);
    await this.#save([...this.#people.filter((p) => p.userId !== person.userId), person]);
  }

  async unblock(userId: string): Promise<void> {
    await this.api.call('DELETE', `/api/blocks/${encodeURIComponent(userId)}`, null);
    await this.#save(this.#people.filter((p) => p.userId !== userId));
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
