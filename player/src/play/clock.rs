//! The clock of a real playback: session time (seconds since the session began, monotonic, what
//! [`crate::session::run`] and the transport measure with) and wall time (what live streams are
//! scheduled by), both read from this one injected value.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::clock::{Clock as WallTime, SystemClock};
use tokio::time::Instant;

use crate::session::Clock;

/// Session time since construction (tokio's monotonic clock) and wall time from a
/// [`common::clock::Clock`] (the system clock unless another is given).
pub struct WallClock {
    start: Instant,
    wall: Arc<dyn WallTime>,
}

impl WallClock {
    /// Session time from now on, wall time from the system clock.
    pub fn new() -> Self {
        Self::with_wall(Arc::new(SystemClock))
    }

    /// Session time from now on, wall time from `wall`.
    pub fn with_wall(wall: Arc<dyn WallTime>) -> Self {
        WallClock {
            start: Instant::now(),
            wall,
        }
    }

    /// The current wall time.
    pub fn wall_now(&self) -> SystemTime {
        self.wall.now()
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn sleep(&self, secs: f64) -> impl std::future::Future<Output = ()> {
        tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)))
    }
}
