//! The compiled form of a configuration: every name we serve, keyed by its lowercase wire form,
//! with its records prebuilt in wire format, the zones' SOA and NS sets, the geo tables and the
//! edges' health. One `Snapshot` is immutable; a reload builds a new one and swaps it in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use prometheus::IntCounter;

use crate::config::{Config, Coordinates};
use crate::geo::Geo;
use crate::health::{EdgeHealth, HealthTable};
use crate::metrics::Metrics;
use crate::steering::{edge_seed, MAX_EDGES};
use crate::wire::{name_from_str, name_to_string, rtype, suffixes, Rr, MAX_SECTION};

/// A zone we are authoritative for.
pub struct Zone {
    pub apex: Box<[u8]>,
    /// The SOA for negative answers: TTL the smaller of the SOA TTL and MINIMUM (RFC 2308 3).
    pub negative_soa: Rr,
}

/// A CDN service name's prebuilt answers.
pub struct Service {
    pub answer_count: usize,
    /// A records per edge (indexed like the edges).
    pub a: Vec<Vec<Rr>>,
    /// AAAA records per edge.
    pub aaaa: Vec<Vec<Rr>>,
    pub fallback_a: Vec<Rr>,
    pub fallback_aaaa: Vec<Rr>,
}

/// What a name holds.
pub enum NodeKind {
    /// Fixed record sets (apex SOA and NS, name-server and host addresses), in answer order.
    Static(Vec<(u16, Vec<Rr>)>),
    /// A content name: CNAME to `target`.
    Alias { cname: Rr, target: Box<[u8]> },
    /// A CDN service name.
    Service(Service),
    /// An empty non-terminal: exists (NODATA, not NXDOMAIN) but holds nothing.
    Empty,
}

pub struct Node {
    pub zone: usize,
    pub kind: NodeKind,
}

/// An immutable, compiled configuration.
pub struct Snapshot {
    pub config: Config,
    pub names: HashMap<Box<[u8]>, Node>,
    pub zones: Vec<Zone>,
    zone_index: HashMap<Box<[u8]>, usize>,
    /// Glue (A/AAAA of in-zone name servers) for NS answers, per zone.
    pub glue: Vec<Vec<Rr>>,
    pub geo: Geo,
    pub health: Arc<HealthTable>,
    pub edge_coords: Vec<Coordinates>,
    pub seeds: Vec<u64>,
    /// Steering counters: `[location][edge]`, with one extra edge slot for the fallback and one
    /// extra location (the last) for MaxMind-located clients.
    steer: Vec<IntCounter>,
}

fn addr_rr(owner: &[u8], ttl: u32, ip: IpAddr) -> Rr {
    match ip {
        IpAddr::V4(a) => Rr {
            owner: owner.into(),
            rtype: rtype::A,
            ttl,
            rdata: a.octets().into(),
            rdata_name_at: None,
        },
        IpAddr::V6(a) => Rr {
            owner: owner.into(),
            rtype: rtype::AAAA,
            ttl,
            rdata: a.octets().into(),
            rdata_name_at: None,
        },
    }
}

fn addr_rrs(owner: &[u8], ttl: u32, ips: &[IpAddr]) -> (Vec<Rr>, Vec<Rr>) {
    let all: Vec<Rr> = ips.iter().map(|ip| addr_rr(owner, ttl, *ip)).collect();
    all.into_iter().partition(|r| r.rtype == rtype::A)
}

fn name(s: &str, what: &str) -> Result<Box<[u8]>> {
    name_from_str(s)
        .map_err(anyhow::Error::msg)
        .with_context(|| what.to_string())
}

impl Snapshot {
    /// Compiles and validates `cfg`. Edges keep their health state from `previous` when given.
    pub fn build(cfg: Config, metrics: &Metrics) -> Result<Snapshot> {
        if cfg.zones.is_empty() {
            bail!("the configuration has no [[zones]]");
        }
        if cfg.edges.len() > MAX_EDGES {
            bail!(
                "at most {MAX_EDGES} edges are supported, {} configured",
                cfg.edges.len()
            );
        }
        let mut zones = Vec::new();
        let mut zone_index = HashMap::new();
        for z in &cfg.zones {
            let apex = name(&z.apex, "zone apex")?;
            if zone_index.insert(apex.clone(), zones.len()).is_some() {
                bail!("zone {} is configured twice", z.apex);
            }
            zones.push(apex);
        }
        let zone_of = |n: &[u8]| suffixes(n).find_map(|s| zone_index.get(s).copied());

        let mut names: HashMap<Box<[u8]>, Node> = HashMap::new();
        let add_static =
            |names: &mut HashMap<Box<[u8]>, Node>, owner: &[u8], rrs: Vec<Rr>| -> Result<()> {
                let Some(zone) = zone_of(owner) else {
                    return Ok(());
                };
                let node = names.entry(owner.into()).or_insert(Node {
                    zone,
                    kind: NodeKind::Static(Vec::new()),
                });
                let NodeKind::Static(sets) = &mut node.kind else {
                    bail!(
                        "{} has both records and a CNAME/service",
                        name_to_string(owner)
                    );
                };
                for rr in rrs {
                    match sets.iter_mut().find(|(t, _)| *t == rr.rtype) {
                        Some((_, v)) => {
                            if !v.contains(&rr) {
                                v.push(rr)
                            }
                        }
                        None => sets.push((rr.rtype, vec![rr])),
                    }
                }
                Ok(())
            };

        // Apex SOA and NS; name-server addresses; glue.
        let mut negative = Vec::new();
        let mut glue = vec![Vec::new(); zones.len()];
        for (zi, z) in cfg.zones.iter().enumerate() {
            let apex = &zones[zi];
            if z.nameservers.is_empty() {
                bail!("zone {} has no name servers", z.apex);
            }
            let mname = match &z.soa.mname {
                Some(m) => name(m, "SOA mname")?,
                None => name(&z.nameservers[0].name, "name server")?,
            };
            let rname = match &z.soa.rname {
                Some(r) => name(r, "SOA rname")?,
                None => name(
                    &format!("hostmaster.{}", z.apex.trim_end_matches('.')),
                    "SOA rname",
                )?,
            };
            let mut rdata = Vec::new();
            rdata.extend_from_slice(&mname);
            rdata.extend_from_slice(&rname);
            for v in [
                z.soa.serial,
                z.soa.refresh,
                z.soa.retry,
                z.soa.expire,
                z.soa.minimum,
            ] {
                rdata.extend_from_slice(&v.to_be_bytes());
            }
            let soa = Rr {
                owner: apex.clone(),
                rtype: rtype::SOA,
                ttl: z.soa.ttl,
                rdata: rdata.into(),
                rdata_name_at: Some(0),
            };
            negative.push(Rr {
                ttl: z.soa.ttl.min(z.soa.minimum),
                ..soa.clone()
            });
            let mut ns_rrs = Vec::new();
            for ns in &z.nameservers {
                let host = name(&ns.name, "name server")?;
                ns_rrs.push(Rr {
                    owner: apex.clone(),
                    rtype: rtype::NS,
                    ttl: z.ns_ttl,
                    rdata: host.clone(),
                    rdata_name_at: Some(0),
                });
                if zone_of(&host).is_some() {
                    if ns.addresses.is_empty() {
                        bail!(
                            "name server {} is inside our zones but has no addresses (glue)",
                            ns.name
                        );
                    }
                    let (a, aaaa) = addr_rrs(&host, z.ns_ttl, &ns.addresses);
                    glue[zi].extend(a.iter().chain(&aaaa).cloned());
                    add_static(&mut names, &host, a.into_iter().chain(aaaa).collect())?;
                }
            }
            add_static(&mut names, apex, vec![soa])?;
            add_static(&mut names, apex, ns_rrs)?;
        }
        for h in &cfg.hosts {
            let owner = name(&h.name, "host name")?;
            if zone_of(&owner).is_none() {
                bail!("host {} is outside every configured zone", h.name);
            }
            let (a, aaaa) = addr_rrs(&owner, h.ttl, &h.addresses);
            add_static(&mut names, &owner, a.into_iter().chain(aaaa).collect())?;
        }

        // Edges.
        let edge_coords: Vec<Coordinates> = cfg
            .edges
            .iter()
            .map(|e| Coordinates {
                latitude: e.latitude,
                longitude: e.longitude,
            })
            .collect();
        let edge_names: Vec<String> = cfg.edges.iter().map(|e| e.name.clone()).collect();
        for (i, e) in cfg.edges.iter().enumerate() {
            if edge_names[..i].contains(&e.name) {
                bail!("edge name {} is used twice", e.name);
            }
            if e.addresses.is_empty() {
                bail!("edge {} has no addresses", e.name);
            }
            if !(-90.0..=90.0).contains(&e.latitude) || !(-180.0..=180.0).contains(&e.longitude) {
                bail!("edge {} has coordinates out of range", e.name);
            }
            if let Some(u) = &e.health_url {
                if !u.starts_with("http://") && !u.starts_with("https://") {
                    bail!(
                        "edge {}: health_url must be an http:// or https:// URL, got `{u}`",
                        e.name
                    );
                }
            }
        }

        for s in &cfg.services {
            let owner = name(&s.name, "service name")?;
            let Some(zone) = zone_of(&owner) else {
                bail!("service {} is outside every configured zone", s.name)
            };
            if s.answer_count == 0 {
                bail!("service {}: answer_count must be at least 1", s.name);
            }
            let mut a = Vec::new();
            let mut aaaa = Vec::new();
            for e in &cfg.edges {
                let (x, y) = addr_rrs(&owner, s.ttl, &e.addresses);
                a.push(x);
                aaaa.push(y);
            }
            let per_answer = cfg
                .edges
                .iter()
                .map(|e| e.addresses.len())
                .max()
                .unwrap_or(0);
            if s.answer_count.min(cfg.edges.len()) * per_answer > MAX_SECTION {
                bail!(
                    "service {}: answer_count x addresses per edge exceeds {MAX_SECTION} records",
                    s.name
                );
            }
            let (fallback_a, fallback_aaaa) = addr_rrs(
                &owner,
                cfg.fallback.ttl.unwrap_or(s.ttl),
                &cfg.fallback.addresses,
            );
            let service = Service {
                answer_count: s.answer_count,
                a,
                aaaa,
                fallback_a,
                fallback_aaaa,
            };
            if names
                .insert(
                    owner,
                    Node {
                        zone,
                        kind: NodeKind::Service(service),
                    },
                )
                .is_some()
            {
                bail!("service {} collides with another name", s.name);
            }
        }
        for c in &cfg.content {
            let owner = name(&c.name, "content name")?;
            let target = name(&c.target, "content target")?;
            let Some(zone) = zone_of(&owner) else {
                bail!("content name {} is outside every configured zone", c.name)
            };
            if zone_index.contains_key(&owner) {
                bail!(
                    "content name {} is a zone apex; a CNAME cannot live there",
                    c.name
                );
            }
            let cname = Rr {
                owner: owner.clone(),
                rtype: rtype::CNAME,
                ttl: c.ttl,
                rdata: target.clone(),
                rdata_name_at: Some(0),
            };
            if names
                .insert(
                    owner,
                    Node {
                        zone,
                        kind: NodeKind::Alias { cname, target },
                    },
                )
                .is_some()
            {
                bail!("content name {} collides with another name", c.name);
            }
        }
        // Empty non-terminals between each name and its zone apex.
        let owners: Vec<Box<[u8]>> = names.keys().cloned().collect();
        for o in owners {
            let zone = names[&o].zone;
            if *o == *zones[zone] {
                continue;
            }
            for s in suffixes(&o).skip(1) {
                if *s == *zones[zone] {
                    break;
                }
                names.entry(s.into()).or_insert(Node {
                    zone,
                    kind: NodeKind::Empty,
                });
            }
        }

        let geo = Geo::build(&cfg, &edge_coords, &edge_names)?;
        let health = Arc::new(HealthTable {
            edges: cfg
                .edges
                .iter()
                .map(|e| EdgeHealth::new(e.name.clone(), e.health_url.clone(), e.capacity))
                .collect(),
        });
        let seeds = edge_names.iter().map(|n| edge_seed(n)).collect();
        let mut steer = Vec::new();
        let location_labels = geo
            .locations
            .iter()
            .map(|l| l.name.as_str())
            .chain(["mmdb"]);
        for loc in location_labels {
            for e in edge_names.iter().map(String::as_str).chain(["fallback"]) {
                steer.push(metrics.steering.with_label_values(&[loc, e]));
            }
        }
        let zones = zones
            .into_iter()
            .zip(negative)
            .map(|(apex, negative_soa)| Zone { apex, negative_soa })
            .collect();
        Ok(Snapshot {
            config: cfg,
            names,
            zones,
            zone_index,
            glue,
            geo,
            health,
            edge_coords,
            seeds,
            steer,
        })
    }

    /// The zone whose apex is the longest suffix of `name`.
    pub fn zone_of(&self, name: &[u8]) -> Option<usize> {
        suffixes(name).find_map(|s| self.zone_index.get(s).copied())
    }

    /// Counts a steering decision. `location` is an index into `geo.locations` or `None` for a
    /// MaxMind-located client; `edge` is `None` for the fallback.
    pub fn count_steering(&self, location: Option<usize>, edge: Option<usize>) {
        let per = self.edge_coords.len() + 1;
        let l = location.unwrap_or(self.geo.locations.len());
        let e = edge.unwrap_or(per - 1);
        if let Some(c) = self.steer.get(l * per + e) {
            c.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_local_default() {
        let m = Metrics::new().unwrap();
        let s = Snapshot::build(Config::local_default(), &m).unwrap();
        let video = name_from_str("video.example.test").unwrap();
        assert!(matches!(s.names[&video].kind, NodeKind::Alias { .. }));
        let cdn = name_from_str("video.cdn.example.test").unwrap();
        assert!(matches!(s.names[&cdn].kind, NodeKind::Service(_)));
        assert_eq!(s.zone_of(&cdn), Some(1));
        assert_eq!(
            s.zone_of(&name_from_str("x.example.test").unwrap()),
            Some(0)
        );
        assert_eq!(s.zone_of(&name_from_str("example.org").unwrap()), None);
        assert_eq!(s.health.edges.len(), 3);
    }

    #[test]
    fn rejects_inconsistent_configs() {
        let m = Metrics::new().unwrap();
        let mut c = Config::local_default();
        c.content[0].name = "video.example.org".into();
        let err = Snapshot::build(c, &m).err().unwrap();
        assert!(
            format!("{err:#}").contains("outside every configured zone"),
            "{err:#}"
        );
        let mut c = Config::local_default();
        c.content[0].name = "video.cdn.example.test".into();
        assert!(
            Snapshot::build(c, &m).is_err(),
            "CNAME and service on one name"
        );
        let mut c = Config::local_default();
        c.edges[1].name = "region1".into();
        assert!(Snapshot::build(c, &m).is_err(), "duplicate edge names");
        let mut c = Config::local_default();
        c.edges[0].health_url = Some("ftp://127.0.1.1/health".into());
        let err = Snapshot::build(c, &m).err().unwrap();
        assert!(format!("{err:#}").contains("https://"), "{err:#}");
        let mut c = Config::local_default();
        c.edges[0].health_url = Some("https://127.0.1.1:8443/health".into());
        Snapshot::build(c, &m).expect("https health URLs are accepted");
    }

    #[test]
    fn empty_non_terminals_exist() {
        let m = Metrics::new().unwrap();
        let mut c = Config::local_default();
        c.hosts[0].name = "a.b.example.test".into();
        let s = Snapshot::build(c, &m).unwrap();
        assert!(matches!(
            s.names[&name_from_str("b.example.test").unwrap()].kind,
            NodeKind::Empty
        ));
    }
}
