// Opens a report HTML file in Debian's Chromium (headless, through playwright-core), with every
// request that is not file:// blocked and recorded, and prints ONE JSON object describing what the
// page shows:
//
//   node tests/node/check-report.mjs REPORT.html SCREENSHOT.png [--color-scheme light|dark] [--viewport 1280x900]
//
//   {"ready": true, "render_state": "ready", "title": "...",
//    "console_errors": [{"type": "error"|"warning", "text": "...", "location": "..."}],
//    "page_errors": ["..."],
//    "network_requests": [{"url": "...", "method": "GET", "resource_type": "..."}],
//    "kpis": {"total_market_cap": {"value": 1.23e12, "text": "$1.23T"}, ...},
//    "charts": {"dominance": [{"label": "Bitcoin", "value": 52.13, "text": "Bitcoin 52.1%"}, ...], ...},
//    "screenshot": "SCREENSHOT.png"}
//
// `value` is the number in data-value (null when the attribute is empty); `text` is the element's
// visible text with whitespace collapsed (for SVG elements: their visible <text> children);
// `series`, `id` and `title` (the SVG <title> tooltip) are added when the element has them.
// Exits 0 whenever the page could be opened; 2 for bad usage, 1 when the browser or the page
// cannot be loaded at all. CHROMIUM overrides the browser path (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function usage(message) {
  if (message) console.error(message);
  console.error('usage: node check-report.mjs REPORT.html SCREENSHOT.png [--color-scheme light|dark] [--viewport WxH]');
  process.exit(2);
}

const positional = [];
const options = { colorScheme: 'light', viewport: { width: 1280, height: 900 } };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  const take = () => {
    const eq = arg.indexOf('=');
    if (eq >= 0) return arg.slice(eq + 1);
    if (i + 1 >= process.argv.length) usage(`${arg} needs a value`);
    return process.argv[++i];
  };
  if (arg.startsWith('--color-scheme')) {
    options.colorScheme = take();
    if (!['light', 'dark', 'no-preference'].includes(options.colorScheme)) usage(`bad --color-scheme ${options.colorScheme}`);
  } else if (arg.startsWith('--viewport')) {
    const m = /^(\d+)x(\d+)$/.exec(take());
    if (!m) usage('--viewport takes WIDTHxHEIGHT');
    options.viewport = { width: Number(m[1]), height: Number(m[2]) };
  } else if (arg.startsWith('--')) {
    usage(`unknown option ${arg}`);
  } else {
    positional.push(arg);
  }
}
if (positional.length !== 2) usage();
const reportPath = path.resolve(positional[0]);
const screenshotPath = path.resolve(positional[1]);
if (!fs.existsSync(reportPath)) {
  console.error(`check-report: no such file: ${reportPath}`);
  process.exit(1);
}

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const result = {
  ready: false,
  render_state: null,
  title: null,
  console_errors: [],
  page_errors: [],
  network_requests: [],
  kpis: {},
  charts: {},
  screenshot: null,
};

// A hung browser must not hang the test suite.
const watchdog = setTimeout(() => {
  console.error('check-report: timed out after 90 s');
  process.exit(1);
}, 90_000);
watchdog.unref();

let browser;
try {
  // launch() gives the browser a fresh temporary profile (user-data-dir) and removes it on close.
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
} catch (e) {
  console.error(`check-report: cannot launch ${executablePath}: ${e.message}`);
  process.exit(1);
}

let exitCode = 0;
try {
  const context = await browser.newContext({
    viewport: options.viewport,
    deviceScaleFactor: 1,
    colorScheme: options.colorScheme,
    reducedMotion: 'reduce',
    serviceWorkers: 'block',
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  const isLocal = (url) => url.startsWith('file:') || url.startsWith('data:') || url.startsWith('blob:') || url === 'about:blank';
  const seen = new Set();
  const record = (url, method, resourceType) => {
    const key = `${method} ${url}`;
    if (seen.has(key)) return;
    seen.add(key);
    result.network_requests.push({ url, method, resource_type: resourceType });
  };
  await context.route('**/*', (route) => {
    const req = route.request();
    if (isLocal(req.url())) return route.continue();
    record(req.url(), req.method(), req.resourceType());
    return route.abort('blockedbyclient');
  });
  context.on('request', (req) => {
    if (!isLocal(req.url())) record(req.url(), req.method(), req.resourceType());
  });

  const page = await context.newPage();
  page.on('websocket', (ws) => record(ws.url(), 'WEBSOCKET', 'websocket'));
  page.on('console', (msg) => {
    const type = msg.type();
    if (type !== 'error' && type !== 'warning') return;
    const loc = msg.location();
    result.console_errors.push({
      type,
      text: msg.text(),
      location: loc && loc.url ? `${loc.url}:${loc.lineNumber}:${loc.columnNumber}` : null,
    });
  });
  page.on('pageerror', (err) => result.page_errors.push(err.stack || String(err)));

  try {
    await page.goto(pathToFileURL(reportPath).href, { waitUntil: 'load', timeout: 30_000 });
  } catch (e) {
    console.error(`check-report: cannot load ${reportPath}: ${e.message}`);
    exitCode = 1;
  }

  if (exitCode === 0) {
    try {
      await page.waitForFunction(() => document.documentElement.hasAttribute('data-report-state'), null, { timeout: 15_000 });
    } catch {
      // Not rendered in time: report what is there; `ready` stays false.
    }
    await page.evaluate(() => document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))));

    const read = await page.evaluate(() => {
      const squash = (t) => (t || '').replace(/\s+/g, ' ').trim();
      const visible = (el) => {
        const cs = getComputedStyle(el);
        return cs.display !== 'none' && cs.visibility !== 'hidden' && Number(cs.opacity) !== 0;
      };
      const textOf = (el) => {
        if (el instanceof HTMLElement) return squash(el.innerText);
        const texts = el.localName === 'text' ? [el] : Array.from(el.querySelectorAll('text'));
        return squash(texts.filter(visible).map((t) => t.textContent).join(' '));
      };
      const valueOf = (el) => {
        const v = el.getAttribute('data-value');
        if (v === null || v.trim() === '') return null;
        const n = Number(v);
        return Number.isFinite(n) ? n : v;
      };
      const titleOf = (el) => {
        const t = el instanceof SVGElement ? el.querySelector(':scope > title') : null;
        return t ? squash(t.textContent) : (el.getAttribute('title') || null);
      };
      const charts = {};
      for (const el of document.querySelectorAll('[data-chart]')) {
        const entry = { label: el.getAttribute('data-label'), value: valueOf(el), text: textOf(el) };
        if (el.hasAttribute('data-series')) entry.series = el.getAttribute('data-series');
        if (el.hasAttribute('data-id')) entry.id = el.getAttribute('data-id');
        const title = titleOf(el);
        if (title) entry.title = title;
        (charts[el.getAttribute('data-chart')] ||= []).push(entry);
      }
      const kpis = {};
      for (const el of document.querySelectorAll('[data-kpi]')) {
        const entry = { value: valueOf(el), text: textOf(el) };
        if (el.hasAttribute('data-label')) entry.label = el.getAttribute('data-label');
        kpis[el.getAttribute('data-kpi')] = entry;
      }
      const state = document.documentElement.getAttribute('data-report-state');
      return { state, title: document.title, charts, kpis };
    });
    result.render_state = read.state;
    result.ready = read.state === 'ready';
    result.title = read.title;
    result.charts = read.charts;
    result.kpis = read.kpis;

    try {
      fs.mkdirSync(path.dirname(screenshotPath), { recursive: true });
      await page.screenshot({ path: screenshotPath, fullPage: true });
      result.screenshot = screenshotPath;
    } catch (e) {
      result.screenshot_error = e.message;
    }
  }
  await context.close();
} catch (e) {
  console.error(`check-report: ${e.stack || e.message}`);
  exitCode = 1;
} finally {
  await browser.close().catch(() => {});
}

if (exitCode === 0) process.stdout.write(JSON.stringify(result) + '\n');
process.exit(exitCode);
