// Plays a DASH stream with dash.js in headless Chromium and prints what happened as one JSON line.
//
// usage: node play.mjs MPD_URL SECONDS [THROTTLE_KBPS THROTTLE_SECONDS]
//
// The page is served by this script from its own port, so the stream is fetched cross-origin and
// CORS is exercised. When THROTTLE_KBPS is given, Chromium's network is throttled to that rate for
// the first THROTTLE_SECONDS, then released, so that the ABR has to use more than one quality.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const [mpdUrl, secondsArg, throttleKbpsArg, throttleSecondsArg] = process.argv.slice(2);
if (!mpdUrl || !secondsArg) {
  console.error('usage: node play.mjs MPD_URL SECONDS [THROTTLE_KBPS THROTTLE_SECONDS]');
  process.exit(2);
}
const seconds = Number(secondsArg);
const throttleKbps = throttleKbpsArg ? Number(throttleKbpsArg) : 0;
const throttleSeconds = throttleSecondsArg ? Number(throttleSecondsArg) : 0;
const dashJs = fs.readFileSync(path.join(here, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'));

const page = `<!doctype html><html><body>
<video id="v" muted playsinline></video>
<script src="/dash.all.min.js"></script>
<script>
  window.report = { errors: [], bandwidths: [], times: [] };
  const video = document.getElementById('v');
  const player = dashjs.MediaPlayer().create();
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
    window.report.errors.push(JSON.stringify(e.error || e).slice(0, 300));
  });
  player.initialize(video, new URLSearchParams(location.search).get('mpd'), true);
  setInterval(() => {
    const rep = player.getCurrentRepresentationForType && player.getCurrentRepresentationForType('video');
    if (rep && rep.bandwidth && !window.report.bandwidths.includes(rep.bandwidth)) {
      window.report.bandwidths.push(rep.bandwidth);
    }
    window.report.times.push(video.currentTime);
  }, 500);
</script></body></html>`;

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/dash.all.min.js')) {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(dashJs);
  } else {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page);
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/?mpd=${encodeURIComponent(mpdUrl)}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    '--autoplay-policy=no-user-gesture-required'],
});
let result;
try {
  const context = await browser.newContext();
  const tab = await context.newPage();
  const consoleErrors = [];
  tab.on('pageerror', (e) => consoleErrors.push(String(e).slice(0, 300)));
  const cdp = await context.newCDPSession(tab);
  await cdp.send('Network.enable');
  if (throttleKbps > 0) {
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 20, uploadThroughput: -1,
      downloadThroughput: (throttleKbps * 1000) / 8,
    });
  }
  await tab.goto(pageUrl);
  const start = Date.now();
  let released = throttleKbps === 0;
  while (Date.now() - start < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 250));
    if (!released && Date.now() - start >= throttleSeconds * 1000) {
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 0, uploadThroughput: -1, downloadThroughput: -1,
      });
      released = true;
    }
  }
  const report = await tab.evaluate(() => window.report);
  const times = report.times;
  result = {
    page: pageUrl,
    first_time: times.length ? times[0] : null,
    last_time: times.length ? times[times.length - 1] : null,
    advanced: times.length ? times[times.length - 1] - times[0] : 0,
    bandwidths: report.bandwidths,
    errors: report.errors.concat(consoleErrors),
  };
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
