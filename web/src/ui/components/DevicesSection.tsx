// DevicesSection (Settings → Devices, issue #14): this account's devices with their (end-to-end encrypted) names,
// when each was added and last active, "This device" marked; rename this device; remove another after confirming.
import { useCallback, useEffect, useId, useState, type FormEvent } from 'react';
import type { DeviceView, DevicesApi } from '../../client/devices';
import { FormError } from './FormError';

function when(ts: number | null): string {
  if (ts === null) return 'never';
  return new Date(ts).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function DevicesSection({ devices }: { devices: DevicesApi }) {
  const [list, setList] = useState<DeviceView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState('');
  const [confirming, setConfirming] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const titleId = useId();

  const load = useCallback(async () => {
    try {
      setList(await devices.list());
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }, [devices]);

  useEffect(() => {
    void load();
  }, [load]);

  async function rename(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await devices.renameThisDevice(name);
      setRenaming(false);
      await load();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  async function remove(deviceId: string) {
    setBusy(true);
    setError(null);
    try {
      await devices.remove(deviceId);
      setConfirming(null);
      await load();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card devices" aria-labelledby={titleId}>
      <h3 id={titleId} className="card-title">
        Devices
      </h3>
      <p className="device-meta">
        Every device signed in to your account receives your messages. Device names are encrypted: the relay cannot read
        them.
      </p>
      <FormError error={error} />
      {list === null ? (
        <p className="muted">Loading…</p>
      ) : (
        <ul className="device-list" aria-label="Devices">
          {list.map((d) => (
            <li key={d.deviceId} className="device">
              <div className="device-info">
                <span className="device-name">
                  {d.name}
                  {d.current ? <span className="badge">This device</span> : null}
                </span>
                <span className="device-meta">
                  Added {when(d.createdAt)} · Last active {when(d.lastActiveAt)}
                </span>
              </div>
              {d.current ? (
                renaming ? (
                  <form className="device-rename" onSubmit={(e) => void rename(e)}>
                    <label className="field">
                      <span>Device name</span>
                      <input
                        value={name}
                        maxLength={64}
                        disabled={busy}
                        onChange={(e) => setName(e.target.value)}
                        required
                      />
                    </label>
                    <div className="device-actions">
                      <button type="submit" className="btn btn-primary" disabled={busy}>
                        Save
                      </button>
                      <button
                        type="button"
                        className="btn btn-ghost"
                        disabled={busy}
                        onClick={() => setRenaming(false)}
                      >
                        Cancel
                      </button>
                    </div>
                  </form>
                ) : (
                  <button
                    type="button"
                    className="btn btn-ghost"
                    onClick={() => {
                      setName(d.name);
                      setRenaming(true);
                    }}
                  >
                    Rename this device
                  </button>
                )
              ) : confirming === d.deviceId ? (
                <div className="device-confirm" role="group" aria-label={`Remove ${d.name}?`}>
                  <p>
                    Remove {d.name}? It stops receiving messages at once, and its keys are erased when it is next
                    online.
                  </p>
                  <div className="device-actions">
                    <button
                      type="button"
                      className="btn btn-danger"
                      disabled={busy}
                      onClick={() => void remove(d.deviceId)}
                    >
                      Yes, remove
                    </button>
                    <button type="button" className="btn btn-ghost" disabled={busy} onClick={() => setConfirming(null)}>
                      Cancel
                    </button>
                  </div>
                </div>
              ) : (
                <button type="button" className="btn btn-ghost" onClick={() => setConfirming(d.deviceId)}>
                  Remove device
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
