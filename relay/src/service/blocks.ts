// Blocks: a user's block list, kept by the relay so that it can refuse, at the source, what a blocked user sends.
// A block makes the relay drop the blocked user's direct sends (stored and ephemeral) to the blocker's devices —
// the sender's answer is the same as for a stored send, so the block is not revealed by it — hide the blocker's
// presence from them, and leave the blocker out when they create a group or add members. Group messages in a group
// both are already in still reach the blocker (one ciphertext for all members): its client drops them.
import { RelayError } from '../errors.js';
import { BLOCKS_PER_USER } from '../protocol.js';
import type { BlockListAnswer } from '../protocol.js';
import type { Store } from '../store/store.js';
import type { BlockIndex } from './block-index.js';
import type { AccessClaims } from './tokens.js';

/** What presence must learn when a block starts or ends (the PresenceService implements it). */
export interface BlockPresence {
  /** `blocked` may no longer see `blocker`'s presence. */
  hide(blocker: string, blocked: string): void;
  /** `blocked` may see `blocker`'s presence again (when `blocker` has written to them). */
  unhide(blocker: string, blocked: string): void;
}

export class BlockService {
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly presence: BlockPresence,
    private readonly index: Pick<BlockIndex, 'note'>,
    private readonly maxBlocks: number = BLOCKS_PER_USER,
  ) {}

  async block(auth: AccessClaims, userId: string): Promise<void> {
    if (userId === auth.userId) throw new RelayError('invalid_input', 'you cannot block yourself');
    if (!(await this.store.getUser(userId))) throw new RelayError('not_found', 'no such user');
    // Noted before it is stored: from then on this node's sends from `userId` read the store's block list. Other
    // nodes note it from the bus event that presence.hide() publishes once it is stored.
    this.index.note(userId);
    const outcome = await this.store.putBlock(auth.userId, userId, this.now(), this.maxBlocks);
    if (outcome === 'limit') throw new RelayError('block_limit', `you block ${this.maxBlocks} users, the most allowed`);
    this.index.note(userId); // again: a rebuild that read the store before this commit must not drop it
    this.presence.hide(auth.userId, userId);
  }

  /** Unblocking a user who is not blocked (or does not exist) changes nothing, and is not an error. */
  async unblock(auth: AccessClaims, userId: string): Promise<void> {
    await this.store.deleteBlock(auth.userId, userId);
    this.presence.unhide(auth.userId, userId);
  }

  async list(auth: AccessClaims): Promise<BlockListAnswer> {
    return { blocks: await this.store.listBlocks(auth.userId) };
  }
}
