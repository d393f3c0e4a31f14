//! Live channels: a dynamic MPD that loops a packaged VOD title on the wall clock with
//! continuous segment numbers, and the segments, served only inside the availability window.

use std::time::SystemTime;

use common::http::Body;
use http::Response;

use crate::config::Config;
use crate::kind::Kind;
use crate::server::{Req, State};

/// The live channels of one origin.
pub struct Live {}

impl Live {
    pub fn new(_config: &Config) -> Live {
        Live {}
    }
}

/// Answers `/live/<rest>` when `rest` names a configured channel; `None` lets the request fall
/// through to stored objects.
pub async fn handle(_state: &State, _req: &Req, _rest: &str) -> Option<(Response<Body>, Kind)> {
    None
}

/// An xs:dateTime in UTC with milliseconds, as MPDs and the `/time` endpoint use.
pub fn xs_datetime(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
