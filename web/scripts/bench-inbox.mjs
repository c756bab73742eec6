// How the virtualised inbox list behaves with 10,000 conversations in Debian's Chromium: the first
// render, the rows in the DOM, and the frame times while scrolling the whole list (a wheel-sized
// step per frame). Figures, never pass/fail on a time: docs/benchmarks.md records them.
//
//   node scripts/bench-inbox.mjs [n]      (after `npx vite build --config vite.bench.config.ts`)
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { chromium } from '@playwright/test';

const n = Number(process.argv[2] ?? 10000);
const dir = new URL('../dist-bench/', import.meta.url).pathname;
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
const server = createServer(async (req, res) => {
  const path = join(dir, new URL(req.url, 'http://x').pathname.replace(/\/$/, '/index.html'));
  try {
    res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' });
    res.end(await readFile(path));
  } catch {
    res.writeHead(404).end();
  }
}).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-precise-memory-info'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`http://127.0.0.1:${server.address().port}/?n=${n}`);
  const ready = await page.waitForFunction(() => window.benchReady).then((h) => h.jsonValue());
  const result = await page.evaluate(async () => {
    const list = document.querySelector('.list');
    const rowsInDom = () => document.querySelectorAll('.row').length;
    const domAtStart = rowsInDom();
    const frames = [];
    let maxRows = domAtStart;
    let last = performance.now();
    const step = 120; // about one mouse-wheel notch
    while (list.scrollTop + list.clientHeight < list.scrollHeight - 1) {
      list.scrollTop += step;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      frames.push(now - last);
      last = now;
      maxRows = Math.max(maxRows, rowsInDom());
    }
    frames.sort((a, b) => a - b);
    const q = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
    return {
      domAtStart,
      maxRows,
      frames: frames.length,
      p50: q(0.5),
      p95: q(0.95),
      p99: q(0.99),
      max: frames[frames.length - 1],
      over50ms: frames.filter((f) => f > 50).length,
      heapMb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
    };
  });
  const f = (x) => x.toFixed(1);
  console.log(
    `inbox list, ${ready.n} conversations: first render ${f(ready.firstRenderMs)} ms; rows in the DOM ${result.domAtStart} (at most ${result.maxRows} while scrolling); ` +
      `scrolling ${result.frames} frames: p50 ${f(result.p50)} ms, p95 ${f(result.p95)} ms, p99 ${f(result.p99)} ms, max ${f(result.max)} ms, ${result.over50ms} over 50 ms; JS heap ${result.heapMb ? f(result.heapMb) : '?'} MB`,
  );
} finally {
  await browser.close();
  server.close();
}
