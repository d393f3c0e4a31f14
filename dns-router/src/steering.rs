//! The steering policy, as pure functions over plain data: rank edges by great-circle distance
//! from the client, skip edges that are down, spill past edges whose load is at or above their
//! capacity, and pick among equally near edges with rendezvous (highest-random-weight) hashing
//! keyed by the client's subnet, so one subnet keeps its edge while others spread out.

use crate::config::Coordinates;
use common::hash::rendezvous_weight;

/// Most edges one configuration may have (choices are tracked in a 64-bit set).
pub const MAX_EDGES: usize = 64;

/// Mean Earth radius in km.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// Great-circle distance (haversine) in km.
pub fn distance_km(a: Coordinates, b: Coordinates) -> f64 {
    let (la1, la2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Edges ordered by distance from one client location, in groups of equally good edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Edge indices, nearest first.
    pub order: Vec<u8>,
    /// End (exclusive) of each group in `order`.
    pub group_ends: Vec<u8>,
}

impl Ranking {
    /// Ranks `edges` as seen from `client`. A group holds edges within `tie_km` of the group's
    /// nearest edge.
    pub fn new(client: Coordinates, edges: &[Coordinates], tie_km: f64) -> Ranking {
        let mut by_dist: Vec<(f64, u8)> = edges
            .iter()
            .take(MAX_EDGES)
            .enumerate()
            .map(|(i, e)| (distance_km(client, *e), i as u8))
            .collect();
        by_dist.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut group_ends = Vec::new();
        let mut group_start_dist = None;
        for (i, (d, _)) in by_dist.iter().enumerate() {
            match group_start_dist {
                Some(start) if d - start <= tie_km => {}
                Some(_) => {
                    group_ends.push(i as u8);
                    group_start_dist = Some(*d);
                }
                None => group_start_dist = Some(*d),
            }
        }
        if !by_dist.is_empty() {
            group_ends.push(by_dist.len() as u8);
        }
        Ranking {
            order: by_dist.into_iter().map(|(_, i)| i).collect(),
            group_ends,
        }
    }
}

/// What the health checks say about one edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeStatus {
    pub up: bool,
    /// Reported load at or above capacity.
    pub overloaded: bool,
}

/// The outcome of one steering decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Number of edges written to the output.
    pub count: usize,
    /// Whether the subnet hash decided between equally good edges (the answer then depends on
    /// the client's subnet, not only on its location).
    pub hashed: bool,
}

/// A stable 64-bit seed for an edge name, so weights survive reloads and reordering.
pub fn edge_seed(name: &str) -> u64 {
    common::hash::fnv1a(name.as_bytes())
}

/// Picks up to `out.len()` edges for a client whose subnet hashes to `key`.
///
/// Pass one walks the groups nearest first and takes edges that are up and not overloaded,
/// ordered inside a group by rendezvous weight. When that yields too few, pass two adds edges
/// that are up but overloaded, nearest first (a busy edge beats no edge). Edges that are down are
/// never chosen; a count of 0 means every edge is down.
pub fn choose(
    ranking: &Ranking,
    status: impl Fn(usize) -> EdgeStatus,
    seeds: &[u64],
    key: u64,
    out: &mut [usize],
) -> Choice {
    let want = out.len();
    let mut count = 0usize;
    let mut hashed = false;
    let mut start = 0usize;
    for &end in &ranking.group_ends {
        let group = &ranking.order[start..end as usize];
        start = end as usize;
        if count == want {
            break;
        }
        let eligible = |e: usize| {
            let s = status(e);
            s.up && !s.overloaded
        };
        let candidates = group.iter().filter(|&&e| eligible(e as usize)).count();
        if candidates == 0 {
            continue;
        }
        if candidates > 1 && want - count < candidates {
            hashed = true;
        }
        let mut taken = 0u64;
        for _ in 0..candidates.min(want - count) {
            let mut best: Option<(u64, usize)> = None;
            for (slot, &e) in group.iter().enumerate() {
                let e = e as usize;
                if taken & (1 << slot) != 0 || !eligible(e) {
                    continue;
                }
                let w = rendezvous_weight(seeds.get(e).copied().unwrap_or(e as u64), key);
                if best.is_none_or(|(bw, _)| w > bw) {
                    best = Some((w, slot));
                }
            }
            let Some((_, slot)) = best else { break };
            taken |= 1 << slot;
            out[count] = group[slot] as usize;
            count += 1;
        }
    }
    if count < want {
        for &e in &ranking.order {
            let e = e as usize;
            if count == want {
                break;
            }
            let s = status(e);
            if s.up && s.overloaded && !out[..count].contains(&e) {
                out[count] = e;
                count += 1;
            }
        }
    }
    Choice { count, hashed }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARIS: Coordinates = Coordinates {
        latitude: 48.86,
        longitude: 2.35,
    };
    const NYC: Coordinates = Coordinates {
        latitude: 40.71,
        longitude: -74.01,
    };
    const TOKYO: Coordinates = Coordinates {
        latitude: 35.68,
        longitude: 139.69,
    };
    const LONDON: Coordinates = Coordinates {
        latitude: 51.51,
        longitude: -0.13,
    };

    fn up(_: usize) -> EdgeStatus {
        EdgeStatus {
            up: true,
            overloaded: false,
        }
    }

    #[test]
    fn haversine_matches_known_distances() {
        let d = distance_km(PARIS, NYC);
        assert!((d - 5837.0).abs() < 15.0, "{d}");
        let d = distance_km(PARIS, LONDON);
        assert!((d - 344.0).abs() < 5.0, "{d}");
        assert_eq!(distance_km(TOKYO, TOKYO), 0.0);
    }

    #[test]
    fn ranks_nearest_first_and_groups_ties() {
        let edges = [TOKYO, NYC, PARIS, PARIS];
        let r = Ranking::new(LONDON, &edges, 50.0);
        assert_eq!(r.order, vec![2, 3, 1, 0]);
        assert_eq!(r.group_ends, vec![2, 3, 4]);
        let r = Ranking::new(LONDON, &edges, 6_000.0);
        assert_eq!(
            r.group_ends,
            vec![3, 4],
            "NYC is within 6000 km of Paris, seen from London"
        );
    }

    #[test]
    fn picks_nearest_up_edge_and_skips_down_ones() {
        let edges = [PARIS, NYC, TOKYO];
        let seeds: Vec<u64> = (0..3).map(|i| edge_seed(&format!("e{i}"))).collect();
        let r = Ranking::new(LONDON, &edges, 50.0);
        let mut out = [0usize; 1];
        let c = choose(&r, up, &seeds, 7, &mut out);
        assert_eq!((c.count, out[0], c.hashed), (1, 0, false));
        let paris_down = |e: usize| EdgeStatus {
            up: e != 0,
            overloaded: false,
        };
        let c = choose(&r, paris_down, &seeds, 7, &mut out);
        assert_eq!((c.count, out[0]), (1, 1), "next nearest is New York");
        let all_down = |_| EdgeStatus {
            up: false,
            overloaded: false,
        };
        assert_eq!(choose(&r, all_down, &seeds, 7, &mut out).count, 0);
    }

    #[test]
    fn spills_over_when_loaded_and_back_to_busy_when_all_are() {
        let edges = [PARIS, NYC, TOKYO];
        let seeds = [1, 2, 3];
        let r = Ranking::new(LONDON, &edges, 50.0);
        let mut out = [0usize; 2];
        let paris_full = |e: usize| EdgeStatus {
            up: true,
            overloaded: e == 0,
        };
        let c = choose(&r, paris_full, &seeds, 7, &mut out);
        assert_eq!((c.count, out), (2, [1, 2]));
        let all_full = |_| EdgeStatus {
            up: true,
            overloaded: true,
        };
        let c = choose(&r, all_full, &seeds, 7, &mut out);
        assert_eq!(
            (c.count, out),
            (2, [0, 1]),
            "nearest busy edges rather than none"
        );
    }

    #[test]
    fn hashing_is_stable_per_subnet_and_spreads_across_subnets() {
        let edges = [PARIS, PARIS, PARIS, PARIS];
        let seeds: Vec<u64> = ["a", "b", "c", "d"].iter().map(|n| edge_seed(n)).collect();
        let r = Ranking::new(LONDON, &edges, 50.0);
        let mut seen = [0usize; 4];
        for subnet in 0u64..400 {
            let mut out = [0usize; 1];
            let c = choose(&r, up, &seeds, subnet, &mut out);
            assert!(c.hashed);
            let mut again = [0usize; 1];
            choose(&r, up, &seeds, subnet, &mut again);
            assert_eq!(out, again, "same subnet, same edge");
            seen[out[0]] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "spread: {seen:?}");
        // Removing one edge moves only the subnets that were on it (rendezvous property).
        let minus_c = |e: usize| EdgeStatus {
            up: e != 2,
            overloaded: false,
        };
        for subnet in 0u64..400 {
            let (mut a, mut b) = ([0usize; 1], [0usize; 1]);
            choose(&r, up, &seeds, subnet, &mut a);
            choose(&r, minus_c, &seeds, subnet, &mut b);
            if a[0] != 2 {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn returns_several_distinct_edges() {
        let edges = [PARIS, LONDON, NYC, TOKYO];
        let r = Ranking::new(PARIS, &edges, 50.0);
        let mut out = [usize::MAX; 3];
        let c = choose(&r, up, &[1, 2, 3, 4], 99, &mut out);
        assert_eq!((c.count, out), (3, [0, 1, 2]));
        let mut out = [usize::MAX; 8];
        assert_eq!(choose(&r, up, &[1, 2, 3, 4], 99, &mut out).count, 4);
    }
}
