// Notices: plain-language banners for problems (relay unreachable, a message that failed to decrypt).
import type { ChatEngineApi, ConnectionState, Notice } from '../../client/types';

interface Props {
  engine: ChatEngineApi;
  notices: readonly Notice[];
  connection: ConnectionState;
}

export function Notices({ engine, notices, connection }: Props) {
  return (
    <div className="notices">
      {connection === 'offline' ? (
        <p className="notice notice-error" role="alert">
          Offline — messages will be sent when the relay is back.
        </p>
      ) : null}
      {notices.map((n) => (
        <p key={n.id} className={`notice notice-${n.kind}`} role={n.kind === 'error' ? 'alert' : 'status'}>
          <span>{n.text}</span>
          <button
            type="button"
            className="icon-btn small"
            aria-label="Dismiss"
            onClick={() => engine.dismissNotice(n.id)}
          >
            <span className="icon icon-close" aria-hidden="true" />
          </button>
        </p>
      ))}
    </div>
  );
}
