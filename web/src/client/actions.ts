// Actions (issue #15): what a person does to a conversation rather than write in it — react, edit, delete for
// everyone, set the disappearing timer. They travel like messages (see Outbound.queueAction) and arrive here, after
// decryption, with the authenticated sender (`from`) and the conversation they belong to.

import type { EngineContext } from './context';
import type { ActionPayload, ChatPayload } from './schemas';
import type { WriteBatch } from './store';
import type { ChatMessage } from './types';

/** A received action: who sent it (authenticated by its session or sender key), where, under which id and when. */
export interface ArrivedAction {
  conv: string;
  from: string;
  id: string;
  ts: number;
  action: ActionPayload;
}

/** The parts of a chat payload a stored message keeps, besides its text. */
export function richFields(p: ChatPayload): Pick<ChatMessage, 'reply' | 'attachments' | 'expireSeconds'> {
  return {
    ...(p.reply ? { reply: p.reply } : {}),
    ...(p.attachments ? { attachments: p.attachments } : {}),
    ...(p.expire ? { expireSeconds: p.expire } : {}),
  };
}

export class Actions {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /**
   * Applies one received action and commits `batch` (which marks its id seen), whatever the outcome: an action that
   * is not allowed (an edit from someone who did not write the message) is dropped without a trace.
   */
  async receive(batch: WriteBatch, arrived: ArrivedAction): Promise<void> {
    if (arrived.action.type === 'timer') return this.#ctx.parts.disappearing.receive(batch, arrived);
    void arrived;
    await this.#ctx.store.commit(batch);
  }
}
