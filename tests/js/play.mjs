// Plays streams with dash.js, hls.js or Shaka Player in headless Chromium and prints what happened
// as one JSON line: an array with one report per session, in the order given.
//
// usage: node play.mjs PLAYER URL SECONDS [THROTTLE_KBPS THROTTLE_SECONDS [replay]] [-- PLAYER URL SECONDS ...]
//
// PLAYER is dashjs, hlsjs or shaka; URL is an MPD (dashjs, shaka) or an HLS multivariant playlist
// (hlsjs, shaka). Sessions run at once, each in its own page and browser context of one Chromium.
// A session ends after SECONDS, or earlier when the stream ends. Pages are served by this script
// from its own port, so streams are fetched cross-origin and CORS is exercised. When
// THROTTLE_KBPS is given, that page's network is throttled to that rate for the first
// THROTTLE_SECONDS, then released, so that the ABR has to use more than one quality (0 0 for no
// throttling). With `replay`, a stream that ends is played once more from the start (a seek to 0),
// and the session ends at its second end: a short VOD title then plays twice its length.
//
// A report holds the playhead sampled every 250 ms (`times`), the seconds played (`played`: the
// sum of forward steps of the playhead between samples, so seeks and live-edge jumps don't count),
// whether the stream ended, the decoder counters of the video element (audio and video bytes,
// frames), every SourceBuffer the player made with its MIME type and the most seconds it ever
// held (`source_buffers`), the video bandwidths played, what the player says about audio, and
// the player's errors (fatal) and warnings (recoverable), and how many of the page's fetches
// went over each protocol (Resource Timing's nextHopProtocol: `h3`, `h2`, `http/1.1`).
//
// HTTP/3: with QUIC_ORIGINS=HOST:PORT[,...] and TRUST_CERT=PEM in the environment, Chromium
// speaks QUIC to those origins from the first request (--origin-to-force-quic-on) and accepts the
// certificate by its public key (--ignore-certificate-errors-spki-list), as it does for a server
// whose certificate chains to a public root.
import crypto from 'node:crypto';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const usage = 'usage: node play.mjs PLAYER URL SECONDS [THROTTLE_KBPS THROTTLE_SECONDS [replay]] [-- PLAYER URL SECONDS ...]';

const libraries = {
  dashjs: 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
  hlsjs: 'node_modules/hls.js/dist/hls.min.js',
  shaka: 'node_modules/shaka-player/dist/shaka-player.compiled.js',
};

// Per player: starts playback of `url` into `video`, reporting through `report`, and returns a
// function sampling the current video bandwidth and what the player knows of audio.
const starters = {
  dashjs: `(video, url, report) => {
    const player = dashjs.MediaPlayer().create();
    player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
      report.errors.push('dash.js: ' + JSON.stringify(e.error || e).slice(0, 300));
    });
    player.initialize(video, url, true);
    return () => {
      const rep = player.getCurrentRepresentationForType && player.getCurrentRepresentationForType('video');
      const audio = player.getCurrentTrackFor && player.getCurrentTrackFor('audio');
      return {
        bandwidth: rep && rep.bandwidth,
        audio: audio ? 'track ' + (audio.codec || audio.mimeType || '?') : null,
        audio_buffer: player.getBufferLength ? player.getBufferLength('audio') : null,
      };
    };
  }`,
  hlsjs: `(video, url, report) => {
    if (!Hls.isSupported()) report.errors.push('hls.js: MediaSource is not supported');
    const hls = new Hls();
    hls.on(Hls.Events.ERROR, (event, data) => {
      const text = 'hls.js: ' + data.type + ' ' + data.details + (data.reason ? ' ' + data.reason : '')
        + (data.error ? ' ' + String(data.error).slice(0, 200) : '')
        + (data.frag ? ' frag ' + data.frag.url : '') + (data.response ? ' HTTP ' + data.response.code : '');
      (data.fatal ? report.errors : report.warnings).push(text.slice(0, 400));
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => report.warnings.push('play(): ' + e)));
    return () => {
      const level = hls.levels && hls.levels[hls.currentLevel];
      const track = hls.audioTracks && hls.audioTracks[hls.audioTrack];
      return {
        bandwidth: level && level.bitrate,
        audio: track ? 'track ' + (track.name || '?') + ' of group ' + track.groupId : null,
        audio_buffer: null,
      };
    };
  }`,
  shaka: `(video, url, report) => {
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) report.errors.push('shaka: browser not supported');
    const player = new shaka.Player();
    const describe = (e) => {
      let data = '';
      try { data = JSON.stringify(e.data); } catch (_) { data = String(e.data); }
      return 'shaka: severity ' + e.severity + ' category ' + e.category + ' code ' + e.code + ' ' + data.slice(0, 300);
    };
    player.addEventListener('error', (event) => {
      const e = event.detail;
      (e.severity === 2 ? report.errors : report.warnings).push(describe(e));
    });
    player.attach(video)
      .then(() => player.load(url))
      .then(() => video.play())
      .catch((e) => report.errors.push(e && e.code ? describe(e) : 'shaka: ' + String(e).slice(0, 300)));
    return () => {
      const active = player.getVariantTracks().find((t) => t.active);
      return {
        bandwidth: active && (active.videoBandwidth || active.bandwidth),
        audio: active && active.audioCodec ? 'variant ' + active.audioCodec : null,
        audio_buffer: null,
      };
    };
  }`,
};

const page = (player) => `<!doctype html><html><body>
<video id="v" playsinline autoplay></video>
<script src="/lib/${player}.js"></script>
<script>
  const report = window.report = {
    errors: [], warnings: [], bandwidths: [], times: [], audio: null, audio_buffer: 0,
  };
  const video = document.getElementById('v');
  // Unmuted (the browser runs with an autoplay policy that allows it) but silent.
  video.volume = 0;
  video.addEventListener('error', () => {
    const e = video.error;
    report.errors.push('video element: ' + (e ? e.code + ' ' + e.message : 'error'));
  });
  // Called once the page has loaded and its network conditions are set.
  window.start = () => {
    const sample = (${starters[player]})(video, new URLSearchParams(location.search).get('url'), report);
    setInterval(() => {
      let now = {};
      try { now = sample() || {}; } catch (e) { report.warnings.push('sampling: ' + String(e).slice(0, 200)); }
      if (now.bandwidth && !report.bandwidths.includes(now.bandwidth)) report.bandwidths.push(now.bandwidth);
      if (now.audio) report.audio = now.audio;
      if (now.audio_buffer > report.audio_buffer) report.audio_buffer = now.audio_buffer;
      report.times.push(video.currentTime);
      for (const b of window.__sourceBuffers) {
        try {
          let held = 0;
          for (let i = 0; i < b.sb.buffered.length; i++) held += b.sb.buffered.end(i) - b.sb.buffered.start(i);
          if (held > b.max_seconds) b.max_seconds = held;
        } catch (_) { /* removed from its MediaSource */ }
      }
    }, 250);
  };
</script></body></html>`;

// Runs in every page before its scripts: remembers each SourceBuffer a player creates.
const recordSourceBuffers = () => {
  window.__sourceBuffers = [];
  for (const name of ['MediaSource', 'ManagedMediaSource']) {
    const ctor = window[name];
    if (!ctor) continue;
    const add = ctor.prototype.addSourceBuffer;
    ctor.prototype.addSourceBuffer = function (mime) {
      const sb = add.call(this, mime);
      window.__sourceBuffers.push({ mime, sb, max_seconds: 0 });
      return sb;
    };
  }
};

function parseSessions(args) {
  const sessions = [];
  let rest = args;
  while (rest.length) {
    const end = rest.indexOf('--');
    const own = end < 0 ? rest : rest.slice(0, end);
    rest = end < 0 ? [] : rest.slice(end + 1);
    const [player, url, seconds, throttleKbps, throttleSeconds, mode] = own;
    if (!libraries[player] || !url || !(Number(seconds) > 0) || own.length > 6
        || (mode !== undefined && mode !== 'replay')) {
      console.error(usage);
      process.exit(2);
    }
    sessions.push({
      player,
      url,
      seconds: Number(seconds),
      throttleKbps: throttleKbps ? Number(throttleKbps) : 0,
      throttleSeconds: throttleSeconds ? Number(throttleSeconds) : 0,
      replay: mode === 'replay',
    });
  }
  if (!sessions.length) {
    console.error(usage);
    process.exit(2);
  }
  return sessions;
}

const sessions = parseSessions(process.argv.slice(2));
const scripts = {};
for (const player of new Set(sessions.map((s) => s.player))) {
  scripts[player] = fs.readFileSync(path.join(here, libraries[player]));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://page');
  const lib = url.pathname.match(/^\/lib\/(\w+)\.js$/);
  if (lib && scripts[lib[1]]) {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(scripts[lib[1]]);
  } else if (url.pathname === '/' && scripts[url.searchParams.get('player')]) {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page(url.searchParams.get('player')));
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const pageBase = `http://127.0.0.1:${server.address().port}/`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function play(browser, session) {
  const pageUrl = `${pageBase}?player=${session.player}&url=${encodeURIComponent(session.url)}`;
  const context = await browser.newContext();
  try {
    const tab = await context.newPage();
    const pageErrors = [];
    tab.on('pageerror', (e) => pageErrors.push('page: ' + String(e).slice(0, 300)));
    await tab.addInitScript(recordSourceBuffers);
    await tab.goto(pageUrl);
    const cdp = await context.newCDPSession(tab);
    await cdp.send('Network.enable');
    if (session.throttleKbps > 0) {
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 20, uploadThroughput: -1,
        downloadThroughput: (session.throttleKbps * 1000) / 8,
      });
    }
    await tab.evaluate(() => window.start());
    const start = Date.now();
    let released = session.throttleKbps === 0;
    let ended = false;
    let ends = 0;
    let endTime = null;
    while (Date.now() - start < session.seconds * 1000 && !ended) {
      await sleep(250);
      if (!released && Date.now() - start >= session.throttleSeconds * 1000) {
        await cdp.send('Network.emulateNetworkConditions', {
          offline: false, latency: 0, uploadThroughput: -1, downloadThroughput: -1,
        });
        released = true;
      }
      ended = await tab.evaluate(() => document.getElementById('v').ended);
      if (ended) {
        ends += 1;
        if (endTime === null) endTime = await tab.evaluate(() => document.getElementById('v').currentTime);
        if (session.replay && ends === 1) {
          // Once more from the start: a seek back and a second pass over the same segments.
          await tab.evaluate(() => {
            const v = document.getElementById('v');
            v.currentTime = 0;
            return v.play();
          });
          ended = false;
        }
      }
    }
    // One more sample after the end, so the last playhead position is in the report.
    await sleep(300);
    const got = await tab.evaluate(() => {
      const v = document.getElementById('v');
      const quality = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
      return {
        report: window.report,
        ended: v.ended,
        paused: v.paused,
        ready_state: v.readyState,
        current_time: v.currentTime,
        duration: v.duration,
        audio_decoded_bytes: v.webkitAudioDecodedByteCount,
        video_decoded_bytes: v.webkitVideoDecodedByteCount,
        decoded_frames: v.webkitDecodedFrameCount,
        dropped_frames: quality.droppedVideoFrames,
        source_buffers: window.__sourceBuffers.map((b) => ({ mime: b.mime, max_seconds: b.max_seconds })),
        protocols: performance.getEntriesByType('resource')
          .filter((e) => !e.name.startsWith(location.origin))
          .reduce((n, e) => {
            const p = e.nextHopProtocol || 'unknown';
            n[p] = (n[p] || 0) + 1;
            return n;
          }, {}),
      };
    });
    const r = got.report;
    const times = r.times;
    let played = 0;
    for (let i = 1; i < times.length; i++) {
      const step = times[i] - times[i - 1];
      // A forward step longer than the sampling interval allows is a seek, not playback.
      if (step > 0 && step < 1.5) played += step;
    }
    return {
      player: session.player,
      url: session.url,
      page: pageUrl,
      wall_seconds: (Date.now() - start) / 1000,
      first_time: times.length ? times[0] : null,
      last_time: times.length ? times[times.length - 1] : null,
      advanced: times.length ? times[times.length - 1] - times[0] : 0,
      played,
      times,
      ended: got.ended,
      ends,
      end_time: endTime,
      paused: got.paused,
      ready_state: got.ready_state,
      current_time: got.current_time,
      duration: got.duration,
      audio_decoded_bytes: got.audio_decoded_bytes,
      video_decoded_bytes: got.video_decoded_bytes,
      decoded_frames: got.decoded_frames,
      dropped_frames: got.dropped_frames,
      source_buffers: got.source_buffers,
      protocols: got.protocols,
      player_audio: r.audio,
      player_audio_buffer: r.audio_buffer,
      bandwidths: r.bandwidths,
      errors: r.errors.concat(pageErrors),
      warnings: r.warnings.slice(0, 20),
    };
  } finally {
    await context.close();
  }
}

const quic = [];
if (process.env.QUIC_ORIGINS) {
  const pem = fs.readFileSync(process.env.TRUST_CERT);
  const spki = new crypto.X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  const pin = crypto.createHash('sha256').update(spki).digest('base64');
  quic.push('--enable-quic', `--origin-to-force-quic-on=${process.env.QUIC_ORIGINS}`,
    `--ignore-certificate-errors-spki-list=${pin}`);
} else {
  quic.push('--disable-quic');
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', ...quic,
    '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling',
    '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
});
let results;
try {
  results = await Promise.all(sessions.map((s) => play(browser, s)));
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(results));
