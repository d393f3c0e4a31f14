//! Client location: the coverage zone (Traffic Router's JSON shape, longest prefix wins), then
//! a MaxMind City database, then the configured default. Locations named in the coverage zone
//! carry a precomputed edge ranking, so the common case costs a few hash lookups.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::config::{Config, Coordinates, CoverageLocation, DefaultLocation};
use crate::steering::Ranking;

/// A named location with its edges ranked by distance.
#[derive(Debug)]
pub struct Location {
    pub name: String,
    pub coords: Coordinates,
    pub ranking: Ranking,
}

/// Where a client was placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Located {
    /// A coverage-zone location (or the default location), by index.
    Zone { index: usize, prefix: u8 },
    /// Coordinates from the MaxMind database, valid for `prefix` bits of the address.
    Point { coords: Coordinates, prefix: u8 },
}

/// The lookup tables.
pub struct Geo {
    pub locations: Vec<Location>,
    v4: Vec<(u8, HashMap<u32, u16>)>,
    v6: Vec<(u8, HashMap<u128, u16>)>,
    mmdb: Option<maxminddb::Reader<Vec<u8>>>,
    /// Index of the default location in `locations`.
    pub default: usize,
}

/// Traffic Router's coverage-zone file.
#[derive(Deserialize)]
struct CoverageZoneFile {
    #[serde(rename = "coverageZones")]
    coverage_zones: std::collections::BTreeMap<String, CoverageLocation>,
}

/// Parses a coverage-zone JSON document (`origin` names it in errors).
pub fn parse_coverage_zone(text: &str, origin: &str) -> Result<Vec<(String, CoverageLocation)>> {
    let f: CoverageZoneFile = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{origin} line {}: {e}", e.line()))?;
    Ok(f.coverage_zones.into_iter().collect())
}

/// Parses `addr/len`, masking host bits.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8)> {
    let (a, l) = s
        .split_once('/')
        .with_context(|| format!("`{s}` is not a CIDR (addr/len)"))?;
    let addr: IpAddr = a
        .trim()
        .parse()
        .with_context(|| format!("`{s}`: bad address"))?;
    let len: u8 = l
        .trim()
        .parse()
        .with_context(|| format!("`{s}`: bad prefix length"))?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    if len > width {
        bail!("`{s}`: prefix length {len} exceeds {width}");
    }
    Ok((mask(addr, len), len))
}

/// Keeps the first `len` bits of `addr`.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(mask4(u32::from(a), len).into()),
        IpAddr::V6(a) => IpAddr::V6(mask6(u128::from(a), len).into()),
    }
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - len.min(32) as u32))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - len.min(128) as u32))
    }
}

impl Geo {
    /// Builds the tables from the configuration; `edges` are the edge coordinates (by index)
    /// and `edge_names` their names, for locations without coordinates of their own.
    pub fn build(cfg: &Config, edges: &[Coordinates], edge_names: &[String]) -> Result<Geo> {
        let mut entries: Vec<(String, CoverageLocation)> = Vec::new();
        if let Some(p) = &cfg.geo.coverage_zone_file {
            let path = cfg.resolve(p);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read coverage-zone file {}", path.display()))?;
            entries.extend(parse_coverage_zone(&text, &path.display().to_string())?);
        }
        entries.extend(
            cfg.geo
                .coverage_zones
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );

        let mut locations = Vec::new();
        let mut v4: HashMap<u8, HashMap<u32, u16>> = HashMap::new();
        let mut v6: HashMap<u8, HashMap<u128, u16>> = HashMap::new();
        let coords_of = |name: &str, own: Option<Coordinates>| -> Result<Coordinates> {
            if let Some(c) = own {
                return Ok(c);
            }
            match edge_names.iter().position(|n| n == name) {
                Some(i) => Ok(edges[i]),
                None => bail!(
                    "coverage-zone location `{name}` has no coordinates and no edge is named `{name}`"
                ),
            }
        };
        for (name, loc) in &entries {
            let idx = match locations.iter().position(|l: &Location| &l.name == name) {
                Some(i) => i,
                None => {
                    let coords = coords_of(name, loc.coordinates)?;
                    locations.push(Location {
                        name: name.clone(),
                        coords,
                        ranking: Ranking::new(coords, edges, cfg.geo.tie_km),
                    });
                    locations.len() - 1
                }
            };
            for cidr in loc.network.iter().chain(&loc.network6) {
                let (addr, len) =
                    parse_cidr(cidr).with_context(|| format!("coverage-zone location `{name}`"))?;
                match addr {
                    IpAddr::V4(a) => v4.entry(len).or_default().insert(u32::from(a), idx as u16),
                    IpAddr::V6(a) => v6.entry(len).or_default().insert(u128::from(a), idx as u16),
                };
            }
        }
        let default = match &cfg.geo.default_location {
            Some(DefaultLocation::Named(n)) => match locations.iter().position(|l| &l.name == n) {
                Some(i) => i,
                None => {
                    let coords = coords_of(n, None).with_context(|| {
                        format!("default_location `{n}` is not a coverage-zone location or edge")
                    })?;
                    locations.push(Location {
                        name: n.clone(),
                        coords,
                        ranking: Ranking::new(coords, edges, cfg.geo.tie_km),
                    });
                    locations.len() - 1
                }
            },
            other => {
                let coords = match other {
                    Some(DefaultLocation::At(c)) => *c,
                    _ => edges.first().copied().unwrap_or(Coordinates {
                        latitude: 0.0,
                        longitude: 0.0,
                    }),
                };
                locations.push(Location {
                    name: "default".into(),
                    coords,
                    ranking: Ranking::new(coords, edges, cfg.geo.tie_km),
                });
                locations.len() - 1
            }
        };
        let mmdb =
            match &cfg.geo.mmdb {
                Some(p) => {
                    let path = cfg.resolve(p);
                    Some(maxminddb::Reader::open_readfile(&path).with_context(|| {
                        format!("cannot open MaxMind database {}", path.display())
                    })?)
                }
                None => None,
            };
        let mut v4: Vec<_> = v4.into_iter().collect();
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut v6: Vec<_> = v6.into_iter().collect();
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(Geo {
            locations,
            v4,
            v6,
            mmdb,
            default,
        })
    }

    /// Places `ip`, of which only the first `known` bits are meaningful (the ECS source prefix,
    /// or the full width for a packet's source address). Coverage-zone prefixes longer than
    /// `known` are not considered: they would decide on bits the client did not send.
    pub fn locate(&self, ip: IpAddr, known: u8) -> Located {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                for (len, table) in &self.v4 {
                    if *len > known {
                        continue;
                    }
                    if let Some(&i) = table.get(&mask4(a, *len)) {
                        return Located::Zone {
                            index: i as usize,
                            prefix: *len,
                        };
                    }
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for (len, table) in &self.v6 {
                    if *len > known {
                        continue;
                    }
                    if let Some(&i) = table.get(&mask6(a, *len)) {
                        return Located::Zone {
                            index: i as usize,
                            prefix: *len,
                        };
                    }
                }
            }
        }
        if let Some(found) = self.mmdb_lookup(ip, known) {
            return found;
        }
        Located::Zone {
            index: self.default,
            prefix: known,
        }
    }

    fn mmdb_lookup(&self, ip: IpAddr, known: u8) -> Option<Located> {
        let reader = self.mmdb.as_ref()?;
        let result = reader.lookup(ip).ok()?;
        let city: maxminddb::geoip2::City = result.decode().ok()??;
        let (lat, lon) = (city.location.latitude?, city.location.longitude?);
        let prefix = result
            .network()
            .map(|n| n.prefix())
            .unwrap_or(known)
            .min(known);
        Some(Located::Point {
            coords: Coordinates {
                latitude: lat,
                longitude: lon,
            },
            prefix,
        })
    }
}

#[cfg(test)]
pub(crate) mod mmdb_writer {
    //! A minimal MaxMind DB writer (IPv4 tree, 24-bit records, City-shaped data) that makes
    //! fixtures for tests; the format is specified at maxmind.github.io/MaxMind-DB.

    fn ctrl(out: &mut Vec<u8>, ty: u8, size: usize) {
        assert!(size < 29);
        if ty <= 7 {
            out.push(ty << 5 | size as u8);
        } else {
            out.push(size as u8);
            out.push(ty - 7);
        }
    }
    fn string(out: &mut Vec<u8>, s: &str) {
        ctrl(out, 2, s.len());
        out.extend_from_slice(s.as_bytes());
    }
    fn double(out: &mut Vec<u8>, v: f64) {
        ctrl(out, 3, 8);
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn uint(out: &mut Vec<u8>, ty: u8, v: u64, bytes: usize) {
        ctrl(out, ty, bytes);
        out.extend_from_slice(&v.to_be_bytes()[8 - bytes..]);
    }

    /// Builds a database mapping each IPv4 `(network, prefix)` to a City record with the given
    /// latitude and longitude.
    pub fn city_db(entries: &[([u8; 4], u8, f64, f64)]) -> Vec<u8> {
        // Data section: one map per entry.
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for (_, _, lat, lon) in entries {
            offsets.push(data.len());
            ctrl(&mut data, 7, 1);
            string(&mut data, "location");
            ctrl(&mut data, 7, 2);
            string(&mut data, "latitude");
            double(&mut data, *lat);
            string(&mut data, "longitude");
            double(&mut data, *lon);
        }
        // Binary trie: node = [left, right]; u32::MAX = empty, (1<<31)|i = data of entry i.
        let mut nodes: Vec<[u32; 2]> = vec![[u32::MAX, u32::MAX]];
        for (i, (net, len, _, _)) in entries.iter().enumerate() {
            let a = u32::from_be_bytes(*net);
            let mut n = 0usize;
            for bit in 0..*len {
                let b = ((a >> (31 - bit)) & 1) as usize;
                if bit + 1 == *len {
                    nodes[n][b] = (1 << 31) | i as u32;
                } else {
                    if nodes[n][b] == u32::MAX || nodes[n][b] & (1 << 31) != 0 {
                        nodes.push([u32::MAX, u32::MAX]);
                        nodes[n][b] = (nodes.len() - 1) as u32;
                    }
                    n = nodes[n][b] as usize;
                }
            }
        }
        let count = nodes.len() as u32;
        let mut out = Vec::new();
        for node in &nodes {
            for rec in node {
                let v = if *rec == u32::MAX {
                    count
                } else if rec & (1 << 31) != 0 {
                    count + 16 + offsets[(rec & !(1 << 31)) as usize] as u32
                } else {
                    *rec
                };
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
        let mut meta = Vec::new();
        ctrl(&mut meta, 7, 9);
        string(&mut meta, "node_count");
        uint(&mut meta, 6, count as u64, 4);
        string(&mut meta, "record_size");
        uint(&mut meta, 5, 24, 2);
        string(&mut meta, "ip_version");
        uint(&mut meta, 5, 4, 2);
        string(&mut meta, "database_type");
        string(&mut meta, "Test-City");
        string(&mut meta, "languages");
        ctrl(&mut meta, 11, 0);
        string(&mut meta, "binary_format_major_version");
        uint(&mut meta, 5, 2, 2);
        string(&mut meta, "binary_format_minor_version");
        uint(&mut meta, 5, 0, 2);
        string(&mut meta, "build_epoch");
        uint(&mut meta, 9, 1_700_000_000, 8);
        string(&mut meta, "description");
        ctrl(&mut meta, 7, 0);
        out.extend_from_slice(&meta);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        let text = format!(
            "[[zones]]\napex = \"a.test\"\nnameservers = []\n[geo]\ndefault_location = \"far\"\n{extra}"
        );
        Config::from_toml(&text, "test").unwrap()
    }

    const EDGES: [Coordinates; 2] = [
        Coordinates {
            latitude: 48.86,
            longitude: 2.35,
        },
        Coordinates {
            latitude: 35.68,
            longitude: 139.69,
        },
    ];

    fn names() -> Vec<String> {
        vec!["near".into(), "far".into()]
    }

    #[test]
    fn longest_prefix_wins_and_known_bits_limit_the_match() {
        let c = cfg(
            "[geo.coverage_zones.near]\nnetwork = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\
             [geo.coverage_zones.far]\nnetwork = [\"10.1.2.0/24\"]\n",
        );
        let g = Geo::build(&c, &EDGES, &names()).unwrap();
        let near = g.locations.iter().position(|l| l.name == "near").unwrap();
        let far = g.locations.iter().position(|l| l.name == "far").unwrap();
        assert_eq!(
            g.locate("10.1.2.3".parse().unwrap(), 32),
            Located::Zone {
                index: far,
                prefix: 24
            }
        );
        assert_eq!(
            g.locate("10.1.3.3".parse().unwrap(), 32),
            Located::Zone {
                index: near,
                prefix: 8
            }
        );
        assert_eq!(
            g.locate("10.1.2.0".parse().unwrap(), 16),
            Located::Zone {
                index: near,
                prefix: 8
            }
        );
        assert_eq!(
            g.locate("2001:db8::1".parse().unwrap(), 128),
            Located::Zone {
                index: near,
                prefix: 32
            }
        );
        assert_eq!(
            g.locate("192.0.2.1".parse().unwrap(), 32),
            Located::Zone {
                index: g.default,
                prefix: 32
            }
        );
        assert_eq!(g.default, far);
        assert_eq!(g.locations[near].ranking.order[0], 0);
        assert_eq!(g.locations[far].ranking.order[0], 1);
    }

    #[test]
    fn reads_traffic_router_json() {
        let json = r#"{"revision": "r1", "customerName": "x", "coverageZones": {
            "near": {"network": ["192.168.8.0/24"], "network6": ["1234:5678::/64"],
                     "coordinates": {"latitude": 1.5, "longitude": 2.5}}}}"#;
        let zones = parse_coverage_zone(json, "czf.json").unwrap();
        assert_eq!(zones[0].0, "near");
        assert_eq!(zones[0].1.network6, vec!["1234:5678::/64".to_string()]);
        assert_eq!(zones[0].1.coordinates.unwrap().latitude, 1.5);
        let err = parse_coverage_zone("{\n\"coverageZones\": 3}", "czf.json").unwrap_err();
        assert!(format!("{err}").starts_with("czf.json line 2"), "{err}");
    }

    #[test]
    fn bad_cidr_and_unknown_location_are_errors() {
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        assert_eq!(
            parse_cidr("10.1.2.3/8").unwrap(),
            ("10.0.0.0".parse().unwrap(), 8)
        );
        let c = cfg("[geo.coverage_zones.nowhere]\nnetwork = [\"10.0.0.0/8\"]\n");
        let err = Geo::build(&c, &EDGES, &names()).err().unwrap();
        assert!(format!("{err:#}").contains("nowhere"));
    }

    #[test]
    fn mmdb_used_when_no_cidr_matches() {
        let dir = std::env::temp_dir().join(format!("dns-router-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("city.mmdb");
        std::fs::write(
            &path,
            mmdb_writer::city_db(&[([203, 0, 113, 0], 24, 35.0, 139.0)]),
        )
        .unwrap();
        let mut c = cfg("[geo.coverage_zones.near]\nnetwork = [\"10.0.0.0/8\"]\n");
        c.geo.mmdb = Some(path);
        let g = Geo::build(&c, &EDGES, &names()).unwrap();
        match g.locate("203.0.113.9".parse().unwrap(), 32) {
            Located::Point { coords, prefix } => {
                assert_eq!(
                    (coords.latitude, coords.longitude, prefix),
                    (35.0, 139.0, 24)
                );
            }
            other => panic!("expected an mmdb point, got {other:?}"),
        }
        assert!(matches!(
            g.locate("10.9.9.9".parse().unwrap(), 32),
            Located::Zone { prefix: 8, .. }
        ));
        assert_eq!(
            g.locate("198.51.100.1".parse().unwrap(), 32),
            Located::Zone {
                index: g.default,
                prefix: 32
            }
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
