// Composer: Enter sends, Shift+Enter adds a line; the text stays if sending fails, and the error is shown. The text is
// the draft of one conversation: it starts from `draft` and every change goes to `onDraft`, so text typed here (even
// while the app is switching to another conversation) stays with this conversation and is never sent elsewhere.
import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { AttachButton, filesOf, PendingAttachments, type AttachmentDraft } from './Attachments';

const MAX = 20_000;

interface Props {
  /** The draft this conversation had when the composer was mounted. */
  draft: string;
  /** Receives every change of this conversation's draft (also after the composer is gone, when a send fails). */
  onDraft: (text: string) => void;
  onSend: (text: string) => Promise<string>;
  onTyping: () => void;
  disabled?: boolean;
  /** Files to send with the next message (Attach file, paste); the caller's onSend uploads them first. */
  attachments?: AttachmentDraft;
}

export function Composer({ draft, onDraft, onSend, onTyping, disabled = false, attachments }: Props) {
  const [text, setText] = useState(draft);
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);

  async function send() {
    const value = text;
    const hasFiles = (attachments?.files.length ?? 0) > 0;
    if ((value.trim().length === 0 && !hasFiles) || disabled || attachments?.busy) return;
    setText('');
    onDraft('');
    setError(null);
    try {
      await onSend(value);
    } catch (e) {
      setText(value);
      onDraft(value);
      setError(e instanceof Error ? e.message : String(e));
    }
    ref.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
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
          maxLength={MAX}
          value={text}
          disabled={disabled}
          onChange={(e) => {
            setText(e.target.value);
            onDraft(e.target.value);
            if (e.target.value) onTyping();
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
          disabled={disabled || attachments?.busy || (text.trim().length === 0 && !attachments?.files.length)}
        >
          Send
        </button>
      </div>
    </form>
  );
}
