// Settings → Notifications (desktop notifications, what they show, a sound) and the reciprocal privacy choices
// (read receipts, typing indicators). Stored sealed on this device by the engine (issue #15).
import { useEffect, useState } from 'react';
import type { Preferences } from '../../client/preferences';
import type { ChatEngineApi } from '../../client/types';
import { notificationsSupported, requestNotificationPermission } from '../notifications';
import { FormError } from './FormError';

const CONTENT: { value: Preferences['notifyContent']; label: string }[] = [
  { value: 'full', label: 'Name and message' },
  { value: 'name', label: 'Name only' },
  { value: 'none', label: 'Nothing' },
];

/**
 * The preferences as shown: the engine's, with a change applied at once (a controlled checkbox or radio must reflect
 * the click before the sealed write finishes), and saved; an error puts the engine's value back.
 */
function usePreferenceEditor(engine: ChatEngineApi, preferences: Preferences) {
  const [shown, setShown] = useState(preferences);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setShown(preferences), [preferences]);
  function save(patch: Partial<Preferences>) {
    setError(null);
    setShown((p) => ({ ...p, ...patch }));
    engine.setPreferences(patch).catch((e: unknown) => {
      setShown(engine.getSnapshot().preferences);
      setError(e instanceof Error ? e.message : String(e));
    });
  }
  return { shown, error, save };
}

function currentPermission(): NotificationPermission | 'unsupported' {
  return notificationsSupported() ? Notification.permission : 'unsupported';
}

export function NotificationSettings({ engine, preferences }: { engine: ChatEngineApi; preferences: Preferences }) {
  const [permission, setPermission] = useState(currentPermission);
  const { shown, error, save } = usePreferenceEditor(engine, preferences);

  return (
    <fieldset className="card notify-settings">
      <legend>Notifications</legend>
      <FormError error={error} />
      {permission === 'granted' ? (
        <p className="hint">Desktop notifications are on for this browser.</p>
      ) : permission === 'default' ? (
        <button type="button" className="btn" onClick={() => void requestNotificationPermission().then(setPermission)}>
          Enable desktop notifications
        </button>
      ) : (
        <p className="hint">
          {permission === 'denied'
            ? 'This browser blocks notifications from WeConnect; allow them in the site settings.'
            : 'This browser cannot show desktop notifications.'}
        </p>
      )}
      <div className="radio-group" role="radiogroup" aria-labelledby="notify-content-label">
        <span id="notify-content-label" className="group-label">
          Notification content
        </span>
        {CONTENT.map((c) => (
          <label key={c.value} className="check">
            <input
              type="radio"
              name="notify-content"
              value={c.value}
              checked={shown.notifyContent === c.value}
              onChange={() => save({ notifyContent: c.value })}
            />
            <span>{c.label}</span>
          </label>
        ))}
      </div>
      <p className="hint">“Nothing” shows only “New message”, without a name.</p>
      <label className="check">
        <input type="checkbox" checked={shown.sound} onChange={(e) => save({ sound: e.target.checked })} />
        <span>Play a sound</span>
      </label>
    </fieldset>
  );
}

/** The two reciprocal privacy choices, for the Privacy section. */
export function ReceiptSettings({ engine, preferences }: { engine: ChatEngineApi; preferences: Preferences }) {
  const { shown, error, save } = usePreferenceEditor(engine, preferences);
  return (
    <>
      <FormError error={error} />
      <label className="check">
        <input
          type="checkbox"
          checked={shown.readReceipts}
          onChange={(e) => save({ readReceipts: e.target.checked })}
        />
        <span>Send read receipts</span>
      </label>
      <p className="hint">When off, others do not see when you read their messages, and you do not see theirs.</p>
      <label className="check">
        <input
          type="checkbox"
          checked={shown.typingIndicators}
          onChange={(e) => save({ typingIndicators: e.target.checked })}
        />
        <span>Send typing indicators</span>
      </label>
      <p className="hint">When off, others do not see when you are typing, and you do not see when they are.</p>
    </>
  );
}
