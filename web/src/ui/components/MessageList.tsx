// MessageList: bubbles grouped by day with separators; text only (React escapes it), ticks on my messages.
import { Fragment } from 'react';
import type { ChatMessage } from '../../client/types';
import { dayKey, dayLabel, timeLabel } from '../format';
import { Ticks } from './Ticks';
import { MessageAttachments } from './Attachments';

interface Props {
  messages: readonly ChatMessage[];
  peerName: string;
  isGroup: boolean;
  onResend: (id: string) => void;
}

export function MessageList({ messages, peerName, isGroup, onResend }: Props) {
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
                className={`message ${m.mine ? 'mine' : 'theirs'}${grouped ? ' grouped' : ''}${m.failure ? ' failed' : ''}`}
                data-id={m.id}
                data-status={m.mine ? m.status : undefined}
              >
                <span className="sr-only">{who}: </span>
                <div className="bubble">
                  {isGroup && !m.mine && !grouped ? (
                    <span className="sender" aria-hidden="true">
                      {who}
                    </span>
                  ) : null}
                  {m.failure ? (
                    <>
                      <p className="text failure">
                        <span className="icon icon-warn" aria-hidden="true" /> {m.failure}
                      </p>
                      {!m.mine && m.failure.startsWith('This message could not be decrypted') ? (
                        <button type="button" className="link resend" onClick={() => onResend(m.id)}>
                          Ask to resend
                        </button>
                      ) : null}
                    </>
                  ) : (
                    <>
                      {m.attachments?.length ? <MessageAttachments attachments={m.attachments} /> : null}
                      {m.text || !m.attachments?.length ? <p className="text">{m.text}</p> : null}
                    </>
                  )}
                  <span className="meta">
                    <time dateTime={new Date(m.ts).toISOString()}>{timeLabel(m.ts)}</time>
                    {m.mine ? <Ticks status={m.status} /> : null}
                  </span>
                </div>
              </li>
            )}
          </Fragment>
        );
      })}
    </ol>
  );
}
