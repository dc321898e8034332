// SettingsPanel: theme (light / dark / system), presence sharing, blocked people, and sign out (keeps local data
// unless the user confirms erasing it).
import { useState } from 'react';
import type { ChatEngineApi, Person } from '../../client/types';
import { loadThemePreference, saveThemePreference, type ThemePreference } from '../theme';
import { BlockedPeople } from './BlockedPeople';
import { ChangePasswordSection } from './ChangePasswordSection';
import { ClientVersionSection } from './ClientVersionSection';
import { KeyTransparencySection } from './KeyTransparencySection';
import { DeleteAccountSection } from './DeleteAccountSection';
import { DevicesSection } from './DevicesSection';
import { FormError } from './FormError';
import { NotificationSettings, ReceiptSettings } from './NotificationSettings';
import type { Preferences } from '../../client/preferences';
import { PanelHeader } from './PanelHeader';
import { ProfileSection } from './ProfileSection';
import { SignOutCard } from './SignOutCard';

interface Props {
  engine: ChatEngineApi;
  sharePresence: boolean;
  /** The people this account blocks (Settings lists them with "Unblock"). */
  blocked?: readonly Person[];
  /** Notification and privacy choices (issue #15). */
  preferences?: Preferences;
  onClose: () => void;
  onSignedOut: () => void;
}

const THEMES: { value: ThemePreference; label: string }[] = [
  { value: 'light', label: 'Light' },
  { value: 'dark', label: 'Dark' },
  { value: 'system', label: 'System' },
];

export function SettingsPanel({ engine, sharePresence, blocked = [], preferences, onClose, onSignedOut }: Props) {
  const [theme, setTheme] = useState<ThemePreference>(loadThemePreference);
  const [error, setError] = useState<string | null>(null);

  async function togglePresence(on: boolean) {
    setError(null);
    try {
      await engine.setSharePresence(on);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
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
          {preferences ? <ReceiptSettings engine={engine} preferences={preferences} /> : null}
        </fieldset>
        {preferences ? <NotificationSettings engine={engine} preferences={preferences} /> : null}
        <DevicesSection devices={engine.devices} />
        <BlockedPeople engine={engine} blocked={blocked} />
        <ChangePasswordSection engine={engine} />
        <ClientVersionSection engine={engine} />
        <KeyTransparencySection engine={engine} />
        <SignOutCard engine={engine} onSignedOut={onSignedOut} />
        <DeleteAccountSection engine={engine} onDeleted={onSignedOut} />
      </div>
    </section>
  );
}
