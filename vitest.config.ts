import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { projects: ['crypto', 'relay', 'web'] },
});
