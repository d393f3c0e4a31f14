//! Request coalescing: at most one upstream fetch per cache key at a time. The first request
//! for a missing or stale key creates a flight; concurrent requests for the key join it. The
//! fetch runs in its own task (so a client hanging up does not cancel it), appends the body to
//! the flight as chunks arrive, and every member streams from that shared buffer at its own
//! pace, so waiters get the first bytes as soon as the upstream sends them. The buffers of all
//! flights draw on one byte budget, which bounds the memory used beyond the store.
//!
//! The guarantee, for a response still being produced upstream (a live segment sent in chunks
//! as they are encoded, with or without Content-Length): every chunk is handed to every member
//! as soon as it arrives, nothing waits for the end of the body, and each server connection
//! (HTTP/1.1 chunked, HTTP/2, HTTP/3) writes it out at once. A request arriving while the body
//! is still coming joins the flight, gets the chunks already received at once and the rest as
//! they come, and costs no second upstream request. The response is stored only once complete;
//! a body that breaks or stalls past the idle timeout fails every member and is not stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use common::http::{Body, BoxError};

use crate::key::CacheKey;
use crate::metrics::ByteTally;
use crate::policy::Freshness;

/// The response head a flight shares with its members.
#[derive(Debug)]
pub struct SharedHead {
    pub status: StatusCode,
    /// Hop-by-hop fields removed.
    pub headers: HeaderMap,
    pub content_length: Option<u64>,
    /// Status the upstream answered (304 when a stored copy was revalidated).
    pub fwd_status: u16,
    /// The response will be stored once complete.
    pub stored: bool,
    /// Freshness, when the response is storable (for Age and ttl).
    pub freshness: Option<Freshness>,
    /// The Vary request values the fetch was made with.
    pub vary: Vec<(HeaderName, Option<String>)>,
}

/// Where a flight stands.
#[derive(Debug, Clone)]
pub enum Head {
    /// No response head yet.
    Pending,
    /// A shareable response; its body streams through the flight.
    Ready(Arc<SharedHead>),
    /// A response that must not be shared (private, or too large to buffer): only the request
    /// that created the flight gets it; the others fetch on their own.
    Pass,
    /// The upstream could not be reached or did not answer in time.
    Failed(crate::upstream::UpstreamError),
}

struct State {
    head: Head,
    chunks: Vec<Bytes>,
    len: u64,
    done: bool,
    error: Option<String>,
    pass: Option<Response<Incoming>>,
    permits: Option<OwnedSemaphorePermit>,
    reserved: u64,
}

/// One upstream fetch shared by every request that joined it.
pub struct Flight {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    budget: Arc<Semaphore>,
}

impl Flight {
    fn new(budget: Arc<Semaphore>) -> Flight {
        Flight {
            state: Mutex::new(State {
                head: Head::Pending,
                chunks: Vec::new(),
                len: 0,
                done: false,
                error: None,
                pass: None,
                permits: None,
                reserved: 0,
            }),
            changed: watch::channel(0).0,
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Waits up to `wait` for the response head; `None` when it did not come in time.
    pub async fn head(&self, wait: Duration) -> Option<Head> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            rx.borrow_and_update();
            {
                let st = self.lock();
                if !matches!(st.head, Head::Pending) {
                    return Some(st.head.clone());
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Waits up to `wait` for the whole body; returns its length when complete.
    pub async fn complete_len(&self, wait: Duration) -> Option<u64> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            rx.borrow_and_update();
            {
                let st = self.lock();
                if st.done {
                    return Some(st.len);
                }
                if st.error.is_some() || matches!(st.head, Head::Failed(_) | Head::Pass) {
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// True while no response head has arrived.
    pub fn is_pending(&self) -> bool {
        matches!(self.lock().head, Head::Pending)
    }

    /// True once the body is complete or has failed.
    pub fn is_settled(&self) -> bool {
        let st = self.lock();
        st.done || st.error.is_some()
    }

    /// The unshared response, for the request that created the flight.
    pub fn take_pass(&self) -> Option<Response<Incoming>> {
        self.lock().pass.take()
    }

    /// Reserves budget for `bytes` of body up front; false when the budget cannot hold it.
    pub fn reserve(&self, bytes: u64) -> bool {
        let Ok(n) = u32::try_from(bytes) else {
            return false;
        };
        match self.budget.clone().try_acquire_many_owned(n.max(1)) {
            Ok(p) => {
                let mut st = self.lock();
                st.reserved += bytes.max(1);
                match &mut st.permits {
                    Some(held) => held.merge(p),
                    None => st.permits = Some(p),
                }
                true
            }
            Err(_) => false,
        }
    }

    pub fn set_head(&self, head: Head) {
        self.lock().head = head;
        self.notify();
    }

    /// Hands the creator an unshared response.
    pub fn set_pass(&self, resp: Response<Incoming>) {
        {
            let mut st = self.lock();
            st.pass = Some(resp);
            st.head = Head::Pass;
        }
        self.notify();
    }

    /// Appends a chunk; false (and the flight fails) when the budget is exhausted.
    pub fn push(&self, chunk: Bytes) -> bool {
        let n = chunk.len() as u64;
        let need = {
            let st = self.lock();
            (st.len + n).saturating_sub(st.reserved)
        };
        if need > 0 && !self.reserve(need) {
            self.fail_body("the edge's in-flight buffer budget is exhausted");
            return false;
        }
        {
            let mut st = self.lock();
            st.len += n;
            st.chunks.push(chunk);
        }
        self.notify();
        true
    }

    /// Marks the body complete.
    pub fn finish(&self) {
        self.lock().done = true;
        self.notify();
    }

    /// Ends the body with an error (members see a truncated body).
    pub fn fail_body(&self, msg: &str) {
        self.lock().error = Some(msg.to_string());
        self.notify();
    }

    /// The complete body's chunks as they arrived, when done.
    pub fn body_chunks(&self) -> Option<Vec<Bytes>> {
        let st = self.lock();
        st.done.then(|| st.chunks.clone())
    }

    /// A client body streaming bytes `start..end` (to the end of the body when `end` is None)
    /// as they arrive, failing when nothing arrives within `idle`.
    pub fn body(
        self: &Arc<Self>,
        start: u64,
        end: Option<u64>,
        idle: Duration,
        tally: ByteTally,
    ) -> Body {
        let cursor = Cursor {
            rx: self.changed.subscribe(),
            flight: self.clone(),
            pos: start,
            end,
            idx: 0,
            base: 0,
            idle,
            tally,
        };
        let stream = futures_util::stream::unfold(cursor, |mut c| async move {
            let item = c.next().await?;
            Some((item, c))
        });
        StreamBody::new(stream.map(|r| r.map(Frame::data))).boxed_unsync()
    }
}

struct Cursor {
    flight: Arc<Flight>,
    rx: watch::Receiver<u64>,
    pos: u64,
    end: Option<u64>,
    /// Index of the chunk holding `pos`, and the body offset where that chunk starts.
    idx: usize,
    base: u64,
    idle: Duration,
    tally: ByteTally,
}

enum Step {
    Data(Bytes),
    End,
    Fail(String),
    Wait,
}

impl Cursor {
    fn step(&mut self) -> Step {
        if self.end.is_some_and(|e| self.pos >= e) {
            return Step::End;
        }
        let st = self.flight.lock();
        while self.idx < st.chunks.len() && self.base + st.chunks[self.idx].len() as u64 <= self.pos
        {
            self.base += st.chunks[self.idx].len() as u64;
            self.idx += 1;
        }
        if let Some(chunk) = st.chunks.get(self.idx) {
            let off = (self.pos - self.base) as usize;
            let mut take = chunk.len() - off;
            if let Some(e) = self.end {
                take = take.min((e - self.pos) as usize);
            }
            self.pos += take as u64;
            return Step::Data(chunk.slice(off..off + take));
        }
        if let Some(e) = &st.error {
            return Step::Fail(e.clone());
        }
        if st.done {
            if self.end.is_some_and(|e| self.pos < e) {
                return Step::Fail("upstream body shorter than announced".into());
            }
            return Step::End;
        }
        Step::Wait
    }

    async fn next(&mut self) -> Option<Result<Bytes, BoxError>> {
        loop {
            self.rx.borrow_and_update();
            match self.step() {
                Step::Data(b) => {
                    self.tally.add(b.len() as u64);
                    return Some(Ok(b));
                }
                Step::End => return None,
                Step::Fail(e) => {
                    self.end = Some(0);
                    return Some(Err(e.into()));
                }
                Step::Wait => {}
            }
            match tokio::time::timeout(self.idle, self.rx.changed()).await {
                Ok(_) => continue,
                Err(_) => {
                    self.end = Some(0);
                    return Some(Err("timed out waiting for the shared upstream body".into()));
                }
            }
        }
    }
}

/// The flights in progress, by key.
pub struct Flights {
    map: Mutex<HashMap<CacheKey, Arc<Flight>>>,
    budget: Arc<Semaphore>,
}

impl Flights {
    /// `budget`: bytes all flights may buffer at once.
    pub fn new(budget: u64) -> Flights {
        let permits = budget.min(Semaphore::MAX_PERMITS as u64) as usize;
        Flights {
            map: Mutex::new(HashMap::new()),
            budget: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Joins the flight for `key`, or creates it: `(flight, true)` means the caller created it
    /// and must start the fetch.
    pub fn join(&self, key: &CacheKey) -> (Arc<Flight>, bool) {
        self.join_if(key, || true)
            .expect("a flight is always created when allowed")
    }

    /// Like [`Flights::join`], asking `allow` (once, and only when no flight for `key` is
    /// running) whether a new one may start: `None` when it may not. Joining a running flight
    /// is always allowed, so a per-client miss budget charged in `allow` is never charged for a
    /// request that costs the upstream nothing.
    pub fn join_if(
        &self,
        key: &CacheKey,
        allow: impl FnOnce() -> bool,
    ) -> Option<(Arc<Flight>, bool)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get(key) {
            return Some((f.clone(), false));
        }
        if !allow() {
            return None;
        }
        let f = Arc::new(Flight::new(self.budget.clone()));
        map.insert(key.clone(), f.clone());
        Some((f, true))
    }

    /// True when a fetch for `key` is running.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Removes the flight (if it is still the one registered for `key`): later requests will
    /// look the store up again.
    pub fn land(&self, key: &CacheKey, flight: &Arc<Flight>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(key);
        }
    }

    /// Unregisters every flight whose key matches, as a PURGE does: their members are still
    /// served, but later requests no longer join them (they start a new fetch). Returns how many.
    pub fn detach(&self, matches: impl Fn(&CacheKey) -> bool) -> usize {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|k, _| !matches(k));
        before - map.len()
    }

    /// Bytes of budget left.
    pub fn budget_available(&self) -> usize {
        self.budget.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally() -> ByteTally {
        crate::metrics::Metrics::new("t").unwrap().tally("upstream")
    }

    fn key() -> CacheKey {
        CacheKey {
            host: "h".into(),
            path: "/k".into(),
        }
    }

    async fn collect(body: Body) -> Result<Vec<u8>, String> {
        body.collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .map_err(|e| e.to_string())
    }

    fn ready() -> Head {
        Head::Ready(Arc::new(SharedHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            content_length: None,
            fwd_status: 200,
            stored: false,
            freshness: None,
            vary: Vec::new(),
        }))
    }

    #[tokio::test]
    async fn members_stream_while_the_fetch_runs() {
        let flights = Flights::new(1 << 20);
        let (f, created) = flights.join(&key());
        assert!(created);
        let (g, created) = flights.join(&key());
        assert!(!created && Arc::ptr_eq(&f, &g));
        let idle = Duration::from_secs(5);
        let whole = tokio::spawn(collect(f.body(0, None, idle, tally())));
        let part = tokio::spawn(collect(f.body(3, Some(7), idle, tally())));
        f.set_head(ready());
        assert!(matches!(g.head(idle).await, Some(Head::Ready(_))));
        for piece in [&b"0123"[..], b"45", b"6789"] {
            assert!(f.push(Bytes::copy_from_slice(piece)));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        f.finish();
        assert_eq!(whole.await.unwrap().unwrap(), b"0123456789");
        assert_eq!(part.await.unwrap().unwrap(), b"3456");
        // A late joiner still gets the whole body from the buffer.
        assert_eq!(
            collect(g.body(0, None, idle, tally())).await.unwrap(),
            b"0123456789"
        );
        assert_eq!(f.body_chunks().unwrap().concat(), b"0123456789");
        flights.land(&key(), &f);
        assert!(!flights.contains(&key()));
    }

    #[test]
    fn only_starting_a_flight_asks_for_permission() {
        let flights = Flights::new(100);
        let asked = std::cell::Cell::new(0);
        let deny = || {
            asked.set(asked.get() + 1);
            false
        };
        assert!(flights.join_if(&key(), deny).is_none());
        assert!(
            !flights.contains(&key()),
            "a refused flight is not registered"
        );
        let (f, created) = flights.join_if(&key(), || true).unwrap();
        assert!(created);
        // Joining the running flight never asks, and is never refused.
        let (g, created) = flights.join_if(&key(), deny).unwrap();
        assert!(!created && Arc::ptr_eq(&f, &g));
        assert_eq!(asked.get(), 1);
    }

    #[tokio::test]
    async fn budget_bounds_buffers_and_frees_on_drop() {
        let flights = Flights::new(10);
        let (f, _) = flights.join(&key());
        f.set_head(ready());
        assert!(f.push(Bytes::from_static(b"12345678")));
        assert!(!f.push(Bytes::from_static(b"too much")));
        let err = collect(f.body(0, None, Duration::from_secs(1), tally())).await;
        assert!(err.is_err(), "budget overflow must fail the body");
        assert!(flights.budget_available() <= 2);
        flights.land(&key(), &f);
        drop(f);
        assert_eq!(flights.budget_available(), 10);
    }

    #[tokio::test]
    async fn head_wait_is_bounded_and_idle_body_fails() {
        let flights = Flights::new(100);
        let (f, _) = flights.join(&key());
        assert!(f.head(Duration::from_millis(50)).await.is_none());
        f.set_head(ready());
        let r = collect(f.body(0, None, Duration::from_millis(50), tally())).await;
        assert!(r.unwrap_err().contains("timed out"));
    }
}
