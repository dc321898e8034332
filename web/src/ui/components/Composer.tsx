// Composer: Enter sends, Shift+Enter adds a line; the text stays if sending fails, and the error is shown.
import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

const MAX = 20_000;

interface Props {
  onSend: (text: string) => Promise<string>;
  onTyping: () => void;
  disabled?: boolean;
}

export function Composer({ onSend, onTyping, disabled = false }: Props) {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);

  async function send() {
    const value = text;
    if (value.trim().length === 0 || disabled) return;
    setText('');
    setError(null);
    try {
      await onSend(value);
    } catch (e) {
      setText(value);
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
        </p>
      ) : null}
      <div className="composer-row">
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
            if (e.target.value) onTyping();
          }}
          onKeyDown={onKeyDown}
          autoFocus
        />
        <button type="submit" className="btn btn-primary send" disabled={disabled || text.trim().length === 0}>
          Send
        </button>
      </div>
    </form>
  );
}
