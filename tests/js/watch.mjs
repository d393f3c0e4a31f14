// Drives the stack's watch page in headless Chromium the way a user would: picks a stream, a
// format and an edge, presses Play, watches for SECONDS, reads the stats the page displays and
// saves a screenshot; then the next stream in the same tab. Prints one JSON line: per tab, what
// the page listed, and per session what it showed and fetched.
//
// usage: node watch.mjs PAGE_URL OUT_DIR SECONDS TAB [TAB ...]
//
// A TAB is a comma-separated list of sessions played one after the other, each
// KIND/NAME/FORMAT@EDGE: KIND `titles` or `channels`, NAME as the page lists it, FORMAT `dash` or
// `hls`, EDGE the index of the edge in the page's list. Tabs run at once, in one Chromium.
// Screenshots are OUT_DIR/watch-<vod|live>-<NAME>-<FORMAT>.png.
import path from 'node:path';
import { chromium } from 'playwright-core';

const usage = 'usage: node watch.mjs PAGE_URL OUT_DIR SECONDS KIND/NAME/FORMAT@EDGE[,...] [...]';
const [pageUrl, outDir, secondsArg, ...tabArgs] = process.argv.slice(2);
const seconds = Number(secondsArg);
const parse = (s) => {
  const m = s.match(/^(titles|channels)\/([\w.-]+)\/(dash|hls)@(\d+)$/);
  if (!m) {
    console.error(usage);
    process.exit(2);
  }
  return { kind: m[1], name: m[2], format: m[3], edge: m[4] };
};
const tabs = tabArgs.map((t) => t.split(',').map(parse));
if (!pageUrl || !outDir || !(seconds > 0) || !tabs.length) {
  console.error(usage);
  process.exit(2);
}

// Never hang the test that runs this.
setTimeout(() => {
  console.error('watch.mjs: timed out');
  process.exit(3);
}, (tabs.reduce((n, t) => Math.max(n, t.length), 0) * (seconds + 8) + 20) * 1000).unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pageOrigin = new URL(pageUrl).origin;

async function watchTab(browser, sessions) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const tab = await context.newPage();
  const pageErrors = [];
  tab.on('pageerror', (e) => pageErrors.push('page: ' + String(e).slice(0, 300)));
  tab.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text().slice(0, 300)} (${m.location().url})`);
  });
  // Every response the tab gets, with where it came from and its CORS header.
  let responses = [];
  tab.on('response', (r) => {
    const u = new URL(r.url());
    responses.push({
      origin: u.origin,
      path: u.pathname,
      status: r.status(),
      cors: r.headers()['access-control-allow-origin'] || null,
    });
  });
  await tab.goto(pageUrl);
  await tab.waitForSelector('#play:not([disabled])', { timeout: 10000 });
  const listed = await tab.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll('#source optgroup')].map((g) => [g.label, [...g.children].map((o) => o.dataset.name)])));
  const edges = await tab.evaluate(() => [...document.querySelectorAll('#edge option')].map((o) => o.textContent));

  const results = [];
  for (const s of sessions) {
    const value = await tab.evaluate(([kind, name]) => {
      const label = kind === 'titles' ? 'Titles' : 'Live channels';
      const group = [...document.querySelectorAll('#source optgroup')].find((g) => g.label === label);
      const option = group && [...group.children].find((o) => o.dataset.name === name);
      return option ? option.value : null;
    }, [s.kind, s.name]);
    if (value === null) {
      results.push({ ...s, errors: [`the page does not list ${s.kind} ${s.name}`] });
      continue;
    }
    await tab.selectOption('#source', value);
    await tab.selectOption('#format', s.format);
    await tab.selectOption('#edge', s.edge);
    responses = [];
    pageErrors.length = 0;
    await tab.click('#play');
    const times = [];
    const start = Date.now();
    while (Date.now() - start < seconds * 1000) {
      await sleep(250);
      times.push(await tab.evaluate(() => document.getElementById('video').currentTime));
    }
    let played = 0;
    for (let i = 1; i < times.length; i++) {
      const step = times[i] - times[i - 1];
      // A forward step longer than the sampling interval allows is a seek, not playback.
      if (step > 0 && step < 1.5) played += step;
    }
    const shown = await tab.evaluate(() => {
      const text = (id) => document.getElementById(id).textContent;
      return {
        url: text('url'),
        rung: text('rung'),
        buffer: text('buffer'),
        latency: text('latency'),
        stalls: text('stalls'),
        errors: [...document.querySelectorAll('#errors li')].map((li) => li.textContent),
      };
    });
    const screenshot = path.resolve(outDir, `watch-${s.kind === 'titles' ? 'vod' : 'live'}-${s.name}-${s.format}.png`);
    await tab.screenshot({ path: screenshot, fullPage: true });
    const media = responses.filter((r) => r.origin !== pageOrigin);
    results.push({
      ...s,
      ...shown,
      errors: shown.errors.concat(pageErrors),
      played,
      first_time: times[0],
      last_time: times[times.length - 1],
      screenshot,
      media_requests: media.length,
      media_origins: [...new Set(media.map((r) => r.origin))],
      media_without_cors: media.filter((r) => r.cors === null).map((r) => r.path).slice(0, 10),
      media_failed: media.filter((r) => r.status >= 400).map((r) => r.status + ' ' + r.path).slice(0, 10),
      page_requests: responses.filter((r) => r.origin === pageOrigin).map((r) => r.status + ' ' + r.path),
    });
  }
  await context.close();
  return { listed, edges, sessions: results };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required',
    '--disable-background-networking', '--disable-component-update', '--no-first-run',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows'],
});
let results;
try {
  results = await Promise.all(tabs.map((t) => watchTab(browser, t)));
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
