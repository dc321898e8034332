// MessageActions: the toolbar of one message (shown on hover and keyboard focus): Reply, React (a small picker with
// a few emoji and a field for any other), Edit and Delete for everyone (own messages; the latter within 24 hours),
// Delete for me. Arrow keys move between its buttons; Escape closes the picker.
import { useRef, useState, type KeyboardEvent } from 'react';

export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'] as const;

interface Props {
  /** Which actions this message offers. */
  canEdit: boolean;
  canDeleteForEveryone: boolean;
  canReact: boolean;
  canReply: boolean;
  onReply: () => void;
  onReact: (emoji: string) => void;
  onEdit: () => void;
  onDeleteForEveryone: () => void;
  onDeleteForMe: () => void;
}

/** Arrow keys move the focus among a toolbar's buttons (WAI-ARIA toolbar pattern). */
function arrowKeys(e: KeyboardEvent<HTMLElement>) {
  if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
  const buttons = [...e.currentTarget.querySelectorAll<HTMLButtonElement>(':scope > button')];
  const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
  if (at < 0) return;
  e.preventDefault();
  const next = buttons[(at + (e.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
  next?.focus();
}

export function MessageActions(p: Props) {
  const [picking, setPicking] = useState(false);
  const [custom, setCustom] = useState('');
  const reactButton = useRef<HTMLButtonElement>(null);

  function close() {
    setPicking(false);
    setCustom('');
    reactButton.current?.focus();
  }

  function pick(emoji: string) {
    p.onReact(emoji);
    close();
  }

  return (
    <div className={`msg-actions${picking ? ' is-open' : ''}`}>
      <div role="toolbar" aria-label="Message actions" className="msg-toolbar" onKeyDown={arrowKeys}>
        {p.canReply ? (
          <button type="button" className="msg-action" onClick={p.onReply}>
            Reply
          </button>
        ) : null}
        {p.canReact ? (
          <button
            type="button"
            ref={reactButton}
            className="msg-action"
            aria-expanded={picking}
            onClick={() => setPicking((v) => !v)}
          >
            React
          </button>
        ) : null}
        {p.canEdit ? (
          <button type="button" className="msg-action" onClick={p.onEdit}>
            Edit
          </button>
        ) : null}
        {p.canDeleteForEveryone ? (
          <button type="button" className="msg-action" onClick={p.onDeleteForEveryone}>
            Delete for everyone
          </button>
        ) : null}
        <button type="button" className="msg-action" onClick={p.onDeleteForMe}>
          Delete for me
        </button>
      </div>
      {picking ? (
        <div
          className="reaction-picker"
          role="group"
          aria-label="Pick a reaction"
          onKeyDown={(e) => {
            if (e.key === 'Escape') {
              e.stopPropagation();
              close();
            }
          }}
        >
          {QUICK_REACTIONS.map((emoji, i) => (
            <button
              key={emoji}
              type="button"
              className="reaction-choice"
              aria-label={`React with ${emoji}`}
              autoFocus={i === 0}
              onClick={() => pick(emoji)}
            >
              {emoji}
            </button>
          ))}
          <form
            className="reaction-custom"
            onSubmit={(e) => {
              e.preventDefault();
              if (custom.trim()) pick(custom.trim());
            }}
          >
            <input
              aria-label="Any emoji"
              placeholder="Any emoji"
              value={custom}
              maxLength={32}
              onChange={(e) => setCustom(e.target.value)}
            />
            <button type="submit" className="btn btn-ghost" disabled={!custom.trim()}>
              Add
            </button>
          </form>
        </div>
      ) : null}
    </div>
  );
}
