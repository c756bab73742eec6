// The web chat widget: one self-contained script (`<script src=".../widget.js" data-key="…">`),
// no module loader, no framework, written into dist/ beside the console.
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  root: resolve(import.meta.dirname),
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    target: 'es2020',
    lib: {
      entry: resolve(import.meta.dirname, 'widget/src/widget.ts'),
      name: 'SwitchboardWidget',
      formats: ['iife'],
      fileName: () => 'widget.js',
    },
  },
});
