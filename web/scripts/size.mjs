// The budgets of issue 20, measured on every build: the console's first load (every script the
// page loads at start) ≤ 200 KB gzipped, the widget ≤ 25 KB gzipped. Prints both; fails over budget.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url).pathname;
const gz = (file) => gzipSync(readFileSync(file), { level: 9 }).length;
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const scripts = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
let consoleJs = 0;
let consoleCss = 0;
for (const s of scripts) {
  if (s.endsWith('.js')) consoleJs += gz(join(dist, s));
  else consoleCss += gz(join(dist, s));
}
const widget = gz(join(dist, 'widget.js'));
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(`console first load: ${kb(consoleJs)} JS + ${kb(consoleCss)} CSS gzipped (${scripts.length} files; budget 200 KB JS)`);
console.log(`widget: ${kb(widget)} gzipped (budget 25 KB)`);
console.log(`all assets: ${readdirSync(join(dist, 'assets')).length} files`);
if (consoleJs > 200 * 1024 || widget > 25 * 1024) {
  console.error('over budget');
  process.exit(1);
}
