//! The answer path: one function from a query packet to a response packet, shared by the UDP
//! workers and the TCP handler. It applies the protocol rules (NOTIMP, FORMERR, BADVERS,
//! REFUSED, NXDOMAIN/NODATA with SOA, minimal ANY), follows CNAME chains inside our zones, and
//! for CDN service names locates the client (ECS, else source address) and steers.

use std::net::{IpAddr, SocketAddr};

use crate::geo::Located;
use crate::metrics::{Metrics, Proto};
use crate::steering::{self, Ranking, MAX_EDGES};
use crate::wire::{self, rcode, rtype, Edns, Parsed, Query, Reply, ReplyTo, Rr};
use crate::zone::{NodeKind, Service, Snapshot};

/// Longest CNAME chain followed inside our zones.
const MAX_CHAIN: usize = 8;

/// Where the client is, worked out once per query and only when an answer needs it.
struct Client {
    /// The address that locates the client, the number of meaningful bits, and whether it came
    /// from an ECS option.
    addr: IpAddr,
    known: u8,
}

impl Client {
    fn of(q: &Query<'_>, src: SocketAddr) -> Client {
        match q.edns.and_then(|e| e.ecs) {
            Some(ecs) if ecs.source > 0 => Client {
                addr: ecs.addr,
                known: ecs.source,
            },
            _ => {
                let ip = match src.ip() {
                    IpAddr::V6(v6) => v6
                        .to_ipv4_mapped()
                        .map(IpAddr::V4)
                        .unwrap_or(IpAddr::V6(v6)),
                    v4 => v4,
                };
                Client {
                    addr: ip,
                    known: if ip.is_ipv4() { 32 } else { 128 },
                }
            }
        }
    }
}

/// Answers `packet` from `src` into `out`, returning the response length (0: send nothing).
/// `out` must hold at least 512 bytes; over UDP the response is limited to what the client can
/// take (512 without EDNS), with TC set when the answer does not fit.
pub fn handle(
    snap: &Snapshot,
    metrics: &Metrics,
    packet: &[u8],
    src: SocketAddr,
    proto: Proto,
    out: &mut [u8],
) -> usize {
    let (to, reply, qtype) = match wire::parse(packet) {
        Parsed::Drop => {
            metrics.dropped.inc();
            return 0;
        }
        Parsed::NotImp {
            id,
            flags,
            question,
        } => {
            let to = ReplyTo {
                id,
                flags,
                question,
                edns: None,
            };
            (to, Reply::new(rcode::NOTIMP), 0)
        }
        Parsed::FormErr {
            id,
            flags,
            question,
            edns,
        } => {
            let edns = edns.then_some(Edns {
                version: 0,
                udp_size: 512,
                dnssec_ok: false,
                ecs: None,
            });
            (
                ReplyTo {
                    id,
                    flags,
                    question,
                    edns,
                },
                Reply::new(rcode::FORMERR),
                0,
            )
        }
        Parsed::Query(q) => {
            let reply = answer(snap, &q, src);
            (ReplyTo::from(&q), reply, q.qtype)
        }
    };
    let limit = match (proto, to.edns) {
        (Proto::Tcp, _) => out.len(),
        (Proto::Udp, None) => 512,
        (Proto::Udp, Some(e)) => (e.udp_size.clamp(512, wire::OUR_UDP_PAYLOAD)) as usize,
    };
    let limit = limit.min(out.len()).min(u16::MAX as usize);
    let n = wire::write_response(&mut out[..limit], &to, &reply);
    metrics.count(qtype, reply.rcode, proto);
    n
}

/// Decides the reply to a well-formed query.
fn answer<'z>(snap: &'z Snapshot, q: &Query<'_>, src: SocketAddr) -> Reply<'z> {
    if let Some(e) = q.edns {
        if e.version > 0 {
            return Reply::new(rcode::BADVERS);
        }
    }
    if q.qclass != wire::CLASS_IN || q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
        return Reply::new(rcode::REFUSED);
    }
    let mut reply = Reply::new(rcode::NOERROR);
    let mut name: &[u8] = q.qname.as_slice();
    for depth in 0..MAX_CHAIN {
        let Some(node) = snap.names.get(name) else {
            match snap.zone_of(name) {
                Some(z) => {
                    reply.authoritative = true;
                    reply.rcode = rcode::NXDOMAIN;
                    reply.authority.push(&snap.zones[z].negative_soa);
                }
                // Outside every zone: we are not a resolver. A CNAME leading out of our zones
                // simply ends the answer.
                None if depth == 0 => reply.rcode = rcode::REFUSED,
                None => {}
            }
            return reply;
        };
        reply.authoritative = true;
        let nodata = |reply: &mut Reply<'z>| {
            reply.authority.push(&snap.zones[node.zone].negative_soa);
        };
        match &node.kind {
            NodeKind::Alias { cname, target } => {
                reply.answers.push(cname);
                if q.qtype == rtype::CNAME || q.qtype == rtype::ANY {
                    return reply;
                }
                name = target;
                continue;
            }
            NodeKind::Service(svc) => {
                let want = match q.qtype {
                    rtype::A | rtype::ANY => rtype::A,
                    rtype::AAAA => rtype::AAAA,
                    _ => {
                        nodata(&mut reply);
                        return reply;
                    }
                };
                // NODATA at the end of a CNAME chain too: the CNAMEs are in the answer, the
                // target zone's SOA goes in the authority section (RFC 2308 section 2.2).
                let chained = reply.answers.len();
                steer(snap, svc, want, q, src, &mut reply);
                if reply.answers.len() == chained {
                    nodata(&mut reply);
                }
                return reply;
            }
            NodeKind::Static(sets) => {
                let found = if q.qtype == rtype::ANY {
                    // RFC 8482: one RRset is a complete enough answer to ANY.
                    sets.first()
                } else {
                    sets.iter().find(|(t, _)| *t == q.qtype)
                };
                match found {
                    Some((t, rrs)) => {
                        reply.answers.extend(rrs);
                        if *t == rtype::NS {
                            reply.additional.extend(&snap.glue[node.zone]);
                        }
                    }
                    None => nodata(&mut reply),
                }
                return reply;
            }
            NodeKind::Empty => {
                nodata(&mut reply);
                return reply;
            }
        }
    }
    reply
}

/// Hash key of the client's subnet for consistent choice among equally good edges.
fn subnet_key(addr: IpAddr, bits: u8) -> u64 {
    use common::hash::splitmix64;
    match crate::geo::mask(addr, bits) {
        IpAddr::V4(a) => splitmix64(u32::from(a) as u64 | 4 << 40),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            splitmix64((v >> 64) as u64 ^ splitmix64(v as u64))
        }
    }
}

/// Chooses edges for a service name and appends their records; sets the ECS scope.
fn steer<'z>(
    snap: &'z Snapshot,
    svc: &'z Service,
    want: u16,
    q: &Query<'_>,
    src: SocketAddr,
    reply: &mut Reply<'z>,
) {
    let client = Client::of(q, src);
    let located = snap.geo.locate(client.addr, client.known);
    let cfg = &snap.config.geo;
    let hash_bits = if client.addr.is_ipv4() {
        cfg.hash_prefix_v4
    } else {
        cfg.hash_prefix_v6
    }
    .min(client.known);
    let key = subnet_key(client.addr, hash_bits);
    let computed;
    let (ranking, location, geo_prefix) = match located {
        Located::Zone { index, prefix } => {
            (&snap.geo.locations[index].ranking, Some(index), prefix)
        }
        Located::Point { coords, prefix } => {
            computed = Ranking::new(coords, &snap.edge_coords, cfg.tie_km);
            (&computed, None, prefix)
        }
    };
    let mut chosen = [0usize; MAX_EDGES];
    let n = svc.answer_count.min(MAX_EDGES).min(snap.edge_coords.len());
    let health = &snap.health;
    let choice = steering::choose(
        ranking,
        |e| health.edges[e].status(),
        &snap.seeds,
        key,
        &mut chosen[..n],
    );
    if choice.count == 0 {
        snap.count_steering(location, None);
        let rrs: &'z [Rr] = if want == rtype::A {
            &svc.fallback_a
        } else {
            &svc.fallback_aaaa
        };
        reply.answers.extend(rrs);
        // The fallback is the same for every client.
        reply.ecs_scope = 0;
        return;
    }
    for &e in &chosen[..choice.count] {
        snap.count_steering(location, Some(e));
        let rrs = if want == rtype::A {
            &svc.a[e]
        } else {
            &svc.aaaa[e]
        };
        reply.answers.extend(rrs);
    }
    let depends_on = if choice.hashed {
        geo_prefix.max(hash_bits)
    } else {
        geo_prefix
    };
    reply.ecs_scope = if q.edns.and_then(|e| e.ecs).is_some_and(|e| e.source > 0) {
        depends_on.min(client.known)
    } else {
        0
    };
}
