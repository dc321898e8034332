// ConversationView: header with presence, the message log, "is typing…", and the composer.
import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import { authorOf } from '../../client/action-state';
import type { ChatEngineApi, ChatMessage, ContactTrust, Conversation, Presence } from '../../client/types';
import { lastSeenLabel } from '../format';
import { useConversationMessages, useNow } from '../hooks/useEngine';
import { Avatar } from './Avatar';
import { DisplayName } from '../profile/profiles-context';
import { GroupAvatar } from './GroupAvatar';
import { BlockButton } from './BlockButton';
import { ConversationOptions } from './ConversationOptions';
import { Composer, type ComposerContext } from './Composer';
import { AttachmentsProvider, filesOf, useAttachmentDraft } from './Attachments';
import { MessageList, type MessageHandlers } from './MessageList';
import { FormError } from './FormError';
import { previewText } from '../../client/attachment-names';
import { TransparencyBanner } from './TransparencyBanner';

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
  /** Whether this conversation is muted. */
  muted?: boolean;
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
  muted = false,
}: Props) {
  const { conv, username, group } = conversation;
  const { messages: loaded, hasOlder, loadOlder, error } = useConversationMessages(engine, conv);
  const me = engine.getSnapshot().me.userId;
  // Deleted for me (or a failed send retried or deleted) on this device: gone from the view at once.
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const messages = hidden.size > 0 ? loaded.filter((m) => !hidden.has(m.id)) : loaded;
  const [context, setContext] = useState<ComposerContext | null>(null);
  const [highlighted, setHighlighted] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [jumpNote, setJumpNote] = useState<string | null>(null);
  const older = useRef({ hasOlder, loadOlder });
  older.current = { hasOlder, loadOlder };
  useEffect(() => {
    setHidden(new Set());
    setContext(null);
    setHighlighted(null);
    setActionError(null);
    setJumpNote(null);
  }, [conv]);
  const now = useNow(1000);
  const logRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const prevHeight = useRef(0);
  const typing = typingUntil > now;
  const attachments = useAttachmentDraft(engine.attachments);
  const [dropping, setDropping] = useState(false);

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

  const hide = (id: string) => setHidden((prev) => new Set(prev).add(id));
  function run(what: Promise<unknown>) {
    setActionError(null);
    what.catch((e: unknown) => setActionError(e instanceof Error ? e.message : String(e)));
  }
  const nameOf = (m: ChatMessage) =>
    authorOf(m, me) === me ? 'yourself' : (m.senderName ?? (group ? 'someone' : username));

  /** Scrolls to a message and highlights it, loading older pages until it shows (or saying it is not here). */
  async function jump(id: string) {
    setJumpNote(null);
    const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    for (let page = 0; page < 40; page++) {
      const el = logRef.current?.querySelector<HTMLElement>(`[data-id="${CSS.escape(id)}"]`);
      if (el) {
        stick.current = false;
        el.scrollIntoView({ block: 'center' });
        setHighlighted(id);
        setTimeout(() => setHighlighted((h) => (h === id ? null : h)), 2_500);
        return;
      }
      if (!older.current.hasOlder) break;
      await older.current.loadOlder();
      await frame();
    }
    setJumpNote('The original message is not loaded on this device.');
  }

  const handlers: MessageHandlers = {
    reply: (m) =>
      setContext({ kind: 'reply', id: m.id, label: `Replying to ${nameOf(m)}:`, text: m.text.slice(0, 200) }),
    react: (m, emoji) => run(engine.react(conv, m.id, emoji)),
    unreact: (m) => run(engine.unreact(conv, m.id)),
    edit: (m) => setContext({ kind: 'edit', id: m.id, label: 'Editing message:', text: m.text }),
    deleteForEveryone: (m) => run(engine.deleteForEveryone(conv, m.id)),
    deleteForMe: (m) => run(engine.deleteForMe(conv, m.id).then(() => hide(m.id))),
    retry: (m) => run(engine.retry(conv, m.id).then(() => hide(m.id))),
    jump: (id) => void jump(id),
  };

  async function submit(text: string): Promise<string> {
    const ctx = context;
    if (ctx?.kind === 'edit') {
      await engine.edit(conv, ctx.id, text);
      setContext(null);
      return ctx.id;
    }
    stick.current = true;
    const quoted = ctx ? messages.find((m) => m.id === ctx.id) : undefined;
    // Uploads first (progress in the composer); a failed upload keeps the files for Retry.
    const uploaded = await attachments.uploadAll();
    const id = await engine.send(conv, text, {
      ...(quoted
        ? { reply: { id: quoted.id, author: authorOf(quoted, me), text: previewText(quoted.text, quoted.attachments) } }
        : {}),
      ...(uploaded.length ? { attachments: uploaded } : {}),
    });
    attachments.clear();
    setContext(null);
    return id;
  }

  async function accept() {
    setAccepting(true);
    try {
      await engine.acceptIdentityChange(conv);
    } finally {
      setAccepting(false);
    }
  }

  return (
    <section
      className={`conversation-view${dropping ? ' drop-target' : ''}`}
      aria-label={`Conversation with ${username}`}
      onDragOver={(e) => {
        if (!e.dataTransfer.types.includes('Files')) return;
        e.preventDefault();
        setDropping(true);
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target) setDropping(false);
      }}
      onDrop={(e) => {
        setDropping(false);
        const files = filesOf(e.dataTransfer);
        if (files.length === 0) return;
        e.preventDefault();
        attachments.add(files);
      }}
    >
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
        <ConversationOptions engine={engine} conversation={conversation} me={me} muted={muted} />
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
        <TransparencyBanner engine={engine} userId={conv} username={username} reason={trust.transparency} />
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
        <AttachmentsProvider api={engine.attachments}>
          <MessageList
            messages={messages}
            peerName={username}
            isGroup={Boolean(group)}
            onResend={(id) => void engine.requestResend(conv, id).catch(() => undefined)}
            me={me}
            now={now}
            highlighted={highlighted}
            readOnly={Boolean(group?.left || trust?.blocked || trust?.deleted || blocked)}
            handlers={handlers}
          />
        </AttachmentsProvider>
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
      {actionError ? (
        <p role="alert" className="form-error composer-error">
          {actionError}
        </p>
      ) : null}
      {jumpNote ? (
        <p role="status" className="composer-note muted">
          {jumpNote}
        </p>
      ) : null}
      <Composer
        context={context}
        onCancelContext={() => setContext(null)}
        draft={draft}
        onDraft={onDraft}
        disabled={Boolean(group?.left || trust?.blocked || trust?.deleted || blocked)}
        attachments={context?.kind === 'edit' ? undefined : attachments}
        onSend={submit}
        onTyping={() => engine.notifyTyping(conv)}
      />
    </section>
  );
}
