//! The playout-buffer model: seconds of media buffered, drained at the playback rate (1x
//! unless [`PlayoutBuffer::set_rate`] says otherwise) once playback has started; startup
//! threshold, stalls (rebuffer events) and their durations, startup delay; optionally the media
//! played, sampled on a fixed grid of times (what live latency is computed from).
//! Pure: time is passed in by the caller (virtual or wall clock, in seconds).

/// Buffer thresholds in seconds of media.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BufferConfig {
    /// Playback starts once this much is buffered (at least one segment is always needed).
    pub startup_s: f64,
    /// After a stall, playback resumes once this much is buffered.
    pub resume_s: f64,
    /// Fetching pauses while the buffer holds more than this.
    pub max_s: f64,
}

impl Default for BufferConfig {
    /// Pensieve's simulator: play as soon as a segment is in, cap the buffer at 60 s.
    fn default() -> Self {
        BufferConfig {
            startup_s: 0.0,
            resume_s: 0.0,
            max_s: 60.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayState {
    /// Nothing played yet.
    Startup,
    Playing,
    /// Buffer ran dry mid-stream.
    Stalled,
    /// Every segment was downloaded and played out.
    Ended,
}

/// The playout buffer at a point in time.
#[derive(Debug, Clone)]
pub struct PlayoutBuffer {
    cfg: BufferConfig,
    level_s: f64,
    state: PlayState,
    now_s: f64,
    started_at_s: f64,
    startup_delay_s: Option<f64>,
    stall_started_s: f64,
    rebuffer_events: u32,
    rebuffer_s: f64,
    played_s: f64,
    complete: bool,
    /// Media seconds played per second while playing.
    rate: f64,
    /// Sampling period of `samples` (0: no sampling).
    sample_every_s: f64,
    next_sample_s: f64,
    /// (time, media seconds played by then), once playback has started.
    samples: Vec<(f64, f64)>,
}

impl PlayoutBuffer {
    pub fn new(cfg: BufferConfig, now_s: f64) -> Self {
        PlayoutBuffer {
            cfg,
            level_s: 0.0,
            state: PlayState::Startup,
            now_s,
            started_at_s: now_s,
            startup_delay_s: None,
            stall_started_s: 0.0,
            rebuffer_events: 0,
            rebuffer_s: 0.0,
            played_s: 0.0,
            complete: false,
            rate: 1.0,
            sample_every_s: 0.0,
            next_sample_s: f64::INFINITY,
            samples: Vec::new(),
        }
    }

    /// Records the media played every `every_s` seconds from now on (once playback started).
    pub fn sample_every(&mut self, every_s: f64) {
        if every_s > 0.0 && every_s.is_finite() {
            self.sample_every_s = every_s;
            self.next_sample_s = self.now_s + every_s;
        }
    }

    /// (time, media seconds played by then) on the grid of [`PlayoutBuffer::sample_every`].
    pub fn samples(&self) -> &[(f64, f64)] {
        &self.samples
    }

    /// Plays at `rate` (media seconds per second, positive and finite; others are ignored)
    /// from `now_s` on.
    pub fn set_rate(&mut self, now_s: f64, rate: f64) {
        self.advance(now_s);
        if rate.is_finite() && rate > 0.0 {
            self.rate = rate;
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Media seconds played at `t_s` (not before now), without changing the model.
    fn played_at(&self, t_s: f64) -> f64 {
        match self.state {
            PlayState::Playing => {
                self.played_s + ((t_s - self.now_s).max(0.0) * self.rate).min(self.level_s)
            }
            _ => self.played_s,
        }
    }

    pub fn config(&self) -> &BufferConfig {
        &self.cfg
    }

    /// Moves time forward to `now_s`, draining the buffer while playing; a buffer that runs
    /// dry becomes a stall (or the end, once every segment is in). Earlier times are ignored.
    pub fn advance(&mut self, now_s: f64) {
        if now_s <= self.now_s {
            return;
        }
        while self.next_sample_s <= now_s {
            let t = self.next_sample_s;
            if self.state != PlayState::Startup {
                self.samples.push((t, self.played_at(t)));
            }
            self.next_sample_s += self.sample_every_s;
        }
        let dt = now_s - self.now_s;
        match self.state {
            PlayState::Playing => {
                let drain = dt * self.rate;
                if drain < self.level_s {
                    self.level_s -= drain;
                    self.played_s += drain;
                } else {
                    let dry_at = self.now_s + self.level_s / self.rate;
                    self.played_s += self.level_s;
                    self.level_s = 0.0;
                    if self.complete {
                        self.state = PlayState::Ended;
                    } else {
                        self.state = PlayState::Stalled;
                        self.stall_started_s = dry_at;
                        self.rebuffer_events += 1;
                        self.rebuffer_s += now_s - dry_at;
                    }
                }
            }
            PlayState::Stalled => self.rebuffer_s += dt,
            PlayState::Startup | PlayState::Ended => {}
        }
        self.now_s = now_s;
    }

    /// A segment of `duration_s` arrived at `now_s`.
    pub fn push(&mut self, now_s: f64, duration_s: f64) {
        self.advance(now_s);
        self.level_s += duration_s.max(0.0);
        match self.state {
            PlayState::Startup if self.level_s >= self.cfg.startup_s && self.level_s > 0.0 => {
                self.state = PlayState::Playing;
                self.startup_delay_s = Some(self.now_s - self.started_at_s);
            }
            PlayState::Stalled if self.level_s >= self.cfg.resume_s && self.level_s > 0.0 => {
                self.state = PlayState::Playing;
            }
            _ => {}
        }
    }

    /// No more segments will come: what is buffered plays out (starting playback if it never
    /// started), then the state is `Ended`.
    pub fn finish(&mut self, now_s: f64) {
        self.advance(now_s);
        self.complete = true;
        match self.state {
            PlayState::Startup if self.level_s > 0.0 => {
                self.state = PlayState::Playing;
                self.startup_delay_s = Some(self.now_s - self.started_at_s);
            }
            PlayState::Stalled if self.level_s > 0.0 => self.state = PlayState::Playing,
            PlayState::Stalled | PlayState::Startup => self.state = PlayState::Ended,
            _ => {}
        }
    }

    /// Seconds from `now` until the buffer would drain down to `target_s` (0 if already there or
    /// not playing).
    pub fn time_until_level(&self, target_s: f64) -> f64 {
        if self.state == PlayState::Playing {
            (self.level_s - target_s).max(0.0) / self.rate
        } else {
            0.0
        }
    }

    /// Seconds until the buffer would have to pause fetching no more (level back at `max_s`).
    pub fn time_until_fetch(&self) -> f64 {
        self.time_until_level(self.cfg.max_s)
    }

    pub fn level_s(&self) -> f64 {
        self.level_s
    }

    /// The level at a later time, without changing the model (stalls stay at 0).
    pub fn level_at(&self, t_s: f64) -> f64 {
        if self.state == PlayState::Playing {
            (self.level_s - (t_s - self.now_s).max(0.0) * self.rate).max(0.0)
        } else {
            self.level_s
        }
    }

    pub fn state(&self) -> PlayState {
        self.state
    }

    pub fn now_s(&self) -> f64 {
        self.now_s
    }

    pub fn is_playing(&self) -> bool {
        self.state == PlayState::Playing
    }

    pub fn startup_delay_s(&self) -> Option<f64> {
        self.startup_delay_s
    }

    pub fn rebuffer_events(&self) -> u32 {
        self.rebuffer_events
    }

    /// Total stall time so far (startup delay not included).
    pub fn rebuffer_s(&self) -> f64 {
        self.rebuffer_s
    }

    pub fn played_s(&self) -> f64 {
        self.played_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_threshold_and_delay() {
        let cfg = BufferConfig {
            startup_s: 8.0,
            resume_s: 4.0,
            max_s: 30.0,
        };
        let mut b = PlayoutBuffer::new(cfg, 10.0);
        b.push(11.0, 4.0);
        assert_eq!(b.state(), PlayState::Startup);
        b.advance(20.0);
        assert_eq!(b.level_s(), 4.0, "nothing drains before playback starts");
        b.push(21.5, 4.0);
        assert_eq!(b.state(), PlayState::Playing);
        assert_eq!(b.startup_delay_s(), Some(11.5));
        assert_eq!(b.rebuffer_s(), 0.0);
        b.advance(24.5);
        assert!((b.level_s() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn stall_counts_events_and_time() {
        let mut b = PlayoutBuffer::new(BufferConfig::default(), 0.0);
        b.push(1.0, 4.0);
        assert_eq!(b.startup_delay_s(), Some(1.0));
        b.advance(7.0); // ran dry at 5.0
        assert_eq!(b.state(), PlayState::Stalled);
        assert_eq!(b.rebuffer_events(), 1);
        assert!((b.rebuffer_s() - 2.0).abs() < 1e-12);
        b.push(8.0, 4.0); // stall lasted 3 s
        assert_eq!(b.state(), PlayState::Playing);
        assert!((b.rebuffer_s() - 3.0).abs() < 1e-12);
        b.advance(11.0);
        b.push(11.0, 4.0);
        assert_eq!(b.rebuffer_events(), 1);
        b.finish(11.0);
        b.advance(100.0);
        assert_eq!(b.state(), PlayState::Ended);
        assert_eq!(
            b.rebuffer_events(),
            1,
            "running out after the last segment is the end"
        );
        assert!((b.played_s() - 12.0).abs() < 1e-12);
    }

    #[test]
    fn resume_threshold_holds_the_stall() {
        let cfg = BufferConfig {
            startup_s: 0.0,
            resume_s: 6.0,
            max_s: 60.0,
        };
        let mut b = PlayoutBuffer::new(cfg, 0.0);
        b.push(0.0, 2.0);
        b.advance(3.0);
        b.push(4.0, 2.0);
        assert_eq!(b.state(), PlayState::Stalled);
        b.push(5.0, 4.0);
        assert_eq!(b.state(), PlayState::Playing);
        assert!((b.rebuffer_s() - 3.0).abs() < 1e-12);
    }

    #[test]
    fn fetch_pause_at_max() {
        let cfg = BufferConfig {
            startup_s: 0.0,
            resume_s: 0.0,
            max_s: 10.0,
        };
        let mut b = PlayoutBuffer::new(cfg, 0.0);
        for _ in 0..4 {
            b.push(0.0, 4.0);
        }
        assert!((b.time_until_fetch() - 6.0).abs() < 1e-12);
        assert!((b.level_at(2.0) - 14.0).abs() < 1e-12);
        b.advance(6.0);
        assert_eq!(b.time_until_fetch(), 0.0);
    }

    #[test]
    fn the_playback_rate_drains_the_buffer_faster_or_slower() {
        let mut b = PlayoutBuffer::new(BufferConfig::default(), 0.0);
        b.push(0.0, 2.0);
        b.set_rate(0.0, 1.1);
        b.advance(1.0);
        assert!((b.level_s() - 0.9).abs() < 1e-12);
        assert!((b.played_s() - 1.1).abs() < 1e-12);
        b.set_rate(1.0, 0.9);
        assert!((b.time_until_level(0.0) - 1.0).abs() < 1e-12);
        assert!((b.level_at(1.5) - 0.45).abs() < 1e-12);
        // Runs dry at 2.0 s, a stall of 1 s by 3.0 s.
        b.advance(3.0);
        assert_eq!(b.state(), PlayState::Stalled);
        assert!((b.rebuffer_s() - 1.0).abs() < 1e-12);
        b.set_rate(3.0, f64::NAN);
        assert_eq!(b.rate(), 0.9);
    }

    #[test]
    fn the_media_played_is_sampled_on_a_grid_once_playback_started() {
        let mut b = PlayoutBuffer::new(BufferConfig::default(), 0.0);
        b.sample_every(0.5);
        b.advance(0.9);
        b.push(1.2, 1.0);
        b.advance(3.0);
        // Nothing before the start at 1.2 s; then played at 1.5, 2.0 (1.0: dry at 2.2), ...
        let s: Vec<(f64, f64)> = b.samples().to_vec();
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(s[0].0, 1.5);
        assert!((s[0].1 - 0.3).abs() < 1e-12);
        assert!((s[1].1 - 0.8).abs() < 1e-12);
        assert!((s[2].1 - 1.0).abs() < 1e-12 && (s[3].1 - 1.0).abs() < 1e-12);
    }
}
