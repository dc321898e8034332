// Vite build of the web app. The relay serves dist/ under `script-src 'self' 'wasm-unsafe-eval'` and
// `style-src 'self'`: no inline script or style may be emitted. Every script and stylesheet carries Subresource
// Integrity (build/subresource-integrity.ts), which the relay's Integrity-Policy header requires for scripts.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';
import { subresourceIntegrity } from './build/subresource-integrity';

const relay = process.env.RELAY_URL ?? 'http://localhost:8080';

export default defineConfig({
  plugins: [react(), subresourceIntegrity()],
  resolve: { conditions: ['source'] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // No preload helper: it would add modulepreload links at run time, without integrity (and its polyfill would be
    // inline). The integrity plugin preloads every chunk from index.html instead, each with its hash.
    modulePreload: false,
    // Never inline assets as data: URLs into JS/CSS beyond what we wrote by hand.
    assetsInlineLimit: 0,
    // libsodium (WebAssembly embedded in JS) is ~575 kB raw / ~200 kB gzipped and loads lazily on its own.
    chunkSizeWarningLimit: 700,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [{ name: 'crypto', test: /[\\/](crypto[\\/]src|libsodium[^\\/]*)[\\/]/ }],
        },
      },
    },
  },
  worker: { format: 'es' },
  // `npm run dev -w web`: the relay (started separately) answers /api and the socket through this proxy.
  server: {
    proxy: {
      '/api': relay,
      '/socket.io': { target: relay, ws: true },
    },
  },
});
