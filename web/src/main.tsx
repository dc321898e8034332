// Entry point: applies the saved theme, then paints the first screen. The engine and libsodium load lazily.
import './client/zod-csp'; // first: before any module of the graph builds a zod schema (the wire contract does)
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './ui/App';
import { applyTheme, loadThemePreference } from './ui/theme';
import './ui/styles/app.css';

applyTheme(loadThemePreference());

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
