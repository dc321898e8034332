// The header every side panel shares: its back button and title.
import type { ReactNode } from 'react';

/** The panel's header; `titleId` names the section through aria-labelledby. */
export function PanelHeader(props: {
  titleId: string;
  title: ReactNode;
  closeLabel: string;
  onClose: () => void;
}): ReactNode {
  return (
    <header className="conv-head">
      <button type="button" className="icon-btn" aria-label={props.closeLabel} onClick={props.onClose}>
        <span className="icon icon-back" aria-hidden="true" />
      </button>
      <h2 id={props.titleId}>{props.title}</h2>
    </header>
  );
}
