// Plays streams with dash.js, hls.js or Shaka Player in headless Chromium and prints what happened
// as one JSON line: an array with one report per session, in the order given.
//
// usage: node play.mjs PLAYER URL SECONDS [THROTTLE_KBPS THROTTLE_SECONDS [replay|lowlatency]] [-- PLAYER URL SECONDS ...]
//
// PLAYER is dashjs, hlsjs or shaka; URL is an MPD (dashjs, shaka) or an HLS multivariant playlist
// (hlsjs, shaka). Sessions run at once, each in its own page and browser context of one Chromium.
// A session ends after SECONDS, or earlier when the stream ends. Pages are served by this script
// from its own port, so streams are fetched cross-origin and CORS is exercised. When
// THROTTLE_KBPS is given, that page's network is throttled to that rate for the first
// THROTTLE_SECONDS, then released, so that the ABR has to use more than one quality (0 0 for no
// throttling). With `replay`, a stream that ends is played once more from the start (a seek to 0),
// and the session ends at its second end: a short VOD title then plays twice its length. With
// `lowlatency`, the player runs in its low-latency mode: dash.js with live catch-up and the
// low-latency throughput estimate (its latency target from the MPD's ServiceDescription), hls.js
// with `lowLatencyMode` and playback-rate catch-up.
//
// A report holds the playhead sampled every 250 ms (`times`), the seconds played (`played`: the
// sum of forward steps of the playhead between samples, so seeks and live-edge jumps don't count),
// whether the stream ended, the decoder counters of the video element (audio and video bytes,
// frames), every SourceBuffer the player made with its MIME type and the most seconds it ever
// held (`source_buffers`), the video bandwidths played, what the player says about audio, and
// the player's errors (fatal) and warnings (recoverable), and how many of the page's fetches
// went over each protocol (Resource Timing's nextHopProtocol: `h3`, `h2`, `http/1.1`).
// Of a live stream, it also holds the player's latency sampled with the playhead once playing
// (`latency`: [seconds since start, the player's own latency, latency from the wall clock,
// playback rate] every 250 ms; dash.js: getCurrentLiveLatency() and now - timeAsUTC(); hls.js:
// hls.latency and now - playingDate) and its target latency. Every session reports each
// `waiting` of the video element after it first played (`stalls`: start and length in seconds),
// the stream fetches by kind (`requests`: count and per second over the whole session and after
// its first 10 s, from Resource Timing), the fetches that failed or got an HTTP error
// (`failed_requests`) and the page's console errors.
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
const usage = 'usage: node play.mjs PLAYER URL SECONDS [THROTTLE_KBPS THROTTLE_SECONDS [replay|lowlatency]] [-- PLAYER URL SECONDS ...]';

const libraries = {
  dashjs: 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
  hlsjs: 'node_modules/hls.js/dist/hls.min.js',
  shaka: 'node_modules/shaka-player/dist/shaka-player.compiled.js',
};

// Per player: starts playback of `url` into `video` (in the player's low-latency mode when
// `lowLatency`), reporting through `report`, and returns a function sampling the current video
// bandwidth, what the player knows of audio, and its live latency.
const starters = {
  dashjs: `(video, url, report, lowLatency) => {
    const player = dashjs.MediaPlayer().create();
    player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
      report.errors.push('dash.js: ' + JSON.stringify(e.error || e).slice(0, 300));
    });
    if (lowLatency) {
      player.updateSettings({
        streaming: {
          liveCatchup: { enabled: true, mode: 'liveCatchupModeDefault' },
          abr: {
            rules: { throughputRule: { active: true }, bolaRule: { active: false } },
            throughput: { lowLatencyDownloadTimeCalculationMode: 'lowLatencyDownloadTimeCalculationModeMoofParsing' },
          },
        },
      });
    }
    player.initialize(video, url, true);
    return () => {
      const rep = player.getCurrentRepresentationForType && player.getCurrentRepresentationForType('video');
      const audio = player.getCurrentTrackFor && player.getCurrentTrackFor('audio');
      const live = video.currentTime > 0 && player.isDynamic();
      return {
        bandwidth: rep && rep.bandwidth,
        audio: audio ? 'track ' + (audio.codec || audio.mimeType || '?') : null,
        audio_buffer: player.getBufferLength ? player.getBufferLength('audio') : null,
        latency: live ? player.getCurrentLiveLatency() : undefined,
        wall_latency: live ? Date.now() / 1000 - player.timeAsUTC() : null,
        target_latency: live ? player.getTargetLiveDelay() : null,
      };
    };
  }`,
  hlsjs: `(video, url, report, lowLatency) => {
    if (!Hls.isSupported()) report.errors.push('hls.js: MediaSource is not supported');
    const hls = new Hls(lowLatency ? { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.1 } : {});
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
      const details = hls.latestLevelDetails;
      const live = video.currentTime > 0 && details && details.live;
      const date = hls.playingDate;
      return {
        bandwidth: level && level.bitrate,
        audio: track ? 'track ' + (track.name || '?') + ' of group ' + track.groupId : null,
        audio_buffer: null,
        latency: live ? hls.latency : undefined,
        wall_latency: live && date ? (Date.now() - date.getTime()) / 1000 : null,
        target_latency: live ? hls.targetLatency : null,
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
    latency: [], target_latency: null, stalls: [], started: null,
  };
  const video = document.getElementById('v');
  // Stalls: each 'waiting' after playback first started, until the playhead moves again.
  let playing = false;
  let waitingSince = null;
  const secondsIn = () => (performance.now() - report.started) / 1000;
  video.addEventListener('playing', () => {
    playing = true;
    if (waitingSince !== null) {
      report.stalls[report.stalls.length - 1][1] = secondsIn() - waitingSince;
      waitingSince = null;
    }
  });
  video.addEventListener('waiting', () => {
    if (!playing || waitingSince !== null) return;
    waitingSince = secondsIn();
    report.stalls.push([waitingSince, null]);
  });
  // Unmuted (the browser runs with an autoplay policy that allows it) but silent.
  video.volume = 0;
  video.addEventListener('error', () => {
    const e = video.error;
    report.errors.push('video element: ' + (e ? e.code + ' ' + e.message : 'error'));
  });
  // Called once the page has loaded and its network conditions are set.
  window.start = () => {
    report.started = performance.now();
    const query = new URLSearchParams(location.search);
    const sample = (${starters[player]})(video, query.get('url'), report, query.get('ll') === '1');
    setInterval(() => {
      let now = {};
      try { now = sample() || {}; } catch (e) { report.warnings.push('sampling: ' + String(e).slice(0, 200)); }
      if (now.bandwidth && !report.bandwidths.includes(now.bandwidth)) report.bandwidths.push(now.bandwidth);
      if (now.audio) report.audio = now.audio;
      if (now.audio_buffer > report.audio_buffer) report.audio_buffer = now.audio_buffer;
      if (now.target_latency !== undefined && now.target_latency !== null) report.target_latency = now.target_latency;
      if (now.latency !== undefined) {
        const number = (x) => (typeof x === 'number' && isFinite(x) ? Math.round(x * 1000) / 1000 : null);
        report.latency.push([number(secondsIn()), number(now.latency), number(now.wall_latency), video.playbackRate]);
      }
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

// Runs in every page before its scripts: remembers each SourceBuffer a player creates, and keeps
// every Resource Timing entry (the default buffer holds 250).
const recordSourceBuffers = () => {
  performance.setResourceTimingBufferSize(100000);
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
        || (mode !== undefined && mode !== 'replay' && mode !== 'lowlatency')) {
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
      lowLatency: mode === 'lowlatency',
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

// The kind of a stream fetch, from its URL: LL-HLS parts are `<N>.<i>.m4s`, segments `<N>.m4s`
// (or any other media file), blocking playlist reloads carry `_HLS_msn`.
function requestKind(url) {
  const u = new URL(url);
  const file = u.pathname.split('/').pop();
  if (/^\d+\.\d+\.m4s$/.test(file)) return 'part';
  if (file.startsWith('init')) return 'init';
  if (/\.(m4s|mp4|m4a|m4v)$/.test(file)) return 'segment';
  if (file.endsWith('.m3u8')) return u.searchParams.has('_HLS_msn') ? 'playlist_blocking' : 'playlist';
  if (file.endsWith('.mpd')) return 'mpd';
  if (u.pathname === '/time') return 'time';
  return 'other';
}

// Stream fetches by kind: how many, and per second over the session and after its first 10 s.
function requestRates(entries, seconds) {
  const steady = Math.max(seconds - 10, 0);
  const out = {};
  for (const e of entries) {
    const kind = requestKind(e.url);
    const k = (out[kind] = out[kind] || { count: 0, per_second: 0, after_10s: 0, after_10s_per_second: 0 });
    k.count += 1;
    if (e.start >= 10) k.after_10s += 1;
  }
  const round = (x) => Math.round(x * 100) / 100;
  for (const k of Object.values(out)) {
    k.per_second = seconds > 0 ? round(k.count / seconds) : null;
    k.after_10s_per_second = steady > 0 ? round(k.after_10s / steady) : null;
  }
  return out;
}

async function play(browser, session) {
  const pageUrl = `${pageBase}?player=${session.player}&url=${encodeURIComponent(session.url)}`
    + (session.lowLatency ? '&ll=1' : '');
  const context = await browser.newContext();
  try {
    const tab = await context.newPage();
    const pageErrors = [];
    tab.on('pageerror', (e) => pageErrors.push('page: ' + String(e).slice(0, 300)));
    const failed = [];
    const consoleErrors = [];
    tab.on('requestfailed', (r) => {
      failed.push(r.method() + ' ' + r.url() + ': ' + ((r.failure() && r.failure().errorText) || 'failed'));
    });
    tab.on('response', (r) => {
      if (r.status() >= 400) failed.push(r.request().method() + ' ' + r.url() + ': HTTP ' + r.status());
    });
    tab.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text().slice(0, 300));
    });
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
        fetches: performance.getEntriesByType('resource')
          .filter((e) => !e.name.startsWith(location.origin))
          .map((e) => ({ url: e.name, start: (e.startTime - window.report.started) / 1000 })),
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
      latency: r.latency,
      target_latency: r.target_latency,
      stalls: r.stalls,
      requests: requestRates(got.fetches, (Date.now() - start) / 1000),
      failed_requests: failed.slice(0, 30),
      failed_request_count: failed.length,
      console_errors: consoleErrors.slice(0, 20),
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
