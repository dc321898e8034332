// MessageList: bubbles grouped by day with separators; text rendered by RichText (React elements, never HTML), ticks
// on my messages; per message a toolbar of actions, reactions under the bubble, the quoted message above a reply,
// "edited", "This message was deleted", and Retry / Delete on a message that failed to send.
import { Fragment } from 'react';
import { DELETE_WINDOW_MS, authorOf } from '../../client/action-state';
import type { ChatMessage } from '../../client/types';
import { dayKey, dayLabel, timeLabel } from '../format';
import { RichText } from '../rich-text';
import { MessageActions } from './MessageActions';
import { Reactions } from './Reactions';
import { Ticks } from './Ticks';
import '../styles/actions.css';

/** What the conversation does when a message's controls are used. */
export interface MessageHandlers {
  reply: (m: ChatMessage) => void;
  react: (m: ChatMessage, emoji: string) => void;
  unreact: (m: ChatMessage) => void;
  edit: (m: ChatMessage) => void;
  deleteForEveryone: (m: ChatMessage) => void;
  deleteForMe: (m: ChatMessage) => void;
  retry: (m: ChatMessage) => void;
  /** Shows (and highlights) the quoted message. */
  jump: (id: string) => void;
}
import { MessageAttachments } from './Attachments';

interface Props {
  messages: readonly ChatMessage[];
  peerName: string;
  isGroup: boolean;
  onResend: (id: string) => void;
  /** Our user id (own messages and own reactions). */
  me?: string;
  now?: number;
  /** The message to highlight (a quote was clicked). */
  highlighted?: string | null;
  /** Sending is off (left group, blocked…): no reply, react or edit. */
  readOnly?: boolean;
  handlers?: MessageHandlers;
}

export function MessageList({
  messages,
  peerName,
  isGroup,
  onResend,
  me = '',
  now = Date.now(),
  highlighted = null,
  readOnly = false,
  handlers,
}: Props) {
  const nameOf = (userId: string) =>
    userId === me ? 'You' : (messages.find((m) => m.sender === userId)?.senderName ?? (isGroup ? 'Someone' : peerName));
  const own = (m: ChatMessage) => me !== '' && authorOf(m, me) === me;
  let lastDay = '';
  return (
    <ol className="messages">
      {messages.map((m, i) => {
        const day = dayKey(m.ts);
        const separator = day !== lastDay;
        lastDay = day;
        const prev = messages[i - 1];
        const grouped =
          !separator &&
          prev !== undefined &&
          prev.kind === undefined &&
          prev.mine === m.mine &&
          prev.sender === m.sender &&
          m.ts - prev.ts < 120_000;
        const who = m.mine ? 'You' : (m.senderName ?? peerName);
        return (
          <Fragment key={m.id}>
            {separator ? (
              // A list item holds the separator: an <ol> may contain only <li> (axe `list`).
              <li className="day-separator">
                <span role="separator" aria-label={dayLabel(m.ts)}>
                  {dayLabel(m.ts)}
                </span>
              </li>
            ) : null}
            {m.kind === 'notice' ? (
              <li className="notice-line message-notice" data-id={m.id}>
                <span>{m.text}</span>
              </li>
            ) : (
              <li
                className={`message ${m.mine ? 'mine' : 'theirs'}${grouped ? ' grouped' : ''}${m.failure ? ' failed' : ''}${m.id === highlighted ? ' highlighted' : ''}`}
                data-id={m.id}
                data-status={m.mine ? m.status : undefined}
              >
                <span className="sr-only">{who}: </span>
                <div className="message-body">
                  <div className="bubble">
                    {isGroup && !m.mine && !grouped ? (
                      <span className="sender" aria-hidden="true">
                        {who}
                      </span>
                    ) : null}
                    {m.reply && !m.deleted ? (
                      <button
                        type="button"
                        className="quote"
                        aria-label={`Reply to ${nameOf(m.reply.author)}: ${m.reply.text}`}
                        onClick={() => handlers?.jump(m.reply!.id)}
                      >
                        <span className="quote-author">{nameOf(m.reply.author)}</span>
                        <span className="quote-text">{m.reply.text}</span>
                      </button>
                    ) : null}
                    {m.deleted ? (
                      <p className="text deleted">This message was deleted</p>
                    ) : m.failure && m.mine ? (
                      <>
                        {m.attachments?.length ? <MessageAttachments attachments={m.attachments} /> : null}
                        {m.text ? (
                          <p className="text">
                            <RichText text={m.text} />
                          </p>
                        ) : null}
                        <p className="failure-note" role="status">
                          <span className="icon icon-warn" aria-hidden="true" /> {m.failure}
                        </p>
                        {handlers ? (
                          <div className="failed-actions">
                            <button type="button" className="btn btn-ghost" onClick={() => handlers.retry(m)}>
                              Retry
                            </button>
                            <button type="button" className="btn btn-ghost" onClick={() => handlers.deleteForMe(m)}>
                              Delete
                            </button>
                          </div>
                        ) : null}
                      </>
                    ) : m.failure ? (
                      <>
                        <p className="text failure">
                          <span className="icon icon-warn" aria-hidden="true" /> {m.failure}
                        </p>
                        {m.failure.startsWith('This message could not be decrypted') ? (
                          <button type="button" className="link resend" onClick={() => onResend(m.id)}>
                            Ask to resend
                          </button>
                        ) : null}
                      </>
                    ) : (
                      <>
                        {m.attachments?.length ? <MessageAttachments attachments={m.attachments} /> : null}
                        {m.text || !m.attachments?.length ? (
                          <p className="text">
                            <RichText text={m.text} />
                          </p>
                        ) : null}
                      </>
                    )}
                    <span className="meta">
                      {m.edited && !m.deleted ? <span className="edited">edited</span> : null}
                      <time dateTime={new Date(m.ts).toISOString()}>{timeLabel(m.ts)}</time>
                      {m.mine ? <Ticks status={m.status} /> : null}
                    </span>
                  </div>
                  {handlers && m.reactions?.length && !m.deleted ? (
                    <Reactions
                      reactions={m.reactions}
                      me={me}
                      onReact={(emoji) => handlers.react(m, emoji)}
                      onUnreact={() => handlers.unreact(m)}
                    />
                  ) : null}
                  {handlers && !(m.failure && m.mine) ? (
                    <MessageActions
                      canReact={!readOnly && !m.deleted && !m.failure}
                      canEdit={!readOnly && own(m) && !m.deleted && !m.failure}
                      canDeleteForEveryone={
                        !readOnly && own(m) && !m.deleted && !m.failure && now - m.ts < DELETE_WINDOW_MS
                      }
                      canReply={!readOnly && !m.deleted && !m.failure}
                      onReply={() => handlers.reply(m)}
                      onReact={(emoji) => handlers.react(m, emoji)}
                      onEdit={() => handlers.edit(m)}
                      onDeleteForEveryone={() => handlers.deleteForEveryone(m)}
                      onDeleteForMe={() => handlers.deleteForMe(m)}
                    />
                  ) : null}
                </div>
              </li>
            )}
          </Fragment>
        );
      })}
    </ol>
  );
}
