//! The failover order of one request, as pure functions of the addresses, the round and the time
//! (no I/O: the HTTP module does the requests, the pauses and the re-resolutions).
//!
//! A request first tries the current address twice (a retry), then each other address once, in
//! the order DNS gave them. When all failed, and while the next pause still ends inside the
//! failover window ([`FAILOVER_WINDOW_S`] from the request's start), it waits (0.1 s, doubling up
//! to 1 s), resolves the name again and tries each address once more, from the first. Right after
//! an edge dies the router may still return it for one health-check window, hence the window
//! rather than a single second round. Then it gives up with the last error.

/// How long a request keeps failing over and re-resolving before it gives up, seconds.
pub const FAILOVER_WINDOW_S: f64 = 5.0;

/// The indices of the addresses round `round` of a request tries, in order, starting from
/// `current` among `n` addresses (at least one is assumed): round 0 tries `current` twice and
/// then each other address once; later rounds try each address once. A round that fails
/// throughout leaves the current address where it began.
pub fn round_order(current: usize, n: usize, round: u32) -> Vec<usize> {
    let n = n.max(1);
    let retry = usize::from(round == 0);
    let mut order = Vec::with_capacity(n + retry);
    order.extend(std::iter::repeat_n(current % n, retry));
    order.extend((0..n).map(|i| (current + i) % n));
    order
}

/// Whether the failure of attempt `attempt` (counted from 0 within the round) of round `round`
/// counts as a failover: every failure but the request's first, which is retried in place.
pub fn counts_as_failover(round: u32, attempt: usize) -> bool {
    round > 0 || attempt >= 1
}

/// The pause after round `round` failed throughout, before the name is resolved again: 0.1 s,
/// doubling, at most 1 s.
pub fn pause_after(round: u32) -> f64 {
    (0.1 * 2f64.powi(round.min(16) as i32)).min(1.0)
}

/// After round `round` of a request failed throughout at `now_s`: the pause to wait before
/// re-resolving and starting the next round, or `None` to give up because that pause would end
/// after `deadline_s` (the request's start plus [`FAILOVER_WINDOW_S`]).
pub fn retry_after(round: u32, deadline_s: f64, now_s: f64) -> Option<f64> {
    let pause = pause_after(round);
    (now_s + pause <= deadline_s).then_some(pause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_round_retries_in_place_then_moves_through_every_address() {
        assert_eq!(round_order(0, 3, 0), vec![0, 0, 1, 2]);
        assert_eq!(round_order(1, 3, 0), vec![1, 1, 2, 0]);
        assert_eq!(round_order(2, 3, 0), vec![2, 2, 0, 1]);
        assert_eq!(round_order(0, 1, 0), vec![0, 0]);
        // After re-resolving: each address once, from the first.
        assert_eq!(round_order(0, 3, 1), vec![0, 1, 2]);
        assert_eq!(round_order(0, 1, 4), vec![0]);
        // An index beyond a shorter answer wraps instead of panicking.
        assert_eq!(round_order(5, 2, 0), vec![1, 1, 0]);
    }

    #[test]
    fn only_the_first_failure_of_a_request_is_not_a_failover() {
        assert!(!counts_as_failover(0, 0));
        assert!(counts_as_failover(0, 1));
        assert!(counts_as_failover(1, 0));
    }

    #[test]
    fn pauses_double_up_to_a_second_and_stop_at_the_deadline() {
        let pauses: Vec<f64> = (0..7).map(pause_after).collect();
        assert_eq!(pauses, vec![0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]);
        assert_eq!(pause_after(u32::MAX), 1.0);
        assert_eq!(retry_after(0, 5.0, 0.0), Some(0.1));
        assert_eq!(retry_after(3, 5.0, 4.0), Some(0.8));
        assert_eq!(retry_after(3, 5.0, 4.5), None);
        assert_eq!(retry_after(4, 5.0, 4.0), Some(1.0));
        assert_eq!(retry_after(0, 5.0, 6.0), None);
    }

    /// Plays a request out against addresses that all fail, each attempt taking `attempt_s`:
    /// returns (rounds, re-resolutions, failovers, give-up time).
    fn every_edge_fails(n: usize, attempt_s: f64) -> (u32, u32, u32, f64) {
        let (mut now, mut round, mut failovers) = (0.0, 0u32, 0u32);
        let deadline = now + FAILOVER_WINDOW_S;
        loop {
            for (attempt, _) in round_order(0, n, round).into_iter().enumerate() {
                now += attempt_s;
                failovers += u32::from(counts_as_failover(round, attempt));
            }
            match retry_after(round, deadline, now) {
                Some(pause) => now += pause,
                None => return (round + 1, round, failovers, now),
            }
            round += 1;
        }
    }

    #[test]
    fn when_every_edge_fails_it_keeps_re_resolving_for_the_window_then_gives_up() {
        // Refused at once: pauses of 0.1 + 0.2 + 0.4 + 0.8 + 1 + 1 + 1 = 4.5 s, 7 re-resolutions.
        let (rounds, resolutions, failovers, at) = every_edge_fails(2, 0.0);
        assert_eq!((rounds, resolutions, failovers), (8, 7, 16));
        assert!((at - 4.5).abs() < 1e-9, "{at}");
        // Timing out (5 s each): the first round outlasts the window, no re-resolution.
        let (rounds, resolutions, failovers, at) = every_edge_fails(2, 5.0);
        assert_eq!((rounds, resolutions, failovers), (1, 0, 2));
        assert_eq!(at, 15.0);
    }
}
