// The dashboard is served by the API server under /ui/ (see src/lib.rs); hashed assets there
// are cached for a year, so every file name but index.html must carry its content hash.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/ui/',
  build: {
    target: 'es2022',
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
});
