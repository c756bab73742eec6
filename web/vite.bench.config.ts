// The inbox list benchmark page (web/bench), built apart from the console so it never ships.
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  root: resolve(import.meta.dirname, 'bench'),
  base: './',
  build: { outDir: resolve(import.meta.dirname, 'dist-bench'), emptyOutDir: true, target: 'es2022' },
});
