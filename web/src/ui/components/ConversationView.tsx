// ConversationView: header with presence, the message log, "is typing…", and the composer.
import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import type { ChatEngineApi, ContactTrust, Conversation, Presence } from '../../client/types';
import { lastSeenLabel } from '../format';
import { useConversationMessages, useNow } from '../hooks/useEngine';
import { Avatar } from './Avatar';
import { DisplayName } from '../profile/profiles-context';
import { GroupAvatar } from './GroupAvatar';
import { BlockButton } from './BlockButton';
import { Composer } from './Composer';
import { MessageList } from './MessageList';
import { FormError } from './FormError';

interface Props {
  engine: ChatEngineApi;
  conversation: Conversation;
  presence: Presence | undefined;
  typingUntil: number;
  typingName: string | undefined;
  trust: ContactTrust | undefined;
  /** This account blocks the person (one-to-one conversations). */
  blocked?: boolean;
  /** This conversation's unsent text (kept by the caller per conversation). */
  draft: string;
  onDraft: (text: string) => void;
  onBack: () => void;
  onSafetyNumber: () => void;
  onMembers: () => void;
}

export function ConversationView({
  engine,
  conversation,
  presence,
  typingUntil,
  typingName,
  trust,
  blocked = false,
  draft,
  onDraft,
  onBack,
  onSafetyNumber,
  onMembers,
}: Props) {
  const { conv, username, group } = conversation;
  const { messages, hasOlder, loadOlder, error } = useConversationMessages(engine, conv);
  const now = useNow(1000);
  const logRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const prevHeight = useRef(0);
  const typing = typingUntil > now;

  // Read receipts: whatever is on screen while the page is visible counts as read.
  const unreadFromPeer = messages.some((m) => !m.mine && m.status !== 'read');
  useEffect(() => {
    const mark = () => {
      if (document.visibilityState === 'visible') void engine.markRead(conv);
    };
    if (unreadFromPeer || conversation.unread > 0) mark();
    document.addEventListener('visibilitychange', mark);
    return () => document.removeEventListener('visibilitychange', mark);
  }, [engine, conv, unreadFromPeer, conversation.unread]);

  // A contact's new device shows in the conversation (issue #14): their device list is checked when it opens.
  const isGroup = group !== undefined;
  useEffect(() => {
    if (!isGroup) void engine.devices.checkContact(conv);
  }, [engine, conv, isGroup]);

  // Keep the view pinned to the newest message unless the reader scrolled up; keep position when older pages load.
  useLayoutEffect(() => {
    const el = logRef.current;
    if (!el) return;
    if (stick.current) el.scrollTop = el.scrollHeight;
    else if (prevHeight.current && el.scrollTop < 40) el.scrollTop += el.scrollHeight - prevHeight.current;
    prevHeight.current = el.scrollHeight;
  }, [messages.length, typing]);

  function onScroll() {
    const el = logRef.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    if (el.scrollTop < 40 && hasOlder) void loadOlder();
  }

  const status = group
    ? group.members.map((m) => m.username).join(', ')
    : presence?.online
      ? 'online'
      : presence
        ? lastSeenLabel(presence.lastSeen, now)
        : '';
  const [accepting, setAccepting] = useState(false);

  async function accept() {
    setAccepting(true);
    try {
      await engine.acceptIdentityChange(conv);
    } finally {
      setAccepting(false);
    }
  }

  return (
    <section className="conversation-view" aria-label={`Conversation with ${username}`}>
      <header className="conv-head">
        <button type="button" className="icon-btn back" aria-label="Back to conversations" onClick={onBack}>
          <span className="icon icon-back" aria-hidden="true" />
        </button>
        {group ? (
          <GroupAvatar name={username} picture={group.picture} />
        ) : (
          <Avatar name={username} userId={conv} online={presence?.online ?? false} />
        )}
        <div className="conv-head-text">
          <h2>
            <DisplayName userId={group ? undefined : conv} username={username} />
            {trust?.verified && !trust.blocked ? (
              <span className="verified-badge" role="img" aria-label="Verified">
                <span className="icon icon-check" aria-hidden="true" />
              </span>
            ) : null}
          </h2>
          <span className={`presence${!group && presence?.online ? ' is-online' : ''}`}>{status}</span>
        </div>
        {group ? (
          <button type="button" className="btn btn-ghost head-btn" onClick={onMembers}>
            Members
          </button>
        ) : (
          <>
            <button type="button" className="btn btn-ghost head-btn" onClick={onSafetyNumber}>
              Verify safety number
            </button>
            <BlockButton engine={engine} person={{ userId: conv, username }} blocked={blocked} />
          </>
        )}
        <span className="e2e-pill" title="Messages are end-to-end encrypted">
          <span className="icon icon-lock" aria-hidden="true" />
          Encrypted
        </span>
      </header>
      {trust?.keyChanged ? (
        <div className={`key-banner${trust.blocked ? ' is-blocked' : ''}`} role="alert">
          <span className="icon icon-warn" aria-hidden="true" />
          <p>
            {trust.blocked
              ? `${username}'s security key changed. You verified the old key, so sending is paused until you accept the new one. Compare safety numbers again to be sure.`
              : `${username}'s security key changed. This happens when they reinstall WeConnect; compare safety numbers if you want to be sure.`}
          </p>
          <div className="row">
            <button type="button" className="btn" onClick={onSafetyNumber}>
              Verify safety number
            </button>
            <button type="button" className="btn btn-primary" disabled={accepting} onClick={() => void accept()}>
              {trust.blocked ? 'Accept new key' : 'OK'}
            </button>
          </div>
        </div>
      ) : null}
      {trust?.transparency ? (
        <div className="key-banner is-blocked" role="alert">
          <span className="icon icon-warn" aria-hidden="true" />
          <p>{`${trust.transparency} Sending to ${username} is stopped: the relay may be showing you a key that is not theirs.`}</p>
        </div>
      ) : null}
      <div
        className="log"
        ref={logRef}
        role="log"
        aria-label={`Messages with ${username}`}
        tabIndex={0}
        onScroll={onScroll}
      >
        {hasOlder ? (
          <button type="button" className="btn btn-ghost load-older" onClick={() => void loadOlder()}>
            Load earlier messages
          </button>
        ) : messages.length > 0 ? (
          <p className="log-start muted">This is the beginning of your conversation with {username}.</p>
        ) : null}
        <FormError error={error} />
        <MessageList
          messages={messages}
          peerName={username}
          isGroup={Boolean(group)}
          onResend={(id) => void engine.requestResend(conv, id).catch(() => undefined)}
        />
      </div>
      <div className="typing" role="status">
        {typing ? (
          <>
            <span className="dots" aria-hidden="true">
              <span />
              <span />
              <span />
            </span>
            {group ? (typingName ?? 'Someone') : username} is typing…
          </>
        ) : null}
      </div>
      {trust?.deleted ? (
        <p className="composer-note is-deleted" role="status">
          This account was deleted
        </p>
      ) : group?.left ? (
        <p className="composer-note muted">You are no longer a member of this group.</p>
      ) : blocked ? (
        <p className="composer-note muted">
          You blocked {username}. You do not get their messages, and they do not see when you are online.
        </p>
      ) : trust?.blocked ? (
        <p className="composer-note muted">Accept {username}&apos;s new security key to send messages.</p>
      ) : null}
      <Composer
        draft={draft}
        onDraft={onDraft}
        disabled={Boolean(group?.left || trust?.blocked || trust?.deleted || blocked)}
        onSend={(text) => {
          stick.current = true;
          return engine.send(conv, text);
        }}
        onTyping={() => engine.notifyTyping(conv)}
      />
    </section>
  );
}
