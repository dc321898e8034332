// Composer: Enter sends, Shift+Enter adds a line; the text stays if sending fails, and the error is shown. The text is
// the draft of one conversation: it starts from `draft` and every change goes to `onDraft`, so text typed here (even
// while the app is switching to another conversation) stays with this conversation and is never sent elsewhere.
// Replying or editing shows the quoted message above the field, with a button to cancel (Escape cancels too). The
// limit is counted in encoded bytes (MAX_TEXT_BYTES, what the crypto library can carry): a counter shows near it, and
// one byte over is refused here, before anything is queued.
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { MAX_TEXT_BYTES, encodedTextBytes } from '../../client/message-limits';
import { AttachButton, filesOf, PendingAttachments, type AttachmentDraft } from './Attachments';

/** The counter shows once fewer than this many bytes are left. */
const COUNTER_FROM = 1_000;

/** Replying to, or editing, a message: what the bar above the field says. */
export interface ComposerContext {
  kind: 'reply' | 'edit';
  /** The message's id (a new context replaces the text when editing). */
  id: string;
  /** "Replying to ann" / "Editing message". */
  label: string;
  text: string;
}

interface Props {
  /** The draft this conversation had when the composer was mounted. */
  draft: string;
  /** Receives every change of this conversation's draft (also after the composer is gone, when a send fails). */
  onDraft: (text: string) => void;
  onSend: (text: string) => Promise<string>;
  onTyping: () => void;
  disabled?: boolean;
  context?: ComposerContext | null;
  onCancelContext?: () => void;
  /** Files to send with the next message (Attach file, paste); the caller's onSend uploads them first. */
  attachments?: AttachmentDraft;
}

export function Composer({
  draft,
  onDraft,
  onSend,
  onTyping,
  disabled = false,
  context = null,
  onCancelContext,
  attachments,
}: Props) {
  const [text, setText] = useState(draft);
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);
  const editing = context?.kind === 'edit';
  const bytes = encodedTextBytes(text);
  const over = bytes > MAX_TEXT_BYTES;

  // Editing starts from the message's text (the draft comes back when the edit ends); replying keeps the draft.
  const contextId = context ? `${context.kind}:${context.id}` : '';
  const saved = useRef<string | null>(null);
  useEffect(() => {
    if (context?.kind === 'edit') {
      saved.current ??= text;
      setText(context.text);
    } else if (saved.current !== null) {
      setText(saved.current);
      saved.current = null;
    }
    if (context) ref.current?.focus();
  }, [contextId]);

  async function send() {
    const value = text;
    const hasFiles = (attachments?.files.length ?? 0) > 0 && !editing;
    if ((value.trim().length === 0 && !hasFiles) || disabled || attachments?.busy) return;
    if (encodedTextBytes(value) > MAX_TEXT_BYTES) {
      setError(`The message is too long: at most ${MAX_TEXT_BYTES} bytes.`);
      return;
    }
    setText(editing ? (saved.current ?? '') : '');
    if (editing) saved.current = null;
    if (!editing) onDraft('');
    setError(null);
    try {
      await onSend(value);
    } catch (e) {
      setText(value);
      if (!editing) onDraft(value);
      setError(e instanceof Error ? e.message : String(e));
    }
    ref.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === 'Escape' && context) {
      e.preventDefault();
      onCancelContext?.();
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  }

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    void send();
  }

  return (
    <form className="composer" onSubmit={onSubmit}>
      {context ? (
        <div className="composer-context">
          <p>
            <strong>{context.label}</strong> {context.text}
          </p>
          <button type="button" className="btn btn-ghost" onClick={onCancelContext}>
            {context.kind === 'edit' ? 'Cancel edit' : 'Cancel reply'}
          </button>
        </div>
      ) : null}
      {error ? (
        <p role="alert" className="form-error composer-error">
          Not sent: {error}
          {attachments?.files.length ? (
            <>
              {' '}
              <button type="button" className="link" onClick={() => void send()}>
                Retry
              </button>
            </>
          ) : null}
        </p>
      ) : null}
      {attachments ? <PendingAttachments draft={attachments} /> : null}
      <div className={`composer-row${attachments ? ' has-attach' : ''}`}>
        {attachments ? <AttachButton draft={attachments} disabled={disabled} /> : null}
        <textarea
          ref={ref}
          aria-label="Message"
          placeholder="Write a message"
          rows={1}
          value={text}
          disabled={disabled}
          aria-describedby={MAX_TEXT_BYTES - bytes < COUNTER_FROM ? 'composer-count' : undefined}
          onChange={(e) => {
            setText(e.target.value);
            if (!editing) onDraft(e.target.value);
            if (e.target.value && !editing) onTyping();
          }}
          onKeyDown={onKeyDown}
          onPaste={(e) => {
            const files = filesOf(e.clipboardData);
            if (!attachments || files.length === 0) return;
            e.preventDefault();
            attachments.add(files);
          }}
          autoFocus
        />
        <button
          type="submit"
          className="btn btn-primary send"
          disabled={
            disabled ||
            over ||
            attachments?.busy ||
            (text.trim().length === 0 && (editing || !attachments?.files.length))
          }
        >
          {editing ? 'Save' : 'Send'}
        </button>
      </div>
      {MAX_TEXT_BYTES - bytes < COUNTER_FROM ? (
        <p id="composer-count" className={`composer-count${over ? ' is-over' : ''}`} aria-live="polite">
          {over ? `${bytes - MAX_TEXT_BYTES} bytes too long` : `${MAX_TEXT_BYTES - bytes} bytes left`}
        </p>
      ) : null}
    </form>
  );
}
