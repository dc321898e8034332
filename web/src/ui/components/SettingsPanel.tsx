// SettingsPanel: theme (light / dark / system), presence sharing, and sign out (wipe or keep local data).
import { useState } from 'react';
import type { ChatEngineApi } from '../../client/types';
import { loadThemePreference, saveThemePreference, type ThemePreference } from '../theme';
import { DevicesSection } from './DevicesSection';
import { ChangePasswordSection } from './ChangePasswordSection';
import { DeleteAccountSection } from './DeleteAccountSection';
import { FormError } from './FormError';
import { PanelHeader } from './PanelHeader';
import { ProfileSection } from './ProfileSection';

interface Props {
  engine: ChatEngineApi;
  sharePresence: boolean;
  onClose: () => void;
  onSignedOut: () => void;
}

const THEMES: { value: ThemePreference; label: string }[] = [
  { value: 'light', label: 'Light' },
  { value: 'dark', label: 'Dark' },
  { value: 'system', label: 'System' },
];

export function SettingsPanel({ engine, sharePresence, onClose, onSignedOut }: Props) {
  const [theme, setTheme] = useState<ThemePreference>(loadThemePreference);
  const [keep, setKeep] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function togglePresence(on: boolean) {
    setError(null);
    try {
      await engine.setSharePresence(on);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }

  async function signOut() {
    setBusy(true);
    setError(null);
    try {
      await engine.signOut(keep);
      onSignedOut();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  }

  return (
    <section className="settings" aria-labelledby="settings-title">
      <PanelHeader titleId="settings-title" title="Settings" closeLabel="Close settings" onClose={onClose} />
      <div className="settings-body">
        <FormError error={error} />
        <ProfileSection engine={engine} />
        <fieldset className="card">
          <legend>Theme</legend>
          <div className="segmented">
            {THEMES.map((t) => (
              <label key={t.value} className={theme === t.value ? 'on' : undefined}>
                <input
                  type="radio"
                  name="theme"
                  value={t.value}
                  checked={theme === t.value}
                  onChange={() => {
                    setTheme(t.value);
                    saveThemePreference(t.value);
                  }}
                />
                <span>{t.label}</span>
              </label>
            ))}
          </div>
        </fieldset>
        <fieldset className="card">
          <legend>Privacy</legend>
          <label className="check">
            <input type="checkbox" checked={sharePresence} onChange={(e) => void togglePresence(e.target.checked)} />
            <span>Share my online status</span>
          </label>
          <p className="hint">When off, nobody sees when you are online or when you were last seen.</p>
        </fieldset>
        <DevicesSection devices={engine.devices} />
        <fieldset className="card">
          <legend>Sign out</legend>
          <label className="check">
            <input type="checkbox" checked={keep} onChange={(e) => setKeep(e.target.checked)} />
            <span>Keep my keys and history on this device</span>
          </label>
          <p className="hint">
            {keep
              ? 'Your encrypted keys and history stay here; unlock them with your password next time.'
              : 'Your keys and message history are erased from this browser.'}
          </p>
          <button type="button" className="btn btn-danger" disabled={busy} onClick={() => void signOut()}>
            Sign out
          </button>
        </fieldset>
        <ChangePasswordSection engine={engine} />
        <DeleteAccountSection engine={engine} onDeleted={onSignedOut} />
      </div>
    </section>
  );
}
