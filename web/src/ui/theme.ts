// Theme preference (light / dark / system): kept in localStorage (not secret) and applied as <html data-theme>.

export type ThemePreference = 'light' | 'dark' | 'system';
const KEY = 'weconnect.theme';

export function loadThemePreference(): ThemePreference {
  try {
    const value = localStorage.getItem(KEY);
    return value === 'light' || value === 'dark' ? value : 'system';
  } catch {
    return 'system';
  }
}

export function saveThemePreference(pref: ThemePreference): void {
  try {
    localStorage.setItem(KEY, pref);
  } catch {
    // Storage may be disabled (private mode); the theme then lasts for this page only.
  }
  applyTheme(pref);
}

let systemQuery: MediaQueryList | null = null;
function onSystemChange(): void {
  if (loadThemePreference() === 'system') applyTheme('system');
}

export function applyTheme(pref: ThemePreference): void {
  if (!systemQuery && typeof matchMedia === 'function') {
    systemQuery = matchMedia('(prefers-color-scheme: dark)');
    systemQuery.addEventListener('change', onSystemChange);
  }
  const dark = pref === 'dark' || (pref === 'system' && (systemQuery?.matches ?? false));
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  document.documentElement.dataset.themePreference = pref;
}
