// Ticks: sending (clock), sent (one tick), delivered (two ticks), read (two accent ticks); named for screen readers.
import type { MessageStatus } from '../../client/types';

const LABEL: Record<MessageStatus, string> = {
  pending: 'Sending',
  sent: 'Sent',
  delivered: 'Delivered',
  read: 'Read',
};

export function Ticks({ status }: { status: MessageStatus }) {
  return (
    <span className={`ticks ticks-${status}`} role="img" aria-label={LABEL[status]} title={LABEL[status]}>
      {status === 'pending' ? <span className="tick-clock" /> : <span className="tick" />}
      {status === 'delivered' || status === 'read' ? <span className="tick second" /> : null}
    </span>
  );
}
